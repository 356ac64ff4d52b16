// The production world of a node (host-world.ts): LevelDB in the data directory, the WebSocket
// peer transport, real timers, crypto randomness, identity files in the data directory, and a
// fatal error that stops the process (exit code 70). The only place the host is wired to the
// process; the whole-node simulation wires the same QuorumKvNode to a simulated world.
import { randomBytes, randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { openNodeStore } from '@quorumkv/storage';
import { INCARNATION_HEX_LENGTH, PeerTransport, type PeerTls } from '@quorumkv/transport';
import type { ServeConfig } from './config.js';
import { fsIdentityFiles } from './durable-file.js';
import type { NodeWorld } from './host-world.js';
import { coreLogger, type Logger } from './logger.js';
import type { NodeMetrics } from './metrics.js';
import { QuorumKvNode } from './node.js';
import { storageFaultKindOf, type StorageFaultKind } from './storage-fault.js';
import { createRealClock } from './world.js';

/** Exit code of a node stopped by a fatal error in its host loop. */
export const FATAL_EXIT_CODE = 70;

/**
 * Opens a production node on `cfg.dataDir`: the node, and its WebSocket transport (the server
 * routes /raft upgrades and snapshot dials through it and reads its stats).
 */
export async function openProductionNode(
  cfg: ServeConfig,
  log: Logger,
  metrics: NodeMetrics,
  tls?: PeerTls,
  onStorageFault?: (kind: StorageFaultKind, err: Error) => void,
): Promise<{ node: QuorumKvNode; transport: PeerTransport }> {
  const store = await openNodeStore(cfg.dataDir, { snapshotChunkBytes: cfg.snapshotChunkBytes, kv: { sessionTtlMs: cfg.sessionTtlMs, idempotencyTtlMs: cfg.idempotencyTtlMs } });
  let node: QuorumKvNode | undefined;
  let transport: PeerTransport | undefined;
  const world: NodeWorld = {
    clock: createRealClock(),
    random: { int: (n) => randomInt(n) },
    defer: (fn) => void setImmediate(fn),
    elapsedMs: () => performance.now(),
    store,
    identity: fsIdentityFiles(cfg.dataDir),
    newIncarnation: () => randomBytes(INCARNATION_HEX_LENGTH / 2).toString('hex'),
    peers: (h) => {
      transport = new PeerTransport({
        id: cfg.id,
        clusterSecret: cfg.clusterSecret,
        peers: {},
        logger: coreLogger(log.child({ component: 'transport' })),
        clusterId: h.clusterId,
        incarnation: h.incarnation,
        checkIncarnation: h.checkIncarnation,
        onProbe: h.onProbe,
        onMessage: h.onMessage,
        onSnapshotConnection: (peer, ws) => {
          if (node?.snapshotAcceptor) node.snapshotAcceptor(peer, ws);
          else ws.close(1013, 'snapshots not served yet');
        },
        onPeerDown: h.onPeerDown,
        ...(tls ? { tls } : {}),
      });
      return transport;
    },
    onFatal: (err) => {
      // A failed disk write is handed to the caller (storage-recovery.ts), which stops this node
      // and starts a new one from disk once writes work again; anything else ends the process.
      const kind = storageFaultKindOf(err);
      if (kind && onStorageFault) return onStorageFault(kind, err);
      process.exitCode = FATAL_EXIT_CODE;
      void (node?.stop() ?? Promise.resolve()).finally(() => process.exit(FATAL_EXIT_CODE));
    },
  };
  node = await QuorumKvNode.open(cfg, log, metrics, world);
  return { node, transport: transport! };
}
