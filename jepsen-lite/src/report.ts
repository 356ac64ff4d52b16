// The report: `<out>/report.html` (one self-contained page that opens offline, Chart.js inlined)
// and `<out>/summary.json` (the same verdicts for machines).

import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ComposedResult, Validity } from './checker.js';
import type { AvailabilityEvidence, FaultWindow } from './checkers/availability.js';
import type { LogAgreementEvidence } from './checkers/log-agreement.js';
import type { WatchEvidence } from './checkers/watch.js';
import type { NodeExitsEvidence, NodeMemoryEvidence } from './checkers/processes.js';
import type { Op, OpPair } from './history.js';
import { outcomeOf, pairOps } from './history.js';
import { REPORT_SCRIPT } from './report-script.js';

/** What the run was; every field optional so `check <dir>` works on sparse directories. */
export interface RunMeta {
  name?: string;
  seed?: number;
  workload?: string;
  nemeses?: string[];
  nodes?: string[];
  durationS?: number;
  command?: string;
}

/** A fault window plus the label the report prints on its band. */
export interface LabelledFault extends FaultWindow {
  label: string;
}

/** Everything the report shows. Links are relative to the output directory. */
export interface ReportInput {
  meta: RunMeta;
  ops: readonly Op[];
  faults: readonly LabelledFault[];
  checks: ComposedResult;
  /** Checkers not run because their input was absent. */
  skipped?: { checker: string; reason: string }[];
  links: { history: string; nodeLogs: { node: string; href: string }[] };
}

/** The machine-readable summary written next to the report. */
export interface Summary {
  valid: Validity;
  meta: RunMeta;
  checkers: Record<string, { valid: Validity; summary: string }>;
  skipped: { checker: string; reason: string }[];
  ops: { total: number; ok: number; fail: number; info: number };
  faults: number;
  failoversMs: (number | null)[];
}

/** Ops drawn on the timeline and latency charts; more are summarized, not drawn. */
export const REPORT_OPS_DRAWN_MAX = 50_000;
/** Characters of evidence JSON embedded per checker. */
export const EVIDENCE_CHARS_MAX = 20_000;
const NS_PER_S = 1e9;

/** Builds the summary object. */
export function buildSummary(input: ReportInput): Summary {
  const pairs = pairOps(input.ops);
  const counts = { total: pairs.length, ok: 0, fail: 0, info: 0 };
  for (const p of pairs) counts[outcomeOf(p)]++;
  const avail = input.checks.results.availability?.evidence as AvailabilityEvidence | undefined;
  return {
    valid: input.checks.valid,
    meta: input.meta,
    checkers: Object.fromEntries(Object.entries(input.checks.results).map(([name, r]) => [name, { valid: r.valid, summary: summarize(name, r.evidence) }])),
    skipped: input.skipped ?? [],
    ops: counts,
    faults: input.faults.length,
    failoversMs: avail?.failovers.map((f) => f.failoverMs) ?? [],
  };
}

/** Writes report.html and summary.json into `outDir` (created if needed). */
export async function writeReport(outDir: string, input: ReportInput): Promise<{ htmlPath: string; summaryPath: string; summary: Summary }> {
  await mkdir(outDir, { recursive: true });
  const summary = buildSummary(input);
  const htmlPath = join(outDir, 'report.html');
  const summaryPath = join(outDir, 'summary.json');
  await writeFile(htmlPath, renderReportHtml(input, summary));
  await writeFile(summaryPath, JSON.stringify(summary, null, 2) + '\n');
  return { htmlPath, summaryPath, summary };
}

let chartJsSource: string | undefined;

/** The minified Chart.js UMD build from node_modules, read once. */
function chartJs(): string {
  if (chartJsSource === undefined) {
    const main = createRequire(import.meta.url).resolve('chart.js');
    const src = readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8');
    if (/<\/script/i.test(src)) throw new Error('chart.js build contains "</script" and cannot be inlined');
    chartJsSource = src;
  }
  return chartJsSource;
}

