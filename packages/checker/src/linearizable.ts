// Linearizability of a register history, per key, by the Wing–Gong search with Lowe's
// memoization (the "WGL" algorithm that Knossos and Porcupine use). The register model and what
// each outcome means are in register.ts; the search is in wgl.ts.

import type { OpPair } from './history.js';
import type { KeyOps, RegOp } from './register.js';
import { keyOf, regValue, toKeyOps } from './register.js';
import type { CheckResult, Validity } from './verdict.js';
import { mergeValid } from './verdict.js';
import type { BudgetKind, SearchBudget, SearchOutcome } from './wgl.js';
import { searchKey } from './wgl.js';

/** Options of {@link checkLinearizable}. Every budget is per key. */
export interface LinearizableOptions {
  /**
   * Search steps per key (one step = one call or return event visited); when spent the key is
   * `unknown`. The verdict then depends on the history alone. Default {@link LIN_BUDGET_STEPS_PER_KEY_DEFAULT}.
   */
  budgetStepsPerKey?: number;
  /**
   * Search time per key, read from `nowMs`; when spent the key is `unknown`. Requires `nowMs`
   * (this package reads no clock of its own). Default: no time budget.
   */
  budgetMsPerKey?: number;
  /** The clock of `budgetMsPerKey`, in ms (e.g. `performance.now`). */
  nowMs?: () => number;
  /** Memo entries per key; when reached the key is `unknown`. Default {@link LIN_MEMO_ENTRIES_MAX_DEFAULT}. */
  memoEntriesMaxPerKey?: number;
  /** Memo bytes per key (entries × their size); when reached the key is `unknown`. Default {@link LIN_MEMO_BYTES_MAX_DEFAULT}. */
  memoBytesMaxPerKey?: number;
  /** The register's value before any write. Default `null` (absent). */
  initialValue?: unknown;
}

/** One operation as the checker saw it, for evidence. */
export interface LinOpSummary {
  process: number;
  f: string;
  /** The value of the register op (without the key). */
  value: unknown;
  outcome: 'ok' | 'info';
  invokeIndex: number;
  completeIndex: number | null;
  invokeTimeNs: number;
  completeTimeNs: number | null;
}

/** Why one key is not linearizable. */
export interface KeyFailure {
  key: string;
  /** One sentence a person can check against the history. */
  explanation: string;
  /** The longest linearizable prefix found: ops in the order they took effect. */
  longestPrefix: LinOpSummary[];
  /** The register's value after that prefix. */
  stateAfterPrefix: unknown;
  /** The completed op that could not be placed after the prefix (its deadline came first). */
  blockedOp: LinOpSummary | null;
  /** Ops not in the prefix whose interval overlaps the blocked op: the candidates that were tried. */
  concurrentOps: LinOpSummary[];
}

/** A key whose search ran out of budget: neither valid nor invalid. */
export interface UnknownKey {
  key: string;
  /** Which budget ran out: `steps` and `memo` are deterministic, `time` is not. */
  budget: BudgetKind;
  reason: string;
}

/** Evidence of {@link checkLinearizable}. */
export interface LinearizableEvidence {
  keysChecked: number;
  opsChecked: number;
  /** Search steps over all keys: the same history and options always give the same count (time budget aside). */
  steps: number;
  failures: KeyFailure[];
  /** Keys whose search ran out of budget: neither valid nor invalid. */
  unknownKeys: UnknownKey[];
  /** Ops the checker could not interpret (wrong value shape); they make the result unknown. */
  malformedOps: number[];
}

/**
 * Default search steps per key. Measured speeds run from ~1.6 to ~16 million steps per second
 * (slower as the memo grows), so this is 3 to 30 s of search; jepsen-lite's 5 s time budget
 * usually ends a hard key first. A simulation should set a budget that fits its seeds.
 */
