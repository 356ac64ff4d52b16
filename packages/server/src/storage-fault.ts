// A failed disk write (ENOSPC, EIO) no longer ends the process. LevelDB refuses every write after
// a failed sync until it is reopened, and the Raft core's unstable entries were never made
// durable, so nothing in memory can be trusted: the node stops whole (store closed, peers
// dropped — it neither votes nor leads, and a leader's followers elect another), and the same
// process keeps its port with a small stand-in that answers every request with a typed error
// (507 QKV_DISK_FULL or 503 QKV_STORAGE_UNAVAILABLE, never proposed: not applied) and a metric.
// It probes the data directory with a bounded back-off; once a probe write is synced, it starts
// the node again from what is on disk, exactly as a restart would (docs/durability.md).
import { open, unlink } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import type { ServeConfig } from './config.js';
import type { Logger } from './logger.js';
import { NodeTls } from './tls.js';

/** What kind of storage fault stopped the node. */
export type StorageFaultKind = 'disk-full' | 'io';

/** The probe file written (and removed) in the data directory to learn whether writes work again. */
export const STORAGE_PROBE_FILE = 'STORAGE_PROBE';
/** Bytes the probe writes: more than one page, so a disk with a few free bytes does not pass. */
export const STORAGE_PROBE_BYTES = 64 * 1024;
/** First wait before probing, then doubled up to STORAGE_PROBE_BACKOFF_MAX_MS. */
export const STORAGE_PROBE_BACKOFF_MIN_MS = 100;
/** Longest wait between probes. */
export const STORAGE_PROBE_BACKOFF_MAX_MS = 5_000;
/** Recoveries one process makes; past it, a storage fault stops the process (exit 70) for a supervisor. */
export const STORAGE_RECOVERIES_MAX = 100;
/** Depth of the `cause` chain searched for an errno. */
const CAUSE_DEPTH_MAX = 8;

/**
 * The kind of storage fault `err` is, or undefined when it is not a failed write (a broken
 * invariant, a corrupt record: those still stop the process). Looks through the `cause` chain for
 * the errno code or LevelDB's message text ("No space left on device", "Input/output error").
 */
export function storageFaultKindOf(err: unknown): StorageFaultKind | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < CAUSE_DEPTH_MAX && e instanceof Error; depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOSPC' || /no space left on device/i.test(e.message)) return 'disk-full';
    if (code === 'EIO' || /input\/output error/i.test(e.message)) return 'io';
    e = e.cause;
  }
  // Other I/O errors (a locked database, a closed store) are not a failing disk: they still stop the process.
  return undefined;
}

/** Writes, syncs and removes the probe file; resolves true when all of it worked. */
export async function probeWritable(dataDir: string): Promise<boolean> {
  const path = join(dataDir, STORAGE_PROBE_FILE);
  try {
    const fh = await open(path, 'w');
    try {
      await fh.write(new Uint8Array(STORAGE_PROBE_BYTES));
      await fh.sync();
    } finally {
      await fh.close();
    }
    return true;
  } catch {
    return false;
  } finally {
    await unlink(path).catch(() => undefined);
  }
}

/** The wait before probe number `attempt` (0-based): doubling from the minimum, capped. */
export function probeDelayMs(attempt: number): number {
  return Math.min(STORAGE_PROBE_BACKOFF_MAX_MS, STORAGE_PROBE_BACKOFF_MIN_MS * 2 ** Math.min(attempt, 16));
}

/** Counts kept across restarts of the node inside one process (the node's registry is new each time). */
export interface StorageFaultCounts {
  /** Faults by kind since the process started. */
  faults: Record<StorageFaultKind, number>;
  /** The fault the node is stopped on now, if any. */
  current: StorageFaultKind | undefined;
}

/** The Prometheus lines for the counts (served by both the node and the stand-in). */
export function storageFaultMetricsText(c: StorageFaultCounts): string {
  const lines = [
    '# HELP qkv_storage_writable 1 while the node can persist; 0 while it is stopped on a failed disk write',
    '# TYPE qkv_storage_writable gauge',
    `qkv_storage_writable ${c.current ? 0 : 1}`,
    '# HELP qkv_storage_faults_total Failed disk writes that stopped the node, by kind',
    '# TYPE qkv_storage_faults_total counter',
    ...(['disk-full', 'io'] as const).map((k) => `qkv_storage_faults_total{kind="${k}"} ${c.faults[k]}`),
  ];
  return lines.join('\n') + '\n';
}

/** The error a stopped node answers every client request with. */
function faultBody(kind: StorageFaultKind, id: string): { status: number; body: { code: string; message: string } } {
  return kind === 'disk-full'
    ? { status: 507, body: { code: 'QKV_DISK_FULL', message: `node ${id}: its disk is full; it takes no writes or reads until space returns (not applied; ask another node)` } }
    : { status: 503, body: { code: 'QKV_STORAGE_UNAVAILABLE', message: `node ${id}: a disk write failed; it takes no writes or reads until a probe write succeeds (not applied; ask another node)` } };
}

/** A stand-in listening on the node's port while the node is stopped on a storage fault. */
export interface StandIn {
  close(): Promise<void>;
}

/**
 * Listens on the node's address and answers: /metrics with the storage-fault metrics, /health
 * 200 (the process is alive), everything else — /ready, the client API, /raft and /client
 * upgrades — with the fault's typed error. Peers get no Raft connection, so no vote.
 */
export async function listenStandIn(cfg: ServeConfig, counts: StorageFaultCounts, log: Logger): Promise<StandIn> {
  const kind = counts.current ?? 'io';
  const { status, body } = faultBody(kind, cfg.id);
  const text = JSON.stringify(body);
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(storageFaultMetricsText(counts));
    } else if (path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, storage: kind }));
    } else {
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' };
      if (status === 503) headers['retry-after'] = String(Math.ceil(STORAGE_PROBE_BACKOFF_MAX_MS / 1000));
      res.writeHead(status, headers).end(text);
    }
  };
  const tls = cfg.tls ? new NodeTls(cfg.tls, cfg.id, log.child({ component: 'tls' })) : undefined;
  const server = tls ? https.createServer(tls.serverOptions(), onRequest) : http.createServer(onRequest);
  server.on('upgrade', (_req, socket) => {
    socket.end(`HTTP/1.1 ${status} ${kind === 'disk-full' ? 'Insufficient Storage' : 'Service Unavailable'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        tls?.close();
      }),
  };
}