/** The data the browser script draws, times in seconds since the start of the history. */
function chartData(input: ReportInput): unknown {
  const pairs = pairOps(input.ops);
  const lastNs = input.ops.reduce((m, o) => Math.max(m, o.time), 0);
  const durationS = Math.max(1, (input.meta.durationS ?? 0) || Math.ceil(lastNs / NS_PER_S));
  const drawn = pairs.slice(0, REPORT_OPS_DRAWN_MAX).map((p) => ({
    p: p.invoke.process,
    s: p.invoke.time / NS_PER_S,
    e: p.complete === undefined ? null : p.complete.time / NS_PER_S,
    o: drawnOutcome(p),
  }));
  const buckets = Array.from({ length: durationS + 1 }, (_, t) => ({ t, ok: 0, 'cas-mismatch': 0, fail: 0, info: 0 }));
  for (const p of pairs) {
    if (p.complete === undefined) continue;
    const b = buckets[Math.min(durationS, Math.floor(p.complete.time / NS_PER_S))]!;
    b[drawnOutcome(p)]++;
  }
  return {
    durationS,
    processes: [...new Set(pairs.map((p) => p.invoke.process))].sort((a, b) => a - b),
    ops: drawn,
    opsTotal: pairs.length,
    throughput: buckets,
    faults: input.faults.map((f) => ({ label: f.label, startS: f.startNs / NS_PER_S, endS: f.endNs === null ? null : f.endNs / NS_PER_S })),
  };
}

/** The outcome as drawn: a failed compare-and-set is an answer, drawn apart from real failures. */
function drawnOutcome(p: OpPair): 'ok' | 'cas-mismatch' | 'fail' | 'info' {
  const o = outcomeOf(p);
  return o === 'fail' && p.complete?.error === 'QKV_CAS_FAILED' ? 'cas-mismatch' : o;
}

/** Renders the whole page as one string. */
export function renderReportHtml(input: ReportInput, summary: Summary = buildSummary(input)): string {
  const verdict = verdictText(summary.valid);
  const m = input.meta;
  const metaLine = [
    m.workload && `workload ${m.workload}`,
    m.nemeses && `nemesis ${m.nemeses.join(', ') || 'none'}`,
    m.nodes && `${m.nodes.length} nodes`,
    m.seed !== undefined && `seed ${m.seed}`,
    `${summary.ops.total} ops (${summary.ops.ok} ok, ${summary.ops.fail} fail, ${summary.ops.info} info)`,
  ].filter((x): x is string => typeof x === 'string');
  const drawnNote = summary.ops.total > REPORT_OPS_DRAWN_MAX ? `<p class="note">The charts draw the first ${REPORT_OPS_DRAWN_MAX} of ${summary.ops.total} operations.</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jepsen-lite: ${esc(verdict)}${m.name ? ' — ' + esc(m.name) : ''}</title>
<style>${CSS}</style></head>
<body>
<header><h1>jepsen-lite report${m.name ? ': ' + esc(m.name) : ''}</h1>
<div id="verdict" class="verdict ${cls(summary.valid)}" data-valid="${String(summary.valid)}">${esc(verdict)}</div>
<p>${metaLine.map(esc).join(' · ')}</p>
${m.command ? `<p class="note">Replay: <code>${esc(m.command)}</code></p>` : ''}</header>
<section><h2>Checkers</h2>${checkerTable(input, summary)}</section>
<section><h2>Availability</h2>${availabilityTable(input)}</section>
<section><h2>Operations per process</h2>${drawnNote}<div class="chart tall"><canvas id="chart-timeline"></canvas></div></section>
<section><h2>Latency</h2><div class="chart"><canvas id="chart-latency"></canvas></div></section>
<section><h2>Throughput</h2><div class="chart"><canvas id="chart-throughput"></canvas></div></section>
<section><h2>Raw data</h2><ul>
<li><a href="${esc(input.links.history)}">history (JSON lines, Jepsen-compatible)</a></li>
${input.links.nodeLogs.map((l) => `<li><a href="${esc(l.href)}">log of ${esc(l.node)}</a></li>`).join('\n')}
<li><a href="summary.json">summary.json</a></li></ul></section>
<script type="application/json" id="report-data">${jsonForScript(chartData(input))}</script>
<script>${chartJs()}</script>
<script>${REPORT_SCRIPT}</script>
</body></html>
`;
}

