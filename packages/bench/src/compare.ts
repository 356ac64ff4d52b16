// `bench compare`: quorumkv and etcd alternately (A, B, A, B) on fresh local clusters, for the
// workloads of the targets, and a table of ratios.
import { checkProgram, type TargetName } from './cluster.js';
import type { CompareOptions, RunOptions } from './options.js';
import { fmt, ratio, table } from './report.js';
import { programsOf, runBenchmark, type RunResult } from './run.js';

/** The run options of one compare workload (pure). */
export function workloadOptions(base: RunOptions, workload: string, target: TargetName): RunOptions {
  const op = workload === 'get' || workload === 'mixed' || workload === 'txn' ? workload : 'put';
  return { ...base, target, op, prefill: op !== 'put', endpoints: undefined };
}

/** The median of numbers, null when empty (pure). */
export function median(xs: Array<number | null | undefined>): number | null {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

function workloadName(r: RunResult): string {
  const c = r.op === 'put' || r.op === 'txn' ? '' : ` ${r.consistency}`;
  return `${r.op}${c} C=${r.clients} ${r.valueSize} B`;
}

/** Node CPU per successful operation, in µs (pure). */
export function nodeCpuUsPerOp(r: RunResult): number | null {
  if (r.cpu.nodesSumPct === null || r.opsPerSec <= 0) return null;
  return ((r.cpu.nodesSumPct / 100) * 1e6) / r.opsPerSec;
}

/** The busiest member's fsync rate, mean fsync ms and entries per batch, for display (pure). */
export function busiestFsync(r: RunResult): string | null {
  const nodes = Object.values(r.server ?? {}).filter((s) => s.fsyncsPerSec !== null);
  if (nodes.length === 0) return null;
  const top = nodes.reduce((a, b) => ((b.fsyncsPerSec ?? 0) > (a.fsyncsPerSec ?? 0) ? b : a));
  const batch = top.batchMeanEntries === null ? '' : `, ${fmt(top.batchMeanEntries)}/batch`;
  return `${fmt(top.fsyncsPerSec)} @ ${fmt(top.fsyncMeanMs) ?? '–'} ms${batch}`;
}

/** The per-run table. */
export function runsTable(results: RunResult[]): string {
  return table(
    ['#', 'workload', 'target', 'ops/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'nodes CPU % (sum)', 'generator CPU %', 'other CPU %', 'host busy %', 'load 1m', 'busiest node fsync/s @ mean'],
    results.map((r, i) => [
      i + 1, workloadName(r), r.target, fmt(r.opsPerSec), fmt(r.latency.p50Ms), fmt(r.latency.p99Ms), fmt(r.latency.p999Ms), fmt(r.latency.maxMs),
      r.errors, fmt(r.cpu.nodesSumPct), fmt(r.cpu.generatorPct), fmt(r.cpu.otherPct), fmt(r.cpu.hostBusyPct), r.host.loadAvg1m, busiestFsync(r),
    ]),
  );
}

function range(xs: number[]): string {
  return xs.length > 1 ? ` (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : '';
}

/** The ratio table: medians over repetitions, quorumkv ÷ etcd. */
export function ratioTable(results: RunResult[]): string {
  const workloads = [...new Set(results.map(workloadName))];
  const rows = workloads.map((w) => {
    const q = results.filter((r) => workloadName(r) === w && r.target === 'quorumkv');
    const e = results.filter((r) => workloadName(r) === w && r.target === 'etcd');
    const med = (rs: RunResult[], f: (r: RunResult) => number | null) => median(rs.map(f));
    const qOps = med(q, (r) => r.opsPerSec);
    const eOps = med(e, (r) => r.opsPerSec);
    const qP99 = med(q, (r) => r.latency.p99Ms);
    const eP99 = med(e, (r) => r.latency.p99Ms);
    return [
      w,
      `${fmt(qOps) ?? '–'}${range(q.map((r) => r.opsPerSec))}`,
      `${fmt(eOps) ?? '–'}${range(e.map((r) => r.opsPerSec))}`,
      ratio(qOps, eOps),
      fmt(qP99), fmt(eP99), ratio(qP99, eP99),
      fmt(med(q, (r) => r.cpu.nodesSumPct)), fmt(med(e, (r) => r.cpu.nodesSumPct)),
      fmt(med(q, nodeCpuUsPerOp)), fmt(med(e, nodeCpuUsPerOp)),
      fmt(med(q, (r) => r.cpu.generatorPct)), fmt(med(e, (r) => r.cpu.generatorPct)),
      `${q.reduce((s, r) => s + r.errors, 0)} / ${e.reduce((s, r) => s + r.errors, 0)}`,
    ];
  });
  return table(
    ['workload', 'quorumkv ops/s', 'etcd ops/s', 'ops/s ratio', 'quorumkv p99 ms', 'etcd p99 ms', 'p99 ratio', 'qkv nodes CPU %', 'etcd nodes CPU %', 'qkv node CPU µs/op', 'etcd node CPU µs/op', 'qkv gen CPU %', 'etcd gen CPU %', 'errors q / e'],
    rows,
  );
}

/** Runs the comparison and prints the tables; returns the exit code. */
export async function runCompare(o: CompareOptions): Promise<number> {
  // Fail before the first run, not halfway through, when a program is missing.
  for (const t of ['quorumkv', 'etcd'] as const) checkProgram(t, programsOf(o));
  const results: RunResult[] = [];
  const total = o.reps * o.workloads.length * 2;
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const w of o.workloads) {
      for (const target of ['quorumkv', 'etcd'] as const) {
        const label = `${results.length + 1}/${total} ${target} ${w}`;
        const r = await runBenchmark(workloadOptions(o, w, target), label);
        results.push(r);
        if (o.json) console.log(JSON.stringify({ type: 'run', rep, workload: w, ...r }));
        else if (!o.quiet) process.stderr.write(`[${label}] ${fmt(r.opsPerSec)} ops/s p99 ${fmt(r.latency.p99Ms)} ms errors ${r.errors}\n`);
      }
    }
  }
  if (!o.json) {
    console.log(`\nRuns (in order; A = quorumkv, B = etcd; CPU in % of one core):\n\n${runsTable(results)}`);
    console.log(`\nRatios (median over ${o.reps} repetition${o.reps > 1 ? 's' : ''}; ratio = quorumkv / etcd):\n\n${ratioTable(results)}`);
  }
  return 0;
}
