// Runs the composed checkers over a loaded run and writes the report: the whole of
// `jepsen-lite check <dir>`, and the last step of `run`.

import type { CheckResult, ComposedResult } from './checker.js';
import { compose } from './checker.js';
import type { AvailabilityOptions } from './checkers/availability.js';
import { checkAvailability } from './checkers/availability.js';
import type { LinearizableOptions } from './checkers/linearizable.js';
import { checkLinearizable } from './checkers/linearizable.js';
import { checkLogAgreement } from './checkers/log-agreement.js';
import type { NodeMemoryOptions } from './checkers/processes.js';
import { checkNodeExits, checkNodeMemory } from './checkers/processes.js';
import { checkSet } from './checkers/set.js';
import { checkWatch } from './checkers/watch.js';
import { checkBank } from './checkers/bank.js';
import { BANK_ACCOUNTS, BANK_TOTAL } from './workloads.js';
import type { WorkloadName } from './args.js';
import type { AckedWrite } from './checkers/split-brain.js';
import { checkSplitBrain } from './checkers/split-brain.js';
import type { OpPair } from './history.js';
import { outcomeOf, pairOps } from './history.js';
import type { Summary } from './report.js';
import { writeReport } from './report.js';
import type { RunData } from './rundir.js';
import { RUN_FILES, loadRunDir } from './rundir.js';

/** Options of {@link checkRun}. */
export interface CheckOptions {
  linearizable?: LinearizableOptions;
  availability?: AvailabilityOptions;
  memory?: NodeMemoryOptions;
}

/** The composed verdict plus the checkers left out because their input file was absent. */
export interface RunCheck extends ComposedResult {
  skipped: { checker: string; reason: string }[];
}

/** The workload a history came from: from run.json, else guessed from its op types. */
export function workloadOf(data: Pick<RunData, 'meta' | 'ops'>): WorkloadName {
  const named = data.meta.workload;
  if (named === 'register' || named === 'set' || named === 'watch' || named === 'bank') return named;
  if (data.ops.some((o) => o.f === 'transfer')) return 'bank';
  return data.ops.some((o) => o.f === 'add') ? 'set' : 'register';
}

/** Acknowledged writes that carry the acknowledging leader's term (for the split-brain checker). */
export function ackedWrites(pairs: readonly OpPair[]): AckedWrite[] {
  const out: AckedWrite[] = [];
  for (const p of pairs) {
    if (p.invoke.f === 'read' || outcomeOf(p) !== 'ok' || p.complete?.term === undefined) continue;
    const w: AckedWrite = { index: p.complete.index, invokeTime: p.invoke.time, completeTime: p.complete.time, term: p.complete.term };
    if (p.complete.node !== undefined) w.node = p.complete.node;
    out.push(w);
  }
  return out;
}

/** Runs every checker whose input is present. */
export function checkRun(data: RunData, options: CheckOptions = {}): RunCheck {
  const pairs = pairOps(data.ops);
  const results: Record<string, CheckResult> = {};
  const skipped: RunCheck['skipped'] = [];
  const workload = workloadOf(data);
  if (workload === 'register') results.linearizable = checkLinearizable(pairs, options.linearizable);
  else if (workload === 'bank') results.bank = checkBank(pairs, { accounts: BANK_ACCOUNTS, total: BANK_TOTAL });
  else if (workload === 'set') results.set = checkSet(pairs);
  else if (data.watches) results.watch = checkWatch(data.watches, pairs);
  else results.watch = { valid: 'unknown', evidence: { reason: `no ${RUN_FILES.watches}` } };
  const writes = ackedWrites(pairs);
  if (data.present.status || writes.length > 0) results['split-brain'] = checkSplitBrain(data.status, writes);
  else skipped.push({ checker: 'split-brain', reason: `no ${RUN_FILES.status} and no acknowledged write carries a term` });
  if (data.present.hashes) results['log-agreement'] = checkLogAgreement(data.hashSamples, data.finals);
  else skipped.push({ checker: 'log-agreement', reason: `no ${RUN_FILES.hashes}` });
  if (data.present.exits) results['node-exits'] = checkNodeExits(data.exits);
  else skipped.push({ checker: 'node-exits', reason: `no ${RUN_FILES.exits} (the harness sees node processes only with --env local)` });
  if (data.present.rss) results['node-memory'] = checkNodeMemory(data.rss, options.memory);
  else skipped.push({ checker: 'node-memory', reason: `no ${RUN_FILES.rss} (the harness sees node processes only with --env local)` });
  // Liveness by default: after the last heal the cluster must take a write again.
  results.availability = checkAvailability(pairs, data.faults, { requireRecovery: true, ...options.availability });
  return { ...compose(results), skipped };
}

/** Loads `dir`, checks it and writes `report.html` + `summary.json` into it. */
export async function checkDir(dir: string, options: CheckOptions = {}): Promise<{ check: RunCheck; summary: Summary; htmlPath: string }> {
  const data = loadRunDir(dir);
  const check = checkRun(data, options);
  const { summary, htmlPath } = await writeReport(dir, {
    meta: data.meta,
    ops: data.ops,
    faults: data.faults,
    checks: check,
    skipped: check.skipped,
    links: { history: RUN_FILES.history, nodeLogs: data.nodeLogs },
  });
  return { check, summary, htmlPath };
}

