// `quorumkv-bench watch` (`pnpm bench watch`): N watchers (default 1, 100, 10,000) on one prefix,
// all on ONE node of a local three-node quorumkv cluster, under a steady write rate. Prints, per N:
// event delivery latency p50/p99 measured from the write's acknowledgement, events/s delivered,
// and that node's resident memory per watcher (RSS with the watchers minus RSS before, over N).
// With --target quorumkv,etcd the same runs against etcd (the `etcd3` npm client) follow.
// Not a timed test: numbers for docs/benchmarks.md.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { connect, type KvClient } from '@quorumkv/client';
import { defaultServerCli, startCluster, type LocalCluster, type TargetName } from './cluster.js';
import { Histogram } from './histogram.js';
import { UsageError } from './options.js';
import { sleep } from './procs.js';

/** Watchers per client connection (the server allows 1,000 waiting watch requests per connection). */
const WATCHERS_PER_CLIENT = 500;
/** Time after the watchers start before the measurement (their first answers, connection set-up). */
const WARMUP_MS = 2_000;

/** Options of the watch benchmark. */
export interface WatchBenchOptions {
  /** Systems to measure, one after the other, each on its own fresh cluster. */
  targets: TargetName[];
  watchers: number[];
  seconds: number;
  /** Puts per second (one writer, one key each time under the prefix). */
  rate: number;
  valueSize: number;
  serverCli: string;
  etcdBin: string | undefined;
  json: boolean;
}

/** One row of the result table. */
export interface WatchBenchRow {
  target: TargetName;
  watchers: number;
  writes: number;
  /** Puts that failed (timed out: the node was overloaded). */
  failedWrites: number;
  eventsDelivered: number;
  eventsPerSecond: number;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  /** Events that arrived before the writer saw its acknowledgement (counted as 0 ms). */
  beforeAck: number;
  rssBeforeMiB: number;
  rssWithWatchersMiB: number;
  rssPerWatcherKiB: number;
}

