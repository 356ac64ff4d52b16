// Measurements for issue 3 (not a test): HTTP write throughput and latency of a real 3-node
// cluster with default timers, and the time from kill -9 of the leader to the next successful write.
//
//   pnpm exec tsc -b packages/server && pnpm exec tsc -p test/harness
//   node test/harness/dist/measure-http.js [--seconds 10] [--failover-runs 5] [--out FILE.json]
//
// Throughput: closed-loop clients, each with its own keep-alive connection, PUT fresh keys with
// 256-byte values for `--seconds` after a 1 s warm-up; clients spread round-robin over all nodes
// (followers forward to the leader), or all sent to the leader. Latency is measured per
// acknowledged write. Failover: 4 closed-loop writers send to the two followers; the leader is
// killed with SIGKILL; we report when a leader is next observed and when the first write that was
// sent after the kill is acknowledged. The killed node is restarted between runs.
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { ProcessCluster, httpRequest, jsonOf, padValue, sleep, waitFor } from './cluster.js';

/** Bytes per written value. */
const VALUE_BYTES = 256;
/** Warm-up before each throughput window. */
const WARMUP_MS = 1000;
/** Client-side timeout of one measured request. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Client-side timeout of a failover writer's request (short: we want the next write quickly). */
const FAILOVER_REQUEST_TIMEOUT_MS = 2000;
/** Writers during a failover run. */
const FAILOVER_WRITERS = 4;
/** Pause between a failover writer's failed attempt and the next one. */
const FAILOVER_RETRY_MS = 5;
/** Upper bound on one failover run. */
const FAILOVER_MAX_MS = 30_000;

interface ThroughputResult {
  clients: number;
  mode: 'spread' | 'leader';
  seconds: number;
  acked: number;
  writesPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: Record<string, number>;
}

