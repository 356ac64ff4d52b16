// Measurements for issue 4 (a script, not a test): the client against a real three-node cluster.
//
//   pnpm exec tsc -b packages/server packages/client && pnpm exec tsc -p test/client/tsconfig.measure.json
//   node test/client/dist/client/measure.js [--seconds 5] [--callers 64] [--failover-runs 5] [--out FILE.json]
//   QKV_KEEP_LOGS=1 node test/client/dist/client/measure.js --skip-throughput   (keeps the failover cluster's node logs)
//
// 1. Throughput and client CPU per operation with 64 concurrent callers, for put, linearizable get
//    and stale get, in three shapes: one client that knows only the leader (every request on ONE
//    WebSocket); one client that knows all three nodes (its normal shape: one WebSocket per node;
//    writes and linearizable reads still use only the leader's, stale reads spread over all
//    three); three clients (the 64 callers split over three WebSockets to the leader, plus
//    stale reads spread). The nodes run in their own processes, so this process's
//    `process.cpuUsage()` is the client's cost (plus this loop's; both are the app's cost).
// 2. Failover as the client sees it: 32 closed-loop writers of unique keys through one client
//    (default client options), kill -9 of the leader, per run: kill → first acknowledged write
//    sent after the kill, the longest pause between acknowledgements around the kill, the slowest
//    single call that spanned it, and kill → a new leader observed by polling /v1/status. Then
//    every acknowledged key is checked (exists, version 1). Default node timers (the ones users get).
//
// The machine's load average is printed next to every number: on a shared 2-core box it decides them.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import type { KvClient } from '@quorumkv/client';
import { CLIENT_PATH, DEFAULT_LIMITS, PROTOCOL_VERSION, decodeResponseFrame, encodeFrame, toBytes, type ClientRequest } from '@quorumkv/protocol';
import { ProcessCluster, sleep, waitFor } from '../harness/cluster.js';
import { connectTo, endpointsOf, outcome } from './helpers.js';

/** Bytes per written value. */
const VALUE_BYTES = 100;
/** Keys the read rows read (written once before them). */
const READ_KEYS = 1000;
/** Warm-up before each measured window (connections, JIT). */
const WARMUP_MS = 1000;
/** Concurrent writers during the failover runs. */
const FAILOVER_WRITERS = 32;
/** Longest one failover run may take before it is reported as stuck. */
const FAILOVER_RUN_MAX_MS = 30_000;
/** Settling time between failover runs (restarted node catches up, writers steady). */
const FAILOVER_SETTLE_MS = 2000;

type Op = 'put' | 'get' | 'stale';
type Shape = 'one-connection' | 'per-node' | 'three-clients' | 'bare-ws';

interface Row {
  op: Op;
  shape: Shape;
  seconds: number;
  ops: number;
  opsPerSec: number;
  cpuUsPerOp: number;
  errors: number;
  loadavg1mBefore: number;
  loadavg1mAfter: number;
}

interface FailoverRun {
  run: number;
  killed: string;
  leaderObservedMs: number;
  firstAckAfterKillMs: number;
  longestAckPauseMs: number;
  slowestSpanningCallMs: number;
  loadavg1m: number;
}

const load1 = (): number => Number(os.loadavg()[0]!.toFixed(1));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Longest a bare request waits for its answer. */
const BARE_TIMEOUT_MS = 30_000;

/**
 * The baseline: the same requests over one bare `ws` WebSocket with the shared codec and nothing
 * else (no routing, retries, deadlines, validation of results or session bookkeeping), to tell
 * the client library's own cost from the runtime's and the kernel's.
 */
