// Plain-text tables for the terminal and for docs/benchmarks.md (Markdown pipe tables).
import type { RunResult } from './run.js';

/** A Markdown table from a header and rows (pure). */
export function table(header: string[], rows: Array<Array<string | number | null>>): string {
  const cell = (v: string | number | null) => (v === null ? '–' : String(v));
  const lines = [header, header.map(() => '---'), ...rows.map((r) => r.map(cell))];
  return lines.map((l) => `| ${l.join(' | ')} |`).join('\n');
}

/** Rounds for display: ≥ 100 to integers, else 3 significant digits (pure). */
export function fmt(v: number | null | undefined): string | null {
  if (v === null || v === undefined || !Number.isFinite(v)) return null;
  if (Math.abs(v) >= 100) return String(Math.round(v));
  return String(Number(v.toPrecision(3)));
}

/** A ratio a/b for display, or null when b is 0 or missing (pure). */
export function ratio(a: number | null | undefined, b: number | null | undefined): string | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  return `${(a / b).toFixed(2)}×`;
}

function cpuCell(r: RunResult): string {
  const nodes = Object.entries(r.cpu.byName)
    .filter(([n]) => !n.startsWith('gen') && n !== 'coordinator')
    .map(([n, v]) => `${n} ${fmt(v) ?? '–'}`);
  return nodes.length ? nodes.join(', ') : '–';
}

/** The human-readable report of one run. */
export function formatRun(r: RunResult): string {
  const l = r.latency;
  const what = `${r.target} ${r.op}${r.consistency ? ` (${r.consistency})` : ''} clients=${r.clients} procs=${r.procs} value=${r.valueSize} B keys=${r.keys}`;
  const lines = [
    what,
    `  ops/s       ${fmt(r.opsPerSec)}   (${r.ops} ops in ${r.seconds} s)`,
    `  latency ms  p50 ${fmt(l.p50Ms)}  p90 ${fmt(l.p90Ms)}  p99 ${fmt(l.p99Ms)}  p99.9 ${fmt(l.p999Ms)}  max ${fmt(l.maxMs)}  mean ${fmt(l.meanMs)}`,
    `  errors      ${r.errors}${r.errors ? ` ${JSON.stringify(r.errorKinds)}` : ''}`,
    `  CPU % of one core: nodes ${cpuCell(r)} (sum ${fmt(r.cpu.nodesSumPct) ?? '–'}); generator ${fmt(r.cpu.generatorPct) ?? '–'}; coordinator ${fmt(r.cpu.byName['coordinator']) ?? '–'}; other processes ${fmt(r.cpu.otherPct) ?? '–'}`,
    `  host busy   ${fmt(r.cpu.hostBusyPct) ?? '–'} % of ${r.host.cores} cores, load average (1 min) ${r.host.loadAvg1m}`,
  ];
  if (r.server) {
    const parts = Object.entries(r.server).map(
      ([n, s]) => `${n} ${fmt(s.fsyncsPerSec) ?? '–'} fsync/s @ ${fmt(s.fsyncMeanMs) ?? '–'} ms` + (s.batchMeanEntries !== null ? `, ${fmt(s.batchMeanEntries)} entries/batch` : ''),
    );
    lines.push(`  server      ${parts.join('; ')}`);
  }
  if (r.prefill) lines.push(`  prefill     ${r.prefill.keys} keys in ${r.prefill.seconds} s (${r.prefill.errors} errors)`);
  return lines.join('\n');
}