export const LIN_BUDGET_STEPS_PER_KEY_DEFAULT = 50_000_000;
/** Default memo size bound per key. */
export const LIN_MEMO_ENTRIES_MAX_DEFAULT = 2_000_000;
/** Default memo bytes bound per key. */
export const LIN_MEMO_BYTES_MAX_DEFAULT = 512 * 1024 * 1024;
/** The largest memo entry bound accepted (a JavaScript Map holds at most 2^24 entries). */
export const LIN_MEMO_ENTRIES_MAX_LIMIT = 16_000_000;

/** Options that cannot be used: a programming error of the caller, reported before any search. */
export class LinearizableOptionsError extends Error {
  readonly code = 'QKV_CHECKER_OPTIONS';
  constructor(message: string) {
    super(message);
    this.name = 'LinearizableOptionsError';
  }
}

/**
 * Checks that the register history is linearizable, one key at a time (keys in sorted order).
 * Valid when every key is; invalid when some key is not (evidence per key); unknown when no key
 * is invalid but some search ran out of budget or some op could not be read.
 *
 * @example
 * const r = checkLinearizable(pairOps(ops), { budgetStepsPerKey: 1_000_000 });
 * if (r.valid === false) console.log(r.evidence.failures[0]?.explanation);
 */
export function checkLinearizable(pairs: readonly OpPair[], options: LinearizableOptions = {}): CheckResult<LinearizableEvidence> {
  const budget = searchBudgetOf(options);
  const { byKey, malformedOps } = groupByKey(pairs);
  const verdicts = [...byKey.keys()].sort(compareKeys).map((key) => checkKey(key, toKeyOps(byKey.get(key)!, options.initialValue ?? null), budget));
  return resultOf(byKey.size, verdicts, malformedOps);
}

/** The verdict over all keys from each key's (in key order) and the malformed ops. */
export function resultOf(keysChecked: number, verdicts: readonly KeyVerdict[], malformedOps: readonly number[]): CheckResult<LinearizableEvidence> {
  const evidence: LinearizableEvidence = { keysChecked, opsChecked: 0, steps: 0, failures: [], unknownKeys: [], malformedOps: [...malformedOps] };
  for (const v of verdicts) {
    evidence.opsChecked += v.opsChecked;
    evidence.steps += v.steps;
    if (v.unknown !== undefined) evidence.unknownKeys.push(v.unknown);
    if (v.failure !== undefined) evidence.failures.push(v.failure);
  }
  return { valid: mergeValid([malformedOps.length > 0 ? 'unknown' : true, ...verdicts.map((v) => v.valid)]), evidence };
}

/** One key's verdict with its evidence. */
export interface KeyVerdict {
  valid: Validity;
  /** Ops the search considered (fail ops, info reads and unobserved info writes are left out). */
  opsChecked: number;
  steps: number;
  failure?: KeyFailure;
  unknown?: UnknownKey;
}

/** Searches one key and turns the outcome into evidence. */
export function checkKey(key: string, keyOps: KeyOps, budget: SearchBudget): KeyVerdict {
  const outcome = searchKey(keyOps, budget);
  const base = { opsChecked: keyOps.ops.length, steps: outcome.steps };
  switch (outcome.kind) {
    case 'valid':
      return { ...base, valid: true };
    case 'unknown':
      return { ...base, valid: 'unknown', unknown: { key, budget: outcome.budget, reason: outcome.reason } };
    case 'invalid':
      return { ...base, valid: false, failure: failureOf(key, keyOps, outcome) };
  }
}

/** Groups pairs by key, in invocation order; pairs without a register key are malformed. */
export function groupByKey(pairs: readonly OpPair[]): { byKey: Map<string, OpPair[]>; malformedOps: number[] } {
  const byKey = new Map<string, OpPair[]>();
  const malformedOps: number[] = [];
  for (const pair of pairs) {
    const key = keyOf(pair);
    if (key === undefined) {
      malformedOps.push(pair.invoke.index);
      continue;
    }
    let list = byKey.get(key);
    if (list === undefined) byKey.set(key, (list = []));
    list.push(pair);
  }
  return { byKey, malformedOps };
}

