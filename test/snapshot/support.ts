// Helpers of the snapshot / catch-up tests (test/snapshot): reading a node's JSON log lines and
// Prometheus metrics, wiping a data directory, filling a cluster quickly, and a small TCP proxy
// that can cut a link silently (a black hole, like a partition) and heal it again.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CLI_PATH, REPO_ROOT, TEST_SECRET, WriteLoad, freePorts, httpRequest, jsonOf, padValue, sleep, waitFor, type NodeOverride, type ProcessCluster } from '../harness/cluster.js';

/** Flags that make every node compact its log after a few hundred entries, in small chunks. */
export const SMALL_SNAPSHOT_FLAGS: readonly string[] = [
  '--snapshot-entries', '200',
  '--snapshot-keep-entries', '50',
  '--snapshot-chunk-bytes', '16384',
];

/** One parsed JSON log line of a node (pino). */
export interface LogEvent {
  msg: string;
  time?: string;
  level?: number;
  [field: string]: unknown;
}

/** Every JSON log line of a node's log file (lines that are not JSON are skipped). */
export function logEvents(logPath: string): LogEvent[] {
  let text: string;
  try {
    text = readFileSync(logPath, 'utf8');
  } catch {
    return [];
  }
  const out: LogEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const v = JSON.parse(line) as LogEvent;
      if (typeof v.msg === 'string') out.push(v);
    } catch {
      // a torn last line
    }
  }
  return out;
}

/** The log events of a node whose message starts with `prefix`. */
export function eventsStartingWith(logPath: string, prefix: string): LogEvent[] {
  return logEvents(logPath).filter((e) => e.msg.startsWith(prefix));
}

/** Waits until a node's log holds an event whose message starts with `prefix` (and matches `pred`). */
export function waitForEvent(logPath: string, prefix: string, pred: (e: LogEvent) => boolean = () => true, timeoutMs = 15_000): Promise<LogEvent> {
  return waitFor(`log event "${prefix}" in ${logPath}`, () => eventsStartingWith(logPath, prefix).find(pred), timeoutMs);
}

/** The sum of a Prometheus sample family on one node, optionally filtered by a label substring. */
export async function metricValue(port: number, name: string, labelFilter = ''): Promise<number> {
  const r = await httpRequest(port, 'GET', '/metrics', { timeoutMs: 3000 });
  if (r.status !== 200) throw new Error(`/metrics on ${port}: ${r.status}`);
  let sum = 0;
  for (const line of r.body.toString('utf8').split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (labelFilter && !(m[2] ?? '').includes(labelFilter)) continue;
    sum += Number(m[3]);
  }
  return sum;
}

/** Stops a node (SIGTERM, then SIGKILL) and deletes its data directory. */
export async function stopAndWipe(cluster: ProcessCluster, id: string): Promise<void> {
  await cluster.stop(id);
  rmSync(cluster.node(id).dataDir, { recursive: true, force: true });
}

/**
 * Writes `count` keys `${prefix}${i}` of `valueBytes` bytes through `via` with `concurrency`
 * requests in flight; a failed write is retried (bounded) under the same key (an idempotent PUT).
 * Returns the values written.
 */
export async function fill(cluster: ProcessCluster, via: () => string, prefix: string, count: number, valueBytes: number, concurrency = 32): Promise<Map<string, string>> {
  const written = new Map<string, string>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const key = `${prefix}${String(i).padStart(6, '0')}`;
      const value = padValue(`${key}:`, valueBytes);
      for (let attempt = 1; ; attempt++) {
        try {
          const r = await cluster.put(via(), key, value, 5000);
          if (r.status === 200) break;
          if (attempt >= 20) throw new Error(`put ${key}: HTTP ${r.status} ${r.body.toString().slice(0, 200)}`);
        } catch (e) {
          if (attempt >= 20) throw e;
        }
        await sleep(50);
      }
      written.set(key, value);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return written;
}

/** GET /v1/status `snapshots` and other fields the snapshot tests read. */
export interface SnapshotStatus {
  id: string;
  role: string;
  leader: string | null;
  term: number;
  appliedIndex: number;
  appliedHash: string;
  snapshots?: { peer: string; direction: string; bytesDone: number; totalBytes: number | null; rateBytesPerSec: number; etaSec: number | null; attempts: number }[];
}

/** GET /v1/status of a node on `port` (throws on failure). */
export async function statusOf(port: number): Promise<SnapshotStatus> {
  const r = await httpRequest(port, 'GET', '/v1/status', { timeoutMs: 3000 });
  if (r.status !== 200) throw new Error(`/v1/status on ${port}: ${r.status}`);
  return jsonOf<SnapshotStatus>(r);
}

