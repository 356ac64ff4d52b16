// The linearizability checker used while a run is in progress: ops are fed in as they happen,
// and each check searches only the keys that changed since the last one.
//
// Why checking a prefix is sound: an op still open at the cut is treated as `info` (it may or
// may not take effect, with no deadline). A linearization of the whole history, cut at that
// instant, is a linearization of the prefix — so a prefix that is not linearizable proves the
// whole history is not, and a key found invalid stays invalid without searching it again.

import type { Op, OpPair } from './history.js';
import type { KeyVerdict, LinearizableEvidence, LinearizableOptions } from './linearizable.js';
import { checkKey, compareKeys, resultOf, searchBudgetOf } from './linearizable.js';
import { keyOf, toKeyOps } from './register.js';
import type { CheckResult } from './verdict.js';
import type { SearchBudget } from './wgl.js';

/**
 * Checks a register history incrementally: {@link observe} every invocation and completion in
 * history order, {@link check} whenever a verdict is wanted (every N ops, or at the end). The
 * final check gives the verdict `checkLinearizable` gives on the whole history (budgets
 * allowing: a key found invalid on a prefix is not searched again).
 *
 * @example
 * const monitor = new LinearizabilityMonitor({ budgetStepsPerKey: 1_000_000 });
 * monitor.observe(recorder.invoke(0, 'write', ['k', 1]));
 * ...
 * if (monitor.check().valid === false) fail(monitor.check().evidence.failures);
 */
export class LinearizabilityMonitor {
  private readonly budget: SearchBudget;
  private readonly initialValue: unknown;
  private readonly byKey = new Map<string, OpPair[]>();
  private readonly open = new Map<number, { pair: OpPair; key: string | undefined }>();
  private readonly dirty = new Set<string>();
  private readonly verdicts = new Map<string, KeyVerdict>();
  private readonly malformedOps: number[] = [];

  /** Throws LinearizableOptionsError on bad options, before any op is seen. */
  constructor(options: LinearizableOptions = {}) {
    this.budget = searchBudgetOf(options);
    this.initialValue = options.initialValue ?? null;
  }

  /** Records one history op (in history order: a completion after its process's invocation). */
  observe(op: Op): void {
    if (op.type === 'invoke') {
      if (this.open.has(op.process)) throw new Error(`op ${op.index}: process ${op.process} invokes while another op is open`);
      const pair: OpPair = { invoke: op, complete: undefined };
      const key = keyOf(pair);
      this.open.set(op.process, { pair, key });
      if (key === undefined) this.malformedOps.push(op.index);
      else this.addToKey(key, pair);
      return;
    }
    const entry = this.open.get(op.process);
    if (entry === undefined) throw new Error(`op ${op.index}: completion without invocation`);
    this.open.delete(op.process);
    entry.pair.complete = op;
    if (entry.key !== undefined) this.dirty.add(entry.key);
  }

  /** Searches the keys changed since the last check (not those already invalid) and returns the verdict over all keys. */
  check(): CheckResult<LinearizableEvidence> {
    for (const key of [...this.dirty].sort(compareKeys)) {
      if (this.verdicts.get(key)?.valid === false) continue;
      this.verdicts.set(key, checkKey(key, toKeyOps(this.byKey.get(key)!, this.initialValue), this.budget));
    }
    this.dirty.clear();
    return this.result();
  }

  private addToKey(key: string, pair: OpPair): void {
    let list = this.byKey.get(key);
    if (list === undefined) this.byKey.set(key, (list = []));
    list.push(pair);
    this.dirty.add(key);
  }

  private result(): CheckResult<LinearizableEvidence> {
    const keys = [...this.verdicts.keys()].sort(compareKeys);
    return resultOf(this.byKey.size, keys.map((key) => this.verdicts.get(key)!), this.malformedOps);
  }
}