class BareConnection {
  private readonly pending = new Map<number, (ok: boolean) => void>();
  private nextId = 1;
  private seq = 0;
  private readonly sessionId = randomUUID();
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const res = decodeResponseFrame(data, DEFAULT_LIMITS.maxFrameBytes);
      const done = this.pending.get(res.id);
      this.pending.delete(res.id);
      done?.(res.ok);
    });
  }

  static async open(address: string): Promise<BareConnection> {
    const ws = new WebSocket(`ws://${address}${CLIENT_PATH}`, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const conn = new BareConnection(ws);
    await conn.request({ op: 'hello', version: PROTOCOL_VERSION });
    return conn;
  }

  request(body: Record<string, unknown>): Promise<void> {
    const id = this.nextId++;
    const frame = encodeFrame({ ...body, id, timeoutMs: BARE_TIMEOUT_MS } as unknown as ClientRequest, DEFAULT_LIMITS.maxFrameBytes);
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, (ok) => (ok ? resolve() : reject(new Error('error answer'))));
      this.ws.send(frame);
    });
  }

  put(key: string, value: string): Promise<void> {
    // ackedBelow 1: the node keeps up to its per-session maximum of results; fine for a baseline.
    return this.request({ op: 'put', key: toBytes(key), value: toBytes(value), session: { id: this.sessionId, seq: ++this.seq, ackedBelow: 1 } });
  }

  get(key: string, consistency: 'linearizable' | 'stale'): Promise<void> {
    return this.request({ op: 'get', key: toBytes(key), consistency });
  }

  close(): void {
    this.ws.close();
  }
}

/** What the measured loop calls: a client, or the bare baseline. */
type Caller = Pick<KvClient, 'put' | 'get' | 'close'> | BareConnection;

/** Runs `callers` closed loops of `op` over the clients (caller i uses clients[i % n]) for `ms`. */
async function loop(clients: Caller[], callers: number, op: Op, ms: number, tag: string): Promise<{ ops: number; errors: number }> {
  const value = 'x'.repeat(VALUE_BYTES);
  const endAt = Date.now() + ms;
  let ops = 0;
  let errors = 0;
  let n = 0;
  await Promise.all(
    Array.from({ length: callers }, async (_, i) => {
      const kv = clients[i % clients.length]!;
      while (Date.now() < endAt) {
        const k = n++;
        try {
          const consistency = op === 'stale' ? 'stale' : 'linearizable';
          if (kv instanceof BareConnection) {
            if (op === 'put') await kv.put(`m/${tag}/${k}`, value);
            else await kv.get(`m/read/${k % READ_KEYS}`, consistency);
          } else if (op === 'put') await kv.put(`m/${tag}/${k}`, value);
          else await kv.get(`m/read/${k % READ_KEYS}`, { consistency });
          ops++;
        } catch {
          errors++;
        }
      }
    }),
  );
  return { ops, errors };
}

async function clientsFor(c: ProcessCluster, shape: Shape, leaderAddress: string): Promise<Caller[]> {
  const opts = { timeoutMs: 30_000 };
  if (shape === 'bare-ws') return [await BareConnection.open(leaderAddress)];
  if (shape === 'one-connection') return [await connectTo(c, { ...opts, endpoints: [leaderAddress] })];
  if (shape === 'per-node') return [await connectTo(c, opts)];
  return Promise.all([0, 1, 2].map(() => connectTo(c, opts)));
}

async function throughput(c: ProcessCluster, seconds: number, callers: number): Promise<Row[]> {
  const leader = await c.waitForLeader();
  const leaderAddress = c.node(leader.id).address;
  const seed = await connectTo(c);
  for (let i = 0; i < READ_KEYS; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => seed.put(`m/read/${i + j}`, 'x'.repeat(VALUE_BYTES))));
  await seed.close();
  const rows: Row[] = [];
  for (const op of ['put', 'get', 'stale'] as const) {
    for (const shape of ['bare-ws', 'one-connection', 'per-node', 'three-clients'] as const) {
      const clients = await clientsFor(c, shape, leaderAddress);
      await loop(clients, callers, op, WARMUP_MS, `${op}-${shape}-warm`);
      const loadBefore = load1();
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const r = await loop(clients, callers, op, seconds * 1000, `${op}-${shape}`);
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      for (const kv of clients) await kv.close();
      const row: Row = {
        op,
        shape,
        seconds: Number(wallS.toFixed(2)),
        ops: r.ops,
        opsPerSec: Math.round(r.ops / wallS),
        cpuUsPerOp: Number(((cpu.user + cpu.system) / Math.max(1, r.ops)).toFixed(1)),
        errors: r.errors,
        loadavg1mBefore: loadBefore,
        loadavg1mAfter: load1(),
      };
      console.log(
        `${op.padEnd(6)} ${shape.padEnd(15)} ${String(row.opsPerSec).padStart(6)} ops/s  client CPU ${String(row.cpuUsPerOp).padStart(6)} µs/op  ` +
          `errors ${row.errors}  load ${row.loadavg1mBefore} → ${row.loadavg1mAfter}`,
      );
      rows.push(row);
    }
  }
  return rows;
}