export function parseWatchBenchOptions(args: string[]): WatchBenchOptions {
  let v;
  try {
    v = parseArgs({ args, options: { target: { type: 'string' }, 'etcd-bin': { type: 'string' }, watchers: { type: 'string' }, seconds: { type: 'string' }, rate: { type: 'string' }, 'value-size': { type: 'string' }, 'server-cli': { type: 'string' }, json: { type: 'boolean' } }, strict: true }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const int = (name: string, raw: string | undefined, dflt: number, min: number): number => {
    const n = raw === undefined ? dflt : Number(raw);
    if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}`);
    return n;
  };
  const watchers = (v.watchers ?? '1,100,10000').split(',').map((s) => int('watchers', s, 1, 1));
  const targets = (v.target ?? 'quorumkv').split(',').map((t) => {
    if (t !== 'quorumkv' && t !== 'etcd') throw new UsageError(`--target must be quorumkv, etcd or both (quorumkv,etcd), got ${t}`);
    return t as TargetName;
  });
  return {
    targets,
    watchers,
    seconds: int('seconds', v.seconds, 10, 1),
    rate: int('rate', v.rate, 50, 1),
    valueSize: int('value-size', v['value-size'], 64, 1),
    serverCli: v['server-cli'] ?? defaultServerCli(),
    etcdBin: v['etcd-bin'],
    json: v.json === true,
  };
}

/** Runs every target, and every N in turn on one cluster of it, and returns the rows. */
export async function runWatchBench(o: WatchBenchOptions, say: (line: string) => void): Promise<WatchBenchRow[]> {
  const rows: WatchBenchRow[] = [];
  for (const target of o.targets) {
    const extraArgs = target === 'quorumkv' ? ['--log-level', 'warn', '--max-watchers', String(Math.max(20_000, ...o.watchers))] : [];
    const cluster = await startCluster(target, { serverCli: o.serverCli, etcdBin: o.etcdBin }, { keepData: false, extraArgs, nodeArgs: [], startTimeoutMs: 30_000 });
    try {
      for (const n of o.watchers) {
        rows.push(await measure(cluster, n, o, say));
        say(formatRow(rows[rows.length - 1]!));
      }
    } finally {
      await cluster.stop();
    }
  }
  return rows;
}

/** A client library as the watch benchmark uses it. */
interface WatchDriver {
  /** Resolves with the revision of the write. */
  put(key: string, value: string): Promise<number>;
  /** Starts a watch of `prefix` from now on; `onEvent` gets each event's revision. */
  watch(prefix: string, onEvent: (revision: number) => void): Promise<{ close(): Promise<void> }>;
  close(): Promise<void>;
}

/** quorumkv: a client per WATCHERS_PER_CLIENT watchers (connections are per client). */
async function quorumkvDriver(endpoints: string[], maxWatchers: number): Promise<WatchDriver> {
  const kv: KvClient = await connect({ endpoints, maxPendingCalls: maxWatchers + 10 });
  return {
    put: async (key, value) => (await kv.put(key, value)).revision,
    watch: async (prefix, onEvent) => {
      const w = kv.watch({ prefix });
      const loop = (async () => {
        for await (const ev of w) onEvent(ev.modRevision);
      })();
      return { close: async () => (w.close(), await loop) };
    },
    close: () => kv.close(),
  };
}

/** etcd through the `etcd3` npm client (its watchers share one gRPC stream per client). */
async function etcdDriver(endpoints: string[]): Promise<WatchDriver> {
  const { Etcd3 } = await import('etcd3');
  const client = new Etcd3({ hosts: endpoints });
  return {
    put: async (key, value) => Number((await client.put(key).value(value).exec()).header.revision),
    watch: async (prefix, onEvent) => {
      const w = await client.watch().prefix(prefix).create();
      w.on('put', (kv) => onEvent(Number(kv.mod_revision)));
      return { close: () => w.cancel() };
    },
    close: async () => client.close(),
  };
}

function driverFor(target: TargetName, endpoints: string[], maxWatchers: number): Promise<WatchDriver> {
  return target === 'quorumkv' ? quorumkvDriver(endpoints, maxWatchers) : etcdDriver(endpoints);
}

/** One measurement: N watchers on member 1 (any node serves watches, followers too). */
async function measure(cluster: LocalCluster, n: number, o: WatchBenchOptions, say: (line: string) => void): Promise<WatchBenchRow> {
  const node = cluster.members[1]!;
  const nodeEndpoint = cluster.endpoints[1]!;
  const writer = await driverFor(cluster.target, cluster.endpoints, 10);
  const prefix = `bw${n}/`;
  const rssBefore = rssMiB(node.pid());
  const clients: WatchDriver[] = [];
  for (let i = 0; i < Math.ceil(n / WATCHERS_PER_CLIENT); i++) clients.push(await driverFor(cluster.target, [nodeEndpoint], WATCHERS_PER_CLIENT));
  const ackAt = new Map<number, number>();
  const latency = new Histogram();
  let delivered = 0;
  let beforeAck = 0;
  let measuring = false;
  const onEvent = (revision: number): void => {
    if (!measuring) return;
    delivered++;
    const acked = ackAt.get(revision);
    if (acked === undefined) beforeAck++;
    latency.recordMs(acked === undefined ? 0 : performance.now() - acked);
  };
  const watches = await Promise.all(Array.from({ length: n }, (_, i) => clients[Math.floor(i / WATCHERS_PER_CLIENT)]!.watch(prefix, onEvent)));
  say(`${cluster.target}, ${n} watchers: warming up`);
  await sleep(WARMUP_MS);
  measuring = true;
  const value = 'x'.repeat(o.valueSize);
  const t0 = performance.now();
  let writes = 0;
  let failedWrites = 0;
  // Steady rate: put k is sent at t0 + k / rate.
  for (let k = 0; performance.now() - t0 < o.seconds * 1000; k++) {
    const due = t0 + (k * 1000) / o.rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    writer.put(`${prefix}${k % 100}`, value).then(
      (revision) => {
        ackAt.set(revision, performance.now());
        writes++;
      },
      () => void failedWrites++,
    );
  }
  await sleep(1000); // the last writes' events
  const elapsedS = (performance.now() - t0) / 1000;
  const rssWith = rssMiB(node.pid());
  measuring = false;
  await Promise.all(watches.map((w) => w.close().catch(() => undefined)));
  for (const c of clients) await c.close();
  await writer.close();
  const s = latency.summary();
  return {
    target: cluster.target,
    watchers: n,
    writes,
    failedWrites,
    eventsDelivered: delivered,
    eventsPerSecond: Math.round(delivered / elapsedS),
    latencyP50Ms: s.p50Ms,
    latencyP99Ms: s.p99Ms,
    beforeAck,
    rssBeforeMiB: rssBefore,
    rssWithWatchersMiB: rssWith,
    rssPerWatcherKiB: Math.round((((rssWith - rssBefore) * 1024) / n) * 10) / 10,
  };
}

/** Resident memory of a process from /proc (Linux), in MiB; 0 when unknown. */
function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : 0;
  } catch {
    return 0;
  }
}

export function formatRow(r: WatchBenchRow): string {
  const ms = (x: number | null) => (x === null ? '–' : x.toFixed(1));
  return `${r.target.padEnd(8)} ${String(r.watchers).padStart(6)} watchers | ${r.writes} writes (${r.failedWrites} failed), ${r.eventsDelivered} events (${r.eventsPerSecond}/s) | delivery p50 ${ms(r.latencyP50Ms)} ms, p99 ${ms(r.latencyP99Ms)} ms (${r.beforeAck} before ack) | node RSS ${r.rssBeforeMiB} → ${r.rssWithWatchersMiB} MiB, ${r.rssPerWatcherKiB} KiB/watcher`;
}