/** JSON request helper for the admin API: returns status and parsed body (or the raw text). */
export async function adminCall(port: number, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await httpRequest(port, method, path, {
    timeoutMs,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(r.body.toString('utf8') || '{}') as Record<string, unknown>;
  } catch {
    parsed = { text: r.body.toString('utf8') };
  }
  return { status: r.status, body: parsed };
}

/** A leader that is the only one among the live nodes (and agreed), by id. */
export async function leaderId(cluster: ProcessCluster, timeoutMs = 15_000): Promise<string> {
  return (await cluster.waitForLeader({ timeoutMs })).id;
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy with a silent cut.

/** Most connections the proxy holds at once (each has two sockets). */
const PROXY_MAX_CONNECTIONS = 256;

/**
 * Forwards 127.0.0.1:port → 127.0.0.1:targetPort. `cut()` turns it into a black hole: bytes on
 * existing connections are swallowed (nothing is closed, nothing is answered) and new connections
 * are accepted and ignored, as in a network partition. `heal()` destroys the black-holed
 * connections (as a timing-out peer eventually would) and forwards new ones again.
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<{ a: net.Socket; b: net.Socket | null }>();
  private cutNow = false;
  port = 0;

  constructor(private readonly targetPort: number) {}

  /** Starts listening on `port` (0 = any free port). */
  async listen(port = 0): Promise<number> {
    this.server = net.createServer((a) => this.onConnection(a));
    this.server.maxConnections = PROXY_MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  private onConnection(a: net.Socket): void {
    a.on('error', () => undefined);
    if (this.cutNow) {
      const pair = { a, b: null };
      this.pairs.add(pair);
      a.on('data', () => undefined); // swallowed
      a.on('close', () => this.pairs.delete(pair));
      return;
    }
    const b = net.connect(this.targetPort, '127.0.0.1');
    b.on('error', () => undefined);
    const pair = { a, b };
    this.pairs.add(pair);
    a.on('data', (d: Buffer) => {
      if (!this.cutNow) b.write(d);
    });
    b.on('data', (d: Buffer) => {
      if (!this.cutNow) a.write(d);
    });
    const close = () => {
      this.pairs.delete(pair);
      a.destroy();
      b.destroy();
    };
    a.on('close', close);
    b.on('close', close);
  }

  /** Starts swallowing every byte, silently. */
  cut(): void {
    this.cutNow = true;
  }

  /** Drops every connection that existed during the cut and forwards new ones again. */
  heal(): void {
    this.cutNow = false;
    for (const p of [...this.pairs]) {
      p.a.destroy();
      p.b?.destroy();
    }
    this.pairs.clear();
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    this.heal();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/**
 * A light steady write load on the current leader (2 closed-loop writers, 256-byte values) that
 * keeps the log moving, as in a live cluster. It stops by itself after `maxWritesPerWriter`.
 */
export function trickle(cluster: ProcessCluster, leader: () => string, prefix = 'trickle', maxWritesPerWriter = 20_000): WriteLoad {
  return new WriteLoad(cluster, { writers: 2, targets: () => [leader()], prefix, maxWritesPerWriter, valueBytes: 256, requestTimeoutMs: 5000, backoffMs: 50 }).start();
}

/** Asserts nothing; returns the differences between two nodes' full key spaces read with stale reads. */
export async function diffKeySpaces(cluster: ProcessCluster, a: string, b: string): Promise<string[]> {
  const [ma, mb] = await Promise.all([cluster.list(a, '', 'stale'), cluster.list(b, '', 'stale')]);
  const out: string[] = [];
  for (const [k, v] of ma) {
    const w = mb.get(k);
    if (!w) out.push(`${k}: on ${a} only`);
    else if (w.value !== v.value || w.modRevision !== v.modRevision) out.push(`${k}: differs (${a} rev ${v.modRevision}, ${b} rev ${w.modRevision})`);
  }
  for (const k of mb.keys()) if (!ma.has(k)) out.push(`${k}: on ${b} only`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// A node outside the harness's fixed set (the harness cannot add nodes): `quorumkv serve
// --initial-cluster-state existing`.

/** A node process started by {@link startJoiningNode}. */
export interface ExtraNode {
  readonly id: string;
  readonly port: number;
  readonly address: string;
  readonly dataDir: string;
  readonly logPath: string;
  proc: ChildProcess | null;
  /** SIGKILLs the process and waits for it to exit. */
  kill(): Promise<void>;
}

/**
 * Starts `quorumkv serve --initial-cluster-state existing` for a new node id on a free port, in the cluster's directory,
 * with the cluster's secret; waits until it answers /health. The caller kills it (also on failure).
 */
export async function startJoiningNode(cluster: ProcessCluster, id: string, extraArgs: readonly string[] = []): Promise<ExtraNode> {
  const [port] = await freePorts(1);
  const address = `127.0.0.1:${port!}`;
  const dataDir = path.join(cluster.dir, id);
  const logPath = path.join(cluster.dir, `${id}.log`);
  // A joining node is told the current members so that it accepts their connections before it
  // has a membership of its own (docs/server.md, "Admin endpoints").
  const peers = cluster.nodes.map((n) => `${n.id}=${n.address}`).join(',');
  const args = ['serve', '--id', id, '--listen', address, '--initial-cluster-state', 'existing', '--peers', peers, '--data', dataDir, '--log-level', 'info'];
  if (cluster.opts.tickMs !== undefined) args.push('--tick-ms', String(cluster.opts.tickMs));
  if (cluster.opts.electionTicks !== undefined) args.push('--election-ticks', String(cluster.opts.electionTicks));
  const fd = openSync(logPath, 'a');
  let proc: ChildProcess;
  try {
    proc = spawn(process.execPath, [CLI_PATH, ...args, ...(cluster.opts.extraArgs ?? []), ...extraArgs], {
      cwd: REPO_ROOT,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, QKV_CLUSTER_SECRET: TEST_SECRET, QKV_CLUSTER_SECRET_FILE: '' },
    });
  } finally {
    closeSync(fd);
  }
  const node: ExtraNode = {
    id,
    port: port!,
    address,
    dataDir,
    logPath,
    proc,
    kill: async () => {
      const p = node.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGKILL');
      await exited;
    },
  };
  proc.once('exit', () => {
    node.proc = null;
  });
  process.once('exit', () => node.proc?.kill('SIGKILL'));
  await waitFor(`${id} to answer /health`, async () => {
    if (!node.proc) throw new Error(`${id} exited (see ${logPath})`);
    const r = await httpRequest(port!, 'GET', '/health', { timeoutMs: 1000 });
    return r.status === 200 ? true : undefined;
  });
  return node;
}

/**
 * Brings back a node removed and wiped by {@link stopWipeAndOutrun}, as the replace procedure
 * does: starts it empty WITHOUT the founding flag and adds it as a learner at `address` (default
 * its own) on the leader. It then catches up (by snapshot); promote it with {@link promote}.
 */
export async function rejoinWiped(cluster: ProcessCluster, id: string, override: NodeOverride = {}, address = cluster.node(id).address): Promise<void> {
  await cluster.restart(id, { ...override, initialClusterState: 'existing' });
  const others = cluster.liveIds().filter((x) => x !== id);
  const leader = await cluster.waitForLeader({ among: others });
  const added = await adminCall(cluster.node(leader.id).port, 'POST', '/v1/admin/members', { id, address, learner: true });
  if (added.status !== 200) throw new Error(`member add ${id} --learner: ${added.status} ${JSON.stringify(added.body)}`);
}

/** Promotes a learner once it caught up and its incarnation is recorded (retried while refused with 409/503). */
export async function promote(cluster: ProcessCluster, id: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(`${id} to be promoted`, async () => {
    const leader = await cluster.waitForLeader({ among: cluster.liveIds().filter((x) => x !== id) });
    const r = await adminCall(cluster.node(leader.id).port, 'POST', `/v1/admin/members/${id}/promote`);
    if (r.status === 200) return true;
    if (r.status !== 409 && r.status !== 503) throw new Error(`member promote ${id}: ${r.status} ${JSON.stringify(r.body)}`);
    return undefined;
  }, timeoutMs);
}

/** Most 100-key write rounds {@link stopWipeAndOutrun} makes before giving up. */
const OUTRUN_MAX_ROUNDS = 40;

/**
 * Stops `follower`, deletes its data directory, and writes small keys through `leader` until the
 * leader's log no longer holds the entry after the follower's last acknowledged index (the leader
 * compacted past it). Only then must the leader send a snapshot when the follower comes back:
 * Raft assumes a follower keeps what it acknowledged, so before that point the leader would keep
 * probing at its old match index (notes/snapshot-bugs.md, S3). Returns that old match index.
 */
export async function stopWipeAndOutrun(cluster: ProcessCluster, leader: string, follower: string): Promise<number> {
  const before = (await statusOf(cluster.node(leader).port)) as unknown as { members: { id: string; matchIndex: number | null }[] };
  const match = before.members.find((m) => m.id === follower)?.matchIndex ?? 0;
  // A node that lost its disk is never restarted under its old identity: it is removed first and
  // comes back through rejoinWiped (docs/server.md, "Replacing a node that lost its disk").
  const removed = await adminCall(cluster.node(leader).port, 'DELETE', `/v1/admin/members/${follower}`);
  if (removed.status !== 200) throw new Error(`member remove ${follower}: ${removed.status} ${JSON.stringify(removed.body)}`);
  await stopAndWipe(cluster, follower);
  for (let round = 0; round < OUTRUN_MAX_ROUNDS; round++) {
    const s = (await statusOf(cluster.node(leader).port)) as unknown as { firstIndex: number };
    if (s.firstIndex > match + 1) return match;
    await fill(cluster, () => leader, `gap-${follower}-${round}-`, 100, 100, 16);
  }
  throw new Error(`the leader did not compact past ${follower}'s match index ${match} after ${OUTRUN_MAX_ROUNDS * 100} writes`);
}
