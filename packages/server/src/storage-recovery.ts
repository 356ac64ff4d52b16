// Runs a node that survives failed disk writes (storage-fault.ts): serve; on ENOSPC/EIO stop the
// node whole, keep the port with the stand-in, probe with a bounded back-off, and start the node
// again from disk once a probe write is synced. Used by `quorumkv serve`.
import { adminToken } from '@quorumkv/transport';
import type { ServeConfig } from './config.js';
import { createLogger, type Logger } from './logger.js';
import { FATAL_EXIT_CODE } from './node-production.js';
import { startServer, type RunningServer } from './server.js';
import {
  STORAGE_RECOVERIES_MAX,
  listenStandIn,
  probeDelayMs,
  probeWritable,
  storageFaultKindOf,
  type StandIn,
  type StorageFaultCounts,
  type StorageFaultKind,
} from './storage-fault.js';

/** The running node of {@link serveRecovering}, whichever incarnation of it is up. */
export interface RecoveringServer {
  /** The server now running, or undefined while the node is stopped on a storage fault. */
  current(): RunningServer | undefined;
  log: Logger;
  /** Stops the node (or the stand-in) and ends the loop. */
  stop(): Promise<void>;
}

/**
 * Starts the node and keeps it running across storage faults. Resolves once the first start
 * listens (or the stand-in does, when the disk already fails at start).
 */
export async function serveRecovering(cfg: ServeConfig): Promise<RecoveringServer> {
  // The same redaction as startServer's own logger: this one is handed to every start.
  const log = createLogger(cfg.id, cfg.logLevel, [cfg.clusterSecret, adminToken(cfg.clusterSecret)]);
  const counts: StorageFaultCounts = { faults: { 'disk-full': 0, io: 0 }, current: undefined };
  let running: RunningServer | undefined;
  let standIn: StandIn | undefined;
  let stopped = false;
  let recoveries = 0;
  let wake: (() => void) | undefined;

  /** A failure of the recovery itself (a start that fails for another reason) ends the process. */
  const recoverOrExit = () =>
    void recover().catch((e: unknown) => {
      log.fatal({ err: e }, 'restarting the node after a storage fault failed; exiting');
      process.exit(FATAL_EXIT_CODE);
    });

  const onFault = (kind: StorageFaultKind, err: Error) => {
    if (counts.current || stopped) return;
    counts.current = kind;
    counts.faults[kind]++;
    log.error({ err, kind }, 'a disk write failed: stopping the node (no votes, no writes) until a probe write succeeds');
    recoverOrExit();
  };

  /** Starts the node; on a storage fault while opening, enters the stopped state instead. */
  const start = async (): Promise<void> => {
    try {
      running = await startServer(cfg, { logger: log, onStorageFault: onFault, storageFaults: counts });
    } catch (e) {
      const kind = storageFaultKindOf(e);
      if (!kind) throw e;
      counts.current = kind;
      counts.faults[kind]++;
      log.error({ err: e, kind }, 'the node could not start: a disk write failed; probing until one succeeds');
      recoverOrExit();
    }
  };

  /** Stops the node, serves the stand-in, probes, then starts the node again. */
  const recover = async (): Promise<void> => {
    if (++recoveries > STORAGE_RECOVERIES_MAX) {
      log.fatal({ recoveries: STORAGE_RECOVERIES_MAX }, 'too many storage faults in this process; exiting for a supervisor');
      process.exit(FATAL_EXIT_CODE);
    }
    const old = running;
    running = undefined;
    await old?.stop().catch((e: unknown) => log.warn({ err: e }, 'stopping after the storage fault failed; continuing'));
    if (stopped) return;
    standIn = await listenStandIn(cfg, counts, log);
    // Unbounded in count on purpose: waiting for space is the job. The back-off bounds the rate
    // (one probe per STORAGE_PROBE_BACKOFF_MAX_MS at most) and stop() ends it.
    for (let attempt = 0; !stopped; attempt++) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, probeDelayMs(attempt));
        wake = () => (clearTimeout(t), r());
      });
      if (!stopped && (await probeWritable(cfg.dataDir))) break;
    }
    await standIn.close();
    standIn = undefined;
    if (stopped) return;
    log.info({ kind: counts.current }, 'a probe write to the data directory succeeded: starting the node again from disk');
    counts.current = undefined;
    await start();
  };

  await start();
  return {
    current: () => running,
    log,
    stop: async () => {
      stopped = true;
      wake?.();
      await standIn?.close();
      await running?.stop();
    },
  };
}
