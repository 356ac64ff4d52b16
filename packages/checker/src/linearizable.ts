// Linearizability of a register history, per key, by the Wing–Gong search with Lowe's
// memoization (the "WGL" algorithm that Knossos and Porcupine use).
//
// Model: each key is a register holding one JSON value, `null` when absent.
//   read  → value [key, v]          ok iff the register holds v
//   write → value [key, v]          the register becomes v
//   delete→ value [key, null]       the register becomes null
//   cas   → value [key, [from, to]] ok iff the register holds `from`; it becomes `to`
// Outcomes: `ok` ops must take effect between invocation and completion; `fail` ops certainly
// did not happen and are dropped; `info` (or never completed) writes/cas may take effect at any
// time after their invocation, or never; `info` reads constrain nothing and are dropped.

import type { CheckResult, Validity } from '../checker.js';
import { mergeValid } from '../checker.js';
import type { OpPair } from '../history.js';
import { outcomeOf } from '../history.js';

/** Options of {@link checkLinearizable}. */
export interface LinearizableOptions {
  /** Search time per key; when spent the key is `unknown`. Default 5000 ms. */
  budgetMsPerKey?: number;
  /** Memo entries per key; when reached the key is `unknown` (memory bound). Default 2,000,000. */
  memoEntriesMaxPerKey?: number;
  /** The register's value before any write. Default `null` (absent). */
  initialValue?: unknown;
  /** Clock for the budget; injectable for tests. Default `performance.now`. */
  nowMs?: () => number;
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

/** Evidence of {@link checkLinearizable}. */
export interface LinearizableEvidence {
  keysChecked: number;
  opsChecked: number;
  failures: KeyFailure[];
  /** Keys whose search ran out of budget: neither valid nor invalid. */
  unknownKeys: { key: string; reason: string }[];
  /** Ops the checker could not interpret (wrong value shape); they make the result unknown. */
  malformedOps: number[];
}

/** Default search time per key. */
export const LIN_BUDGET_MS_PER_KEY_DEFAULT = 5000;
/** Default memo size bound per key. */
export const LIN_MEMO_ENTRIES_MAX_DEFAULT = 2_000_000;
/** How many search steps run between two clock reads. */
const STEPS_PER_CLOCK_CHECK = 1024;

interface LinOp {
  id: number;
  f: 'read' | 'write' | 'cas';
  /** read/write: the JSON of v; cas: JSON of from and to. */
  arg: string;
  arg2: string;
  info: boolean;
  pair: OpPair;
  invokeNs: number;
  returnNs: number;
}

/**
 * Checks that the register history is linearizable, one key at a time.
 * Valid when every key is; invalid when some key is not (evidence per key); unknown when no key
 * is invalid but some search ran out of budget or some op could not be read.
 */
export function checkLinearizable(pairs: readonly OpPair[], options: LinearizableOptions = {}): CheckResult<LinearizableEvidence> {
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
  const evidence: LinearizableEvidence = { keysChecked: byKey.size, opsChecked: 0, failures: [], unknownKeys: [], malformedOps };
  const verdicts: Validity[] = [malformedOps.length > 0 ? 'unknown' : true];
  for (const [key, keyPairs] of [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const ops = toLinOps(keyPairs);
    evidence.opsChecked += ops.length;
    const r = searchKey(ops, options);
    if (r.kind === 'unknown') evidence.unknownKeys.push({ key, reason: r.reason });
    if (r.kind === 'invalid') evidence.failures.push({ key, explanation: explain(key, r.failure), ...r.failure });
    verdicts.push(r.kind === 'valid' ? true : r.kind === 'invalid' ? false : 'unknown');
  }
  return { valid: mergeValid(verdicts), evidence };
}

function keyOf(pair: OpPair): string | undefined {
  const v = pair.invoke.value;
  if (!Array.isArray(v) || v.length !== 2) return undefined;
  const k: unknown = v[0];
  if (typeof k === 'string') return k;
  if (typeof k === 'number') return String(k);
  return undefined;
}

function regValue(v: unknown): unknown {
  return Array.isArray(v) && v.length === 2 ? v[1] : undefined;
}

/** Canonical JSON of a register value (undefined and null both mean absent). */
function canon(v: unknown): string {
  return v === undefined ? 'null' : JSON.stringify(v);
}

/**
 * Values some op could have observed: ok read results and every cas `from`. An `info` write or
 * cas whose new value is in none of them is dropped: if it took effect, nothing can have seen
 * it before it was overwritten, so every linearization that uses it also works without it. This
 * keeps the search small when many writes time out (their return events sit at infinity).
 */
function observedValues(pairs: readonly OpPair[]): Set<string> {
  const seen = new Set<string>();
  for (const pair of pairs) {
    const outcome = outcomeOf(pair);
    if (pair.invoke.f === 'read' && outcome === 'ok') seen.add(canon(regValue(pair.complete!.value)));
    if (pair.invoke.f === 'cas' && outcome !== 'fail') {
      const ft = regValue(pair.invoke.value);
      if (Array.isArray(ft)) seen.add(canon(ft[0]));
    }
  }
  return seen;
}

function toLinOps(pairs: readonly OpPair[]): LinOp[] {
  const ops: LinOp[] = [];
  const observed = observedValues(pairs);
  for (const pair of pairs) {
    const outcome = outcomeOf(pair);
    if (outcome === 'fail') continue;
    const info = outcome === 'info';
    const f = pair.invoke.f;
    const base = { id: ops.length, info, pair, invokeNs: pair.invoke.time, returnNs: info ? Infinity : pair.complete!.time };
    if (f === 'read') {
      if (info) continue; // an unanswered read observed nothing
      ops.push({ ...base, f: 'read', arg: canon(regValue(pair.complete!.value)), arg2: '' });
    } else if (f === 'write' || f === 'delete') {
      const arg = f === 'delete' ? 'null' : canon(regValue(pair.invoke.value));
      if (info && !observed.has(arg)) continue;
      ops.push({ ...base, f: 'write', arg, arg2: '' });
    } else if (f === 'cas') {
      const ft = regValue(pair.invoke.value);
      const [from, to] = Array.isArray(ft) ? (ft as unknown[]) : [undefined, undefined];
      if (info && !observed.has(canon(to))) continue;
      ops.push({ ...base, f: 'cas', arg: canon(from), arg2: canon(to) });
    }
  }
  return ops;
}

/** The register model's step: the next state, or undefined when the op cannot happen now. */
function step(state: string, op: LinOp): string | undefined {
  switch (op.f) {
    case 'read':
      return state === op.arg ? state : undefined;
    case 'write':
      return op.arg;
    case 'cas':
      return state === op.arg ? op.arg2 : undefined;
  }
}

type KeyVerdict =
  | { kind: 'valid' }
  | { kind: 'unknown'; reason: string }
  | { kind: 'invalid'; failure: Omit<KeyFailure, 'key' | 'explanation'> };

/** The doubly linked list of call/return events that WGL lifts ops out of. */
class EventList {
  // Event e: op = e >> 1, call when (e & 1) === 0; events are 0 … n-1 and index n is the head
  // sentinel. -1 ends the list.
  readonly next: Int32Array;
  readonly prev: Int32Array;
  readonly head: number;
  constructor(order: readonly number[]) {
    this.head = order.length;
    this.next = new Int32Array(this.head + 1).fill(-1);
    this.prev = new Int32Array(this.head + 1).fill(-1);
    let last = this.head;
    for (const e of order) {
      this.next[last] = e;
      this.prev[e] = last;
      last = e;
    }
  }
  /** Removes op's call and return events. */
  lift(op: number): void {
    for (const e of [op * 2, op * 2 + 1]) {
      const p = this.prev[e]!;
      const n = this.next[e]!;
      this.next[p] = n;
      if (n !== -1) this.prev[n] = p;
    }
  }
  /** Puts op's events back (exact inverse of the last lift, LIFO). */
  unlift(op: number): void {
    for (const e of [op * 2 + 1, op * 2]) {
      const p = this.prev[e]!;
      const n = this.next[e]!;
      this.next[p] = e;
      if (n !== -1) this.prev[n] = e;
    }
  }
}

function eventOrder(ops: readonly LinOp[]): number[] {
  const events: { e: number; t: number }[] = [];
  for (const op of ops) {
    events.push({ e: op.id * 2, t: op.invokeNs }, { e: op.id * 2 + 1, t: op.returnNs });
  }
  // Equal times: calls first, so touching intervals count as concurrent (no false alarms).
  events.sort((a, b) => a.t - b.t || (a.e & 1) - (b.e & 1) || a.e - b.e);
  return events.map((x) => x.e);
}

interface Frame {
  op: number;
  stateBefore: string;
}

function searchKey(ops: readonly LinOp[], options: LinearizableOptions): KeyVerdict {
  const budgetMs = options.budgetMsPerKey ?? LIN_BUDGET_MS_PER_KEY_DEFAULT;
  const memoMax = options.memoEntriesMaxPerKey ?? LIN_MEMO_ENTRIES_MAX_DEFAULT;
  const nowMs = options.nowMs ?? (() => performance.now());
  const deadline = nowMs() + budgetMs;
  const list = new EventList(eventOrder(ops));
  const bits = new Uint32Array(Math.ceil(ops.length / 32) + 1);
  const memo = new Set<string>();
  const stack: Frame[] = [];
  let state = canon(options.initialValue ?? null);
  let okLeft = ops.filter((o) => !o.info).length;
  let best: { prefix: Frame[]; state: string; blocked: number | null } = { prefix: [], state, blocked: null };
  let e = list.next[list.head]!;
  let steps = 0;
  while (okLeft > 0) {
    if (++steps % STEPS_PER_CLOCK_CHECK === 0 && nowMs() > deadline) return { kind: 'unknown', reason: `time budget of ${budgetMs} ms spent` };
    if (e === -1) throw new Error('linearizability search ran off the event list (bug)');
    const opId = e >> 1;
    const op = ops[opId]!;
    if ((e & 1) === 0) {
      const nextState = step(state, op);
      if (nextState !== undefined) {
        bits[opId >> 5]! |= 1 << (opId & 31);
        const key = `${bits.join(',')}|${nextState}`;
        if (!memo.has(key)) {
          if (memo.size >= memoMax) return { kind: 'unknown', reason: `memo bound of ${memoMax} entries reached` };
          memo.add(key);
          stack.push({ op: opId, stateBefore: state });
          state = nextState;
          list.lift(opId);
          if (!op.info) okLeft--;
          if (stack.length > best.prefix.length) best = { prefix: stack.slice(), state, blocked: null };
          e = list.next[list.head]!;
          continue;
        }
        bits[opId >> 5]! &= ~(1 << (opId & 31));
      }
      e = list.next[e]!;
      continue;
    }
    // A return event: this op had to be linearized by now. Backtrack.
    if (stack.length === best.prefix.length && best.blocked === null) best.blocked = opId;
    const top = stack.pop();
    if (top === undefined) return invalid(ops, best);
    const topOp = ops[top.op]!;
    state = top.stateBefore;
    bits[top.op >> 5]! &= ~(1 << (top.op & 31));
    list.unlift(top.op);
    if (!topOp.info) okLeft++;
    e = list.next[top.op * 2]!;
  }
  return { kind: 'valid' };
}

function invalid(ops: readonly LinOp[], best: { prefix: Frame[]; state: string; blocked: number | null }): KeyVerdict {
  const inPrefix = new Set(best.prefix.map((f) => f.op));
  const blocked = best.blocked === null ? undefined : ops[best.blocked];
  const concurrent = blocked === undefined ? [] : ops.filter((o) => !inPrefix.has(o.id) && o.id !== blocked.id && o.invokeNs <= blocked.returnNs && o.returnNs >= blocked.invokeNs);
  return {
    kind: 'invalid',
    failure: {
      longestPrefix: best.prefix.map((f) => summarize(ops[f.op]!)),
      stateAfterPrefix: JSON.parse(best.state) as unknown,
      blockedOp: blocked === undefined ? null : summarize(blocked),
      concurrentOps: concurrent.map(summarize),
    },
  };
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

function summarize(op: LinOp): LinOpSummary {
  const c = op.pair.complete;
  return {
    process: op.pair.invoke.process,
    f: op.pair.invoke.f,
    value: op.f === 'read' ? regValue(c?.value) ?? null : regValue(op.pair.invoke.value) ?? null,
    outcome: op.info ? 'info' : 'ok',
    invokeIndex: op.pair.invoke.index,
    completeIndex: c?.index ?? null,
    invokeTimeNs: op.invokeNs,
    completeTimeNs: c?.time ?? null,
  };
}