function checkerTable(input: ReportInput, summary: Summary): string {
  const rows = Object.entries(input.checks.results).map(([name, r]) => {
    let evidence = JSON.stringify(r.evidence, null, 2) ?? 'null';
    if (evidence.length > EVIDENCE_CHARS_MAX) evidence = evidence.slice(0, EVIDENCE_CHARS_MAX) + '\n… (truncated; see summary.json and rerun `check` for all of it)';
    return `<tr><td>${esc(name)}</td><td class="${cls(r.valid)}" data-checker="${esc(name)}">${esc(verdictText(r.valid))}</td>
<td>${esc(summary.checkers[name]?.summary ?? '')}<details><summary>evidence</summary><pre>${esc(evidence)}</pre></details></td></tr>`;
  });
  for (const s of summary.skipped) rows.push(`<tr><td>${esc(s.checker)}</td><td>skipped</td><td>${esc(s.reason)}</td></tr>`);
  return `<table><thead><tr><th>checker</th><th>verdict</th><th>evidence</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`;
}

function availabilityTable(input: ReportInput): string {
  const a = input.checks.results.availability?.evidence as AvailabilityEvidence | undefined;
  if (a === undefined) return '<p>No availability data.</p>';
  const pct = (x: number | null): string => (x === null ? '–' : `${(x * 100).toFixed(1)} %`);
  const ms = (x: number | null): string => (x === null ? 'no ok write after it' : `${x.toFixed(0)} ms`);
  const faultRows = a.failovers.map((f) => `<tr><td>${esc(f.id)}</td><td>${esc(f.kind)}</td><td>${esc(ms(f.failoverMs))}</td></tr>`).join('\n');
  return `<table><tbody>
<tr><th>error rate during faults</th><td>${pct(a.duringFaults.errorRate)} of ${a.duringFaults.ops} ops</td></tr>
<tr><th>error rate outside faults</th><td>${pct(a.outsideFaults.errorRate)} of ${a.outsideFaults.ops} ops</td></tr>
<tr><th>1-second windows with an ok write</th><td>${a.windowsWithOkWrite} of ${a.windows} (${pct(a.okWindowShare)})</td></tr>
<tr><th>ok write after the last heal</th><td>${a.recoveredAfterLastHeal === null ? '–' : a.recoveredAfterLastHeal ? 'yes' : 'NO: the cluster did not recover'}</td></tr>
<tr><th>longest failover</th><td>${esc(a.failoverMsMax === null ? '–' : ms(a.failoverMsMax))}</td></tr>
</tbody></table>
<table><thead><tr><th>fault</th><th>kind</th><th>time to first ok write</th></tr></thead><tbody>${faultRows || '<tr><td colspan="3">no faults</td></tr>'}</tbody></table>`;
}