/** Retry events kept for diagnosing a stuck failover run. */
const RETRY_EVENTS_KEPT_MAX = 20_000;

async function failover(c: ProcessCluster, runs: number): Promise<{ runs: FailoverRun[]; acked: number; failed: number; missing: number; versionNot1: number }> {
  const retries: { at: number; address: string; code: string; message: string }[] = [];
  const kv = await connectTo(c, {
    onRetry: (e) => {
      if (retries.length >= RETRY_EVENTS_KEPT_MAX) retries.shift();
      retries.push({ at: Date.now(), address: e.address, code: e.error.code, message: e.error.message.slice(0, 120) });
    },
  });
  const failures = new Map<string, number>();
  const acks: { key: string; sentAt: number; ackedAt: number }[] = [];
  let failed = 0;
  let stop = false;
  const writers = Array.from({ length: FAILOVER_WRITERS }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      const key = `fo/${w}/${i}`;
      const sentAt = Date.now();
      const r = await outcome(kv.put(key, 'v'));
      if (r.ok) acks.push({ key, sentAt, ackedAt: Date.now() });
      else {
        failed++;
        const k = `${r.code}: ${r.error.message.slice(0, 100)}`;
        failures.set(k, (failures.get(k) ?? 0) + 1);
      }
    }
  });
  const results: FailoverRun[] = [];
  try {
    for (let run = 1; run <= runs; run++) {
      await sleep(FAILOVER_SETTLE_MS);
      // The restarted node may still be catching up under the writers; give it time to agree.
      const leader = await c.waitForLeader({ timeoutMs: FAILOVER_RUN_MAX_MS });
      const killedAt = Date.now();
      await c.kill9(leader.id);
      const observed = await c.waitForLeader({ exclude: leader.id, minTerm: leader.term, timeoutMs: FAILOVER_RUN_MAX_MS });
      const leaderObservedMs = Date.now() - killedAt;
      try {
        await waitFor('an ack of a write sent after the kill', () => (acks.some((a) => a.sentAt > killedAt) ? true : undefined), FAILOVER_RUN_MAX_MS);
      } catch (e) {
        // Stuck: say what the nodes and the client were doing.
        console.error(`run ${run}: killed ${leader.id} (term ${leader.term}) at ${new Date(killedAt).toISOString()}; client leader guess ${kv.leaderAddress}`);
        for (const n of c.nodes) console.error(`  ${n.id} ${n.address}: ${JSON.stringify(await c.status(n.id))}`);
        const counts = new Map<string, number>();
        for (const ev of retries.filter((x) => x.at > killedAt)) {
          const k = `${Math.floor((ev.at - killedAt) / 1000)}s ${ev.address} ${ev.code} ${ev.message}`;
          counts.set(k, (counts.get(k) ?? 0) + 1);
        }
        for (const [k, n] of counts) console.error(`  retry ${k} x${n}`);
        for (const [k, n] of failures) console.error(`  failed call ${k} x${n}`);
        throw e;
      }
      await sleep(1000); // let calls that spanned the kill finish
      const firstAck = Math.min(...acks.filter((a) => a.sentAt > killedAt).map((a) => a.ackedAt));
      // The longest gap between consecutive acknowledgements from the last one before the kill
      // to the first one of a write sent after it (answers already on the wire may still arrive
      // just after the kill, so the gap is not always the one that straddles killedAt).
      const times = acks.map((a) => a.ackedAt).filter((t) => t <= firstAck).sort((a, b) => a - b);
      const from = times.filter((t) => t <= killedAt).pop() ?? killedAt;
      let longestGap = 0;
      let prev = from;
      for (const t of times.filter((x) => x > from)) {
        longestGap = Math.max(longestGap, t - prev);
        prev = t;
      }
      const spanning = acks.filter((a) => a.sentAt <= killedAt && a.ackedAt > killedAt).map((a) => a.ackedAt - a.sentAt);
      const r: FailoverRun = {
        run,
        killed: leader.id,
        leaderObservedMs,
        firstAckAfterKillMs: firstAck - killedAt,
        longestAckPauseMs: longestGap,
        slowestSpanningCallMs: spanning.length ? Math.max(...spanning) : 0,
        loadavg1m: load1(),
      };
      console.log(
        `failover run ${run}: killed ${r.killed}; new leader observed after ${r.leaderObservedMs} ms; first ack of a write sent after the kill ` +
          `${r.firstAckAfterKillMs} ms; longest pause in acks ${r.longestAckPauseMs} ms; slowest call spanning the kill ${r.slowestSpanningCallMs} ms; load ${r.loadavg1m}`,
      );
      results.push(r);
      // What the client was told between the new leader being seen and the end of the gap.
      const seenAt = killedAt + leaderObservedMs;
      const gapEnd = Math.max(firstAck, from + longestGap);
      const told = new Map<string, number>();
      for (const ev of retries.filter((x) => x.at >= seenAt && x.at <= gapEnd)) {
        const k = `${c.nodes.find((n) => n.address === ev.address)?.id ?? ev.address} ${ev.code}`;
        told.set(k, (told.get(k) ?? 0) + 1);
      }
      console.log(`  retries from leader seen (+${leaderObservedMs} ms) to the end of the gap (+${gapEnd - killedAt} ms), new leader ${observed.id}: ${[...told].map(([k, n]) => `${k} x${n}`).join(', ') || 'none'}`);
      await c.restart(leader.id);
    }
  } finally {
    stop = true;
    await Promise.all(writers);
  }
  let missing = 0;
  let versionNot1 = 0;
  const seen = new Map<string, number>();
  for await (const it of kv.range({ prefix: 'fo/', as: 'string' })) seen.set(it.key, it.version);
  for (const a of acks) {
    const v = seen.get(a.key);
    if (v === undefined) missing++;
    else if (v !== 1) versionNot1++;
  }
  await kv.close();
  console.log(`failover: ${acks.length} writes acknowledged, ${failed} failed, ${missing} acknowledged keys missing, ${versionNot1} with version != 1`);
  for (const [k, n] of failures) console.log(`  failed call (outcome unknown) ${k} x${n}`);
  return { runs: results, acked: acks.length, failed, missing, versionNot1 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      callers: { type: 'string', default: '64' },
      'failover-runs': { type: 'string', default: '5' },
      out: { type: 'string' },
      'skip-throughput': { type: 'boolean', default: false },
    },
  });
  const seconds = Number(values.seconds);
  const callers = Number(values.callers);
  const runs = Number(values['failover-runs']);
  console.log(`machine: ${os.availableParallelism()} cpus, node ${process.version}, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const out: Record<string, unknown> = { node: process.version, cpus: os.availableParallelism(), startedAt: new Date().toISOString() };

  if (!values['skip-throughput']) {
    // Default node settings (fsync on), as users run it.
    const c = await ProcessCluster.start({ name: 'qkv-client-measure', logLevel: 'warn' });
    try {
      await c.waitForLeader({ timeoutMs: 30_000 });
      console.log(`cluster ${endpointsOf(c).join(',')}; ${callers} callers, ${VALUE_BYTES}-byte values, ${seconds} s per row after ${WARMUP_MS} ms warm-up`);
      out['throughput'] = await throughput(c, seconds, callers);
    } finally {
      await c.teardown({ keepOnFailure: false });
    }
  }
  if (runs > 0) {
    const c = await ProcessCluster.start({ name: 'qkv-client-failover', logLevel: 'info' });
    try {
      await c.waitForLeader({ timeoutMs: 30_000 });
      const f = await failover(c, runs);
      const rs = f.runs;
      console.log(
        `failover medians over ${rs.length} kills: leader observed ${median(rs.map((r) => r.leaderObservedMs))} ms, first ack after kill ` +
          `${median(rs.map((r) => r.firstAckAfterKillMs))} ms, longest ack pause ${median(rs.map((r) => r.longestAckPauseMs))} ms`,
      );
      out['failover'] = f;
      if (process.env['QKV_KEEP_LOGS']) c.failed = true; // teardown keeps the node logs
    } catch (e) {
      c.failed = true;
      console.error(c.describeLogs(10));
      throw e;
    } finally {
      await c.teardown();
    }
  }
  out['loadavgAtEnd'] = os.loadavg();
  if (values.out) writeFileSync(values.out, JSON.stringify(out, null, 2));
}

await main();
