// `bench tls-cost`: what TLS costs. Plaintext and TLS quorumkv clusters alternately (plain, TLS,
// plain, TLS, …) on fresh local clusters with the same workload (default puts at 64 clients,
// 256 B), then a table of every run and the median ratio. Alternating spreads a noisy machine's
// drift over both modes; the target is at most 15 % fewer ops/s with TLS.
import { median, nodeCpuUsPerOp } from './compare.js';
import type { CompareOptions } from './options.js';
import { runBenchmark, type RunResult } from './run.js';

/** The bound on the throughput TLS may cost (fraction of plaintext ops/s). */
export const TLS_COST_TARGET = 0.15;

/** One measured run of either mode. */
export interface TlsCostRun {
  tls: boolean;
  rep: number;
  opsPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
  errors: number;
  /** CPU of the three nodes per successful put, µs (less sensitive to a busy machine than ops/s). */
  nodeCpuUsPerOp: number | null;
}

/** The table and verdict of `tls-cost` (pure). */
export function formatTlsCost(runs: TlsCostRun[]): string {
  const fmt = (v: number | null, d = 1) => (v === null ? '-' : v.toFixed(d));
  const lines = ['| rep | mode | ops/s | p50 ms | p99 ms | errors | node CPU µs/put |', '|---|---|---|---|---|---|---|'];
  for (const r of runs) lines.push(`| ${r.rep} | ${r.tls ? 'TLS' : 'plain'} | ${r.opsPerSec.toFixed(0)} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${r.errors} | ${fmt(r.nodeCpuUsPerOp, 0)} |`);
  const plain = median(runs.filter((r) => !r.tls).map((r) => r.opsPerSec));
  const tls = median(runs.filter((r) => r.tls).map((r) => r.opsPerSec));
  if (plain === null || tls === null || plain <= 0) return lines.join('\n');
  const cost = 1 - tls / plain;
  lines.push('', `median ops/s: plain ${plain.toFixed(0)}, TLS ${tls.toFixed(0)}: TLS costs ${(cost * 100).toFixed(1)} % (target <= ${TLS_COST_TARGET * 100} %)`);
  const cpuPlain = median(runs.filter((r) => !r.tls).map((r) => r.nodeCpuUsPerOp));
  const cpuTls = median(runs.filter((r) => r.tls).map((r) => r.nodeCpuUsPerOp));
  if (cpuPlain !== null && cpuTls !== null) lines.push(`median node CPU per put: plain ${cpuPlain.toFixed(0)} µs, TLS ${cpuTls.toFixed(0)} µs (${((cpuTls / cpuPlain - 1) * 100).toFixed(1)} %)`);
  return lines.join('\n');
}

/** Runs `reps` pairs (plain, TLS) of the put workload and prints the table; returns the exit code. */
export async function runTlsCost(o: CompareOptions): Promise<number> {
  const runs: TlsCostRun[] = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const tls of [false, true]) {
      const r: RunResult = await runBenchmark({ ...o, target: 'quorumkv', op: 'put', prefill: false, endpoints: undefined, tls }, tls ? 'quorumkv+tls' : 'quorumkv');
      runs.push({ tls, rep, opsPerSec: r.opsPerSec, p50Ms: r.latency.p50Ms, p99Ms: r.latency.p99Ms, errors: r.errors, nodeCpuUsPerOp: nodeCpuUsPerOp(r) });
    }
  }
  console.log(o.json ? JSON.stringify(runs) : formatTlsCost(runs));
  return 0;
}