/** Orders keys by code unit, the same on every platform and locale. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Validates the options and fills in defaults; throws {@link LinearizableOptionsError}. */
export function searchBudgetOf(options: LinearizableOptions): SearchBudget {
  const stepsMax = positiveInt('budgetStepsPerKey', options.budgetStepsPerKey, LIN_BUDGET_STEPS_PER_KEY_DEFAULT, Number.MAX_SAFE_INTEGER);
  const memoEntriesMax = positiveInt('memoEntriesMaxPerKey', options.memoEntriesMaxPerKey, LIN_MEMO_ENTRIES_MAX_DEFAULT, LIN_MEMO_ENTRIES_MAX_LIMIT);
  const memoBytesMax = positiveInt('memoBytesMaxPerKey', options.memoBytesMaxPerKey, LIN_MEMO_BYTES_MAX_DEFAULT, Number.MAX_SAFE_INTEGER);
  const budget: SearchBudget = { stepsMax, memoEntriesMax, memoBytesMax };
  if (options.budgetMsPerKey !== undefined) {
    const msMax = positiveInt('budgetMsPerKey', options.budgetMsPerKey, 0, Number.MAX_SAFE_INTEGER);
    if (options.nowMs === undefined) throw new LinearizableOptionsError('budgetMsPerKey needs nowMs: this package reads no clock of its own');
    budget.time = { nowMs: options.nowMs, msMax };
  }
  return budget;
}

function positiveInt(name: string, v: number | undefined, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1 || v > max) throw new LinearizableOptionsError(`${name} must be an integer in [1, ${max}], got ${String(v)}`);
  return v;
}

function failureOf(key: string, keyOps: KeyOps, outcome: Extract<SearchOutcome, { kind: 'invalid' }>): KeyFailure {
  const ops = keyOps.ops;
  const inPrefix = new Set(outcome.prefix);
  const blocked = outcome.blocked === null ? undefined : ops[outcome.blocked];
  const concurrent =
    blocked === undefined ? [] : ops.filter((o) => !inPrefix.has(o.id) && o.id !== blocked.id && o.invokeNs <= blocked.returnNs && o.returnNs >= blocked.invokeNs);
  const failure: Omit<KeyFailure, 'key' | 'explanation'> = {
    longestPrefix: outcome.prefix.map((id) => summarize(ops[id]!)),
    stateAfterPrefix: JSON.parse(keyOps.values[outcome.stateAfterPrefix]!) as unknown,
    blockedOp: blocked === undefined ? null : summarize(blocked),
    concurrentOps: concurrent.map(summarize),
  };
  return { key, explanation: explain(key, failure), ...failure };
}

function explain(key: string, f: Omit<KeyFailure, 'key' | 'explanation'>): string {
  const b = f.blockedOp;
  const state = JSON.stringify(f.stateAfterPrefix);
  if (b === null) return `key ${key}: no order of its operations is consistent with a register`;
  const what =
    b.f === 'read' ? `read ${JSON.stringify(b.value)}` : b.f === 'cas' ? `cas ${JSON.stringify(b.value)}` : `${b.f} ${JSON.stringify(b.value)}`;
  return (
    `key ${key}: after ${f.longestPrefix.length} ops the register held ${state}; the ${what} by process ${b.process} ` +
    `(history lines ${b.invokeIndex}-${b.completeIndex ?? '?'}) fits no order of it and the ${f.concurrentOps.length} ops concurrent with it`
  );
}

function summarize(op: RegOp): LinOpSummary {
  const c = op.pair.complete;
  return {
    process: op.pair.invoke.process,
    f: op.pair.invoke.f,
    value: op.kind === 'read' ? (regValue(c?.value) ?? null) : (regValue(op.pair.invoke.value) ?? null),
    outcome: op.info ? 'info' : 'ok',
    invokeIndex: op.pair.invoke.index,
    completeIndex: c?.index ?? null,
    invokeTimeNs: op.invokeNs,
    completeTimeNs: c?.time ?? null,
  };
}