interface FailoverResult {
  run: number;
  killed: string;
  killedTerm: number;
  newLeader: string;
  newTerm: number;
  leaderObservedMs: number;
  firstWriteMs: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** One PUT on a dedicated agent; resolves with the status and body. */
function put(agent: http.Agent, port: number, key: string, value: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const body = Buffer.from(value);
    const req = http.request(
      { host: '127.0.0.1', port, method: 'PUT', path: `/v1/kv/${encodeURIComponent(key)}`, agent, headers: { 'content-length': body.length } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

function errorKind(status: number, body: string): string {
  try {
    return `${status} ${(JSON.parse(body) as { code?: string }).code ?? ''}`.trim();
  } catch {
    return String(status);
  }
}

async function throughput(c: ProcessCluster, clients: number, mode: 'spread' | 'leader', seconds: number): Promise<ThroughputResult> {
  const leader = await c.waitForLeader();
  const targets = mode === 'leader' ? [leader.id] : c.nodes.map((n) => n.id);
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const startMs = Date.now();
  const measureFromMs = startMs + WARMUP_MS;
  const endMs = measureFromMs + seconds * 1000;
  let acked = 0;
  const client = async (i: number) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const port = c.node(targets[i % targets.length]!).port;
    try {
      for (let seq = 0; Date.now() < endMs; seq++) {
        const key = `m/${mode}-${clients}/${i}/${seq}`;
        const t0 = performance.now();
        const sentAt = Date.now();
        try {
          const r = await put(agent, port, key, padValue(`${key}:`, VALUE_BYTES), REQUEST_TIMEOUT_MS);
          const ms = performance.now() - t0;
          if (r.status === 200) {
            if (sentAt >= measureFromMs && Date.now() <= endMs) {
              latencies.push(ms);
              acked++;
            }
          } else {
            const k = errorKind(r.status, r.body);
            errors[k] = (errors[k] ?? 0) + 1;
            await sleep(10);
          }
        } catch (e) {
          const k = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
          errors[k] = (errors[k] ?? 0) + 1;
          await sleep(10);
        }
      }
    } finally {
      agent.destroy();
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
  latencies.sort((a, b) => a - b);
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return {
    clients,
    mode,
    seconds,
    acked,
    writesPerSec: Math.round(acked / seconds),
    p50Ms: r2(percentile(latencies, 50)),
    p90Ms: r2(percentile(latencies, 90)),
    p99Ms: r2(percentile(latencies, 99)),
    maxMs: r2(latencies[latencies.length - 1] ?? NaN),
    errors,
  };
}

async function failover(c: ProcessCluster, run: number): Promise<FailoverResult> {
  const old = await c.waitForLeader({ timeoutMs: 30_000 });
  await c.waitConverged(30_000);
  const followers = c.nodes.map((n) => n.id).filter((id) => id !== old.id);
  let killedAtMs = Number.POSITIVE_INFINITY;
  let firstWriteAtMs: number | undefined;
  let stop = false;
  const writer = async (w: number) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const port = c.node(followers[w % followers.length]!).port;
    try {
      for (let seq = 0; !stop; seq++) {
        const sentAt = Date.now();
        try {
          const r = await put(agent, port, `f/${run}/${w}/${seq}`, padValue('f', VALUE_BYTES), FAILOVER_REQUEST_TIMEOUT_MS);
          if (r.status === 200 && sentAt >= killedAtMs && firstWriteAtMs === undefined) firstWriteAtMs = Date.now();
          if (r.status !== 200) await sleep(FAILOVER_RETRY_MS);
        } catch {
          await sleep(FAILOVER_RETRY_MS);
        }
      }
    } finally {
      agent.destroy();
    }
  };
  const writers = Array.from({ length: FAILOVER_WRITERS }, (_, w) => writer(w));
  try {
    await sleep(1000); // writes flowing before the kill
    killedAtMs = Date.now();
    await c.kill9(old.id);
    const next = await c.waitForLeader({ exclude: old.id, minTerm: old.term, timeoutMs: FAILOVER_MAX_MS });
    const leaderObservedMs = Date.now() - killedAtMs;
    await waitFor('the first write after the kill', () => (firstWriteAtMs !== undefined ? true : undefined), FAILOVER_MAX_MS);
    return {
      run,
      killed: old.id,
      killedTerm: old.term,
      newLeader: next.id,
      newTerm: next.term,
      leaderObservedMs,
      firstWriteMs: firstWriteAtMs! - killedAtMs,
    };
  } finally {
    stop = true;
    await Promise.all(writers);
    if (!c.node(old.id).proc) await c.restart(old.id);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seconds: { type: 'string', default: '10' }, 'failover-runs': { type: 'string', default: '5' }, out: { type: 'string' }, only: { type: 'string' } },
  });
  const seconds = Number(values.seconds);
  const runs = Number(values['failover-runs']);
  const results: { throughput: ThroughputResult[]; failover: FailoverResult[] } = { throughput: [], failover: [] };
  const c = await ProcessCluster.start({ name: 'qkv-measure' }); // default timers
  let ok = false;
  try {
    const l = await c.waitForLeader({ timeoutMs: 30_000 });
    console.log(`cluster up: leader ${l.id} term ${l.term}; dir ${c.dir}`);
    // The numbers depend on the machine and on what else runs on it: say so next to them.
    console.log(`machine: ${os.availableParallelism()} cpus, node ${process.version}, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    if (values.only !== 'failover') {
      for (const clients of [16, 64]) {
        for (const mode of ['spread', 'leader'] as const) {
          const r = await throughput(c, clients, mode, seconds);
          results.throughput.push(r);
          console.log(JSON.stringify({ ...r, loadavg1m: Number(os.loadavg()[0]!.toFixed(1)) }));
        }
      }
    }
    if (values.only !== 'throughput') {
      for (let run = 1; run <= runs; run++) {
        const r = await failover(c, run);
        results.failover.push(r);
        console.log(JSON.stringify(r));
      }
    }
    const st = jsonOf<{ appliedIndex: number }>(await httpRequest(c.node((await c.waitForLeader()).id).port, 'GET', '/v1/status'));
    console.log(`final applied index ${st.appliedIndex}`);
    ok = true;
  } finally {
    await c.teardown({ keepOnFailure: !ok });
  }
  if (values.out) writeFileSync(values.out, JSON.stringify(results, null, 2));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