/** A one-line summary of a checker's evidence, by checker name. */
export function summarize(name: string, evidence: unknown): string {
  const e = evidence as Record<string, unknown>;
  const len = (k: string): number => (Array.isArray(e[k]) ? (e[k] as unknown[]).length : 0);
  switch (name) {
    case 'linearizable': {
      const first = (e.failures as { explanation?: string }[] | undefined)?.[0]?.explanation;
      return `${String(e.keysChecked)} keys, ${String(e.opsChecked)} ops; ${len('failures')} keys not linearizable, ${len('unknownKeys')} undecided${first === undefined ? '' : ` — e.g. ${first}`}`;
    }
    case 'watch': {
      const w = evidence as Partial<WatchEvidence>;
      const d = w.divergent?.[0];
      const eg = d === undefined ? '' : ` — e.g. ${d.id} at #${d.at}: ${d.why}`;
      return `${String(w.referenceChanges ?? 0)} committed changes, ${w.watchers?.length ?? 0} watchers (${(w.watchers ?? []).map((x) => `${x.id} ${x.changes}`).join(', ')}); ${w.divergent?.length ?? 0} divergent, ${w.stopped?.length ?? 0} stopped early, ${w.reference?.length ?? 0} reference problems${eg}`;
    }
    case 'bank':
      return `${String(e.readsChecked)} reads of every account (${String(e.finalReads)} final), ${len('badReads')} not summing to the total; transfers ok ${String(e.transfersOk)}, lost a compare or failed ${String(e.transfersFailed)}, unsure ${String(e.transfersUnsure)}${len('badReads') > 0 ? ` — e.g. ${String((e.badReads as { why: string }[])[0]!.why)}` : ''}`;
    case 'set':
      return `${String(e.acknowledgedCount)} acknowledged adds, ${len('lost')} lost, ${len('unexpected')} unexpected, ${len('failedButPresent')} failed adds present, ${String(e.finalReads)} final reads`;
    case 'split-brain':
      return `${String(e.samples)} status polls, ${String(e.termsSeen)} terms; ${len('multipleLeaders')} terms with 2+ leaders, ${len('staleTermWrites')} writes acknowledged in a superseded term`;
    case 'log-agreement': {
      const c = (e.conflicts as LogAgreementEvidence['conflicts'] | undefined)?.[0];
      const where = c === undefined ? '' : ` — first at index ${c.index}: ${c.hashes.map((h) => `${h.node}${h.time === null ? ' (final)' : ''} ${h.hash.slice(0, 12)}`).join(', ')}`;
      return `${String(e.indexesCompared)} indexes compared, ${len('conflicts')} conflicts; state hashes match: ${String(e.stateHashesMatch ?? 'n/a')}; final applied indexes ${JSON.stringify(e.finalAppliedIndex ?? {})}${where}`;
    }
    case 'node-exits': {
      const x = evidence as NodeExitsEvidence;
      const first = x.unexpected[0];
      const eg = first === undefined ? '' : ` — e.g. ${first.node} (pid ${first.pid}) code ${String(first.code)} signal ${String(first.signal)}`;
      return `${x.exits} node process exits, ${x.unexpected.length} unexpected${eg}; expected: ${JSON.stringify(x.expectedByReason)}`;
    }
    case 'node-memory': {
      const m = evidence as NodeMemoryEvidence;
      const peaks = Object.entries(m.perNode).map(([n, v]) => `${n} ${v.firstMiB}→${v.peakMiB} MiB`).join(', ');
      return `${m.samples} RSS samples, bound ${(m.rssBytesMax / 1048576).toFixed(0)} MiB, ${m.overBound.length} processes over it; first→peak: ${peaks}`;
    }
    case 'availability': {
      const a = evidence as AvailabilityEvidence;
      return `longest failover ${a.failoverMsMax === null ? '–' : a.failoverMsMax.toFixed(0) + ' ms'}; ok-write windows ${a.okWindowShare === null ? '–' : (a.okWindowShare * 100).toFixed(1) + ' %'}`;
    }
    default:
      return (JSON.stringify(evidence) ?? '').slice(0, 200);
  }
}

function verdictText(v: Validity): string {
  return v === true ? 'VALID' : v === false ? 'INVALID' : 'UNKNOWN';
}

function cls(v: Validity): string {
  return v === true ? 'valid' : v === false ? 'invalid' : 'unknown';
}

/** HTML-escapes text for element content and attribute values. */
function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** JSON safe inside a <script> element: no "</script", no HTML comment openers, no line separators. */
function jsonForScript(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 16px; color: #222; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.verdict { display: inline-block; font-weight: 700; font-size: 18px; padding: 4px 14px; border-radius: 4px; color: #fff; }
.verdict.valid, td.valid { background: #2e7d32; color: #fff; } .verdict.invalid, td.invalid { background: #c62828; color: #fff; }
.verdict.unknown, td.unknown { background: #ef6c00; color: #fff; }
table { border-collapse: collapse; margin: 8px 0; } th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
td.valid, td.invalid, td.unknown { font-weight: 700; }
pre { max-height: 320px; overflow: auto; background: #f6f6f6; padding: 8px; font-size: 12px; }
.chart { position: relative; height: 280px; } .chart.tall { height: 420px; }
.note { color: #666; } code { background: #f0f0f0; padding: 1px 4px; }
`;
