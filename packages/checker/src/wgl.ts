// The Wing–Gong search with Lowe's memoization (the "WGL" algorithm of Knossos and Porcupine)
// over one key's register ops.
//
// The ops' call and return events sit in one doubly linked list in time order. The search walks
// it: at a call it tries to linearize that op now (the model allows it and the (linearized set,
// state) pair is new), lifting the op's two events out of the list and starting over from the
// head; at a return it has met an op that had to be linearized already, so it backtracks — puts
// the last lifted op back and tries the next call after it. Every `ok` op lifted means the
// history is linearizable; backtracking past the first op means it is not.
//
// Budget: a step is one event visited. The step budget makes the verdict a function of the
// history alone (the simulation needs that); a wall-clock budget is available when a clock is
// passed in (jepsen-lite's `--budget-ms`). The memo is bounded in entries and in bytes.

import type { KeyOps, RegOp } from './register.js';
import { stepRegister } from './register.js';

/** What one key's search may spend; when any part is spent the key is `unknown`. */
export interface SearchBudget {
  stepsMax: number;
  memoEntriesMax: number;
  memoBytesMax: number;
  /** Optional wall-clock bound; read every {@link STEPS_PER_CLOCK_CHECK} steps. */
  time?: { nowMs: () => number; msMax: number };
}

/** Which budget ran out. */
export type BudgetKind = 'steps' | 'time' | 'memo';

/** The outcome of one key's search; `steps` is always the number of steps taken. */
export type SearchOutcome =
  | { kind: 'valid'; steps: number }
  | { kind: 'unknown'; steps: number; budget: BudgetKind; reason: string }
  | {
      kind: 'invalid';
      steps: number;
      /** The longest linearizable prefix found: op ids in the order they took effect. */
      prefix: number[];
      /** The interned register value after that prefix. */
      stateAfterPrefix: number;
      /** The completed op whose return ended that prefix's extension, if one did. */
      blocked: number | null;
    };

/** How many search steps run between two clock reads. */
export const STEPS_PER_CLOCK_CHECK = 1024;

/**
 * The call/return events that WGL lifts ops out of. Event e: op = e >> 1, a call when
 * (e & 1) === 0; events are 0 … 2n-1, index 2n is the head sentinel, -1 ends the list.
 */
class EventList {
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
    this.unlink(op * 2);
    this.unlink(op * 2 + 1);
  }
  /** Puts op's events back (exact inverse of the last lift: LIFO). */
  unlift(op: number): void {
    this.relink(op * 2 + 1);
    this.relink(op * 2);
  }
  private unlink(e: number): void {
    const p = this.prev[e]!;
    const n = this.next[e]!;
    this.next[p] = n;
    if (n !== -1) this.prev[n] = p;
  }
  private relink(e: number): void {
    const p = this.prev[e]!;
    const n = this.next[e]!;
    this.next[p] = e;
    if (n !== -1) this.prev[n] = e;
  }
}

/** Events in time order. Equal times: calls first, so touching intervals count as concurrent (no false alarms). */
function eventOrder(ops: readonly RegOp[]): number[] {
  const events: { e: number; t: number }[] = [];
  for (const op of ops) events.push({ e: op.id * 2, t: op.invokeNs }, { e: op.id * 2 + 1, t: op.returnNs });
  events.sort((a, b) => a.t - b.t || (a.e & 1) - (b.e & 1) || a.e - b.e);
  return events.map((x) => x.e);
}

/** Bytes one memo entry costs besides its words: the chain link and the hash-map slot, roughly. */
const MEMO_ENTRY_OVERHEAD_BYTES = 40;
/** First capacity of the memo's arena, in entries. */
const MEMO_INITIAL_ENTRIES = 1024;

/**
 * Lowe's memo: the set of (linearized ops, register state) configurations already explored.
 * Keys are stored whole in one arena (exact: a hash collision never hides a configuration) and
 * found through a 53-bit hash maintained incrementally by the search. Exported for its tests.
 */
export class Memo {
  private arena: Uint32Array;
  private chain: Int32Array;
  private readonly heads = new Map<number, number>();
  size = 0;
  /** `width` words per entry, at most `entriesMax` entries (the arena never grows past them). */
  constructor(
    private readonly width: number,
    private readonly entriesMax: number,
  ) {
    const capacity = Math.min(MEMO_INITIAL_ENTRIES, entriesMax);
    this.arena = new Uint32Array(width * capacity);
    this.chain = new Int32Array(capacity);
  }
  /** The entries that fit in `bytes` when each holds `width` words. */
  static entriesIn(bytes: number, width: number): number {
    return Math.floor(bytes / (width * 4 + MEMO_ENTRY_OVERHEAD_BYTES));
  }
  /** Adds `key` (width words) under `hash`: 'added', 'present' when it was already there, or 'full'. */
  add(hash: number, key: Uint32Array): 'added' | 'present' | 'full' {
    const head = this.heads.get(hash);
    for (let e = head ?? -1; e !== -1; e = this.chain[e]!) if (this.equals(e, key)) return 'present';
    if (this.size >= this.entriesMax) return 'full';
    if (this.size === this.chain.length) this.grow();
    this.arena.set(key, this.size * this.width);
    this.chain[this.size] = head ?? -1;
    this.heads.set(hash, this.size);
    this.size++;
    return 'added';
  }
  private equals(entry: number, key: Uint32Array): boolean {
    const base = entry * this.width;
    for (let i = 0; i < this.width; i++) if (this.arena[base + i] !== key[i]) return false;
    return true;
  }
  private grow(): void {
    const capacity = Math.min(this.chain.length * 2, this.entriesMax);
    const arena = new Uint32Array(this.width * capacity);
    arena.set(this.arena);
    this.arena = arena;
    const chain = new Int32Array(capacity);
    chain.set(this.chain);
    this.chain = chain;
  }
}

/** A 32-bit mix (splitmix32's finalizer): the per-op hash words, fixed so runs repeat exactly. */
function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** The deepest point the search reached, kept for the failure report. */
class BestPrefix {
  readonly ops: Int32Array;
  len = 0;
  /** How many leading entries of `ops` still equal the search stack (copy only the rest). */
  private agree = 0;
  state: number;
  blocked: number | null = null;
  constructor(n: number, initialState: number) {
    this.ops = new Int32Array(n);
    this.state = initialState;
  }
  /** The stack grew to `depth` (its top is new). */
  pushed(stack: Int32Array, depth: number, state: number): void {
    if (depth <= this.len) return;
    for (let i = this.agree; i < depth; i++) this.ops[i] = stack[i]!;
    this.len = this.agree = depth;
    this.state = state;
    this.blocked = null;
  }
  /** The stack shrank to `depth`. */
  popped(depth: number): void {
    if (depth < this.agree) this.agree = depth;
  }
}

/**
 * Searches for a linearization of one key's ops, from the initial value (interned value 0).
 * Deterministic: the same ops and budget give the same outcome and step count (the time budget,
 * when given, is the one exception).
 */
export function searchKey(keyOps: KeyOps, budget: SearchBudget): SearchOutcome {
  return new WglSearch(keyOps.ops, budget).run();
}

class WglSearch {
  private readonly n: number;
  private readonly list: EventList;
  /** Linearized ops as a bitset, plus one last word holding the state: the memo key. */
  private readonly key: Uint32Array;
  private readonly words: number;
  private readonly memo: Memo;
  private readonly hashLo: Uint32Array;
  private readonly hashHi: Uint32Array;
  private hLo = 0;
  private hHi = 0;
  /** The lifted ops, bottom first, and the state before each. */
  private readonly stack: Int32Array;
  private readonly stateBefore: Int32Array;
  private depth = 0;
  private state = 0;
  private okLeft: number;
  private readonly best: BestPrefix;
  steps = 0;

  constructor(
    private readonly ops: readonly RegOp[],
    private readonly budget: SearchBudget,
  ) {
    this.n = ops.length;
    this.list = new EventList(eventOrder(ops));
    this.words = Math.ceil(this.n / 32);
    this.key = new Uint32Array(this.words + 1);
    this.memo = new Memo(this.words + 1, Math.min(budget.memoEntriesMax, Memo.entriesIn(budget.memoBytesMax, this.words + 1)));
    this.hashLo = new Uint32Array(this.n).map((_, i) => mix32(i * 2));
    this.hashHi = new Uint32Array(this.n).map((_, i) => mix32(i * 2 + 1));
    this.stack = new Int32Array(this.n);
    this.stateBefore = new Int32Array(this.n);
    this.okLeft = ops.filter((o) => !o.info).length;
    this.best = new BestPrefix(this.n, 0);
  }

  run(): SearchOutcome {
    const { next, head } = this.list;
    const deadlineMs = this.budget.time === undefined ? Infinity : this.budget.time.nowMs() + this.budget.time.msMax;
    let e = next[head]!;
    while (this.okLeft > 0) {
      if (this.steps === this.budget.stepsMax) return this.unknown('steps', `step budget of ${this.budget.stepsMax} spent`);
      this.steps++;
      if (this.steps % STEPS_PER_CLOCK_CHECK === 0 && this.budget.time !== undefined && this.budget.time.nowMs() > deadlineMs) {
        return this.unknown('time', `time budget of ${this.budget.time.msMax} ms spent`);
      }
      // Invariant: e !== -1 — the list always holds the return event of an unlifted ok op.
      if (e === -1) throw new Error('linearizability search ran off the event list (bug)');
      const opId = e >> 1;
      if ((e & 1) === 1) {
        // A return event: this op had to be linearized by now. Backtrack.
        if (this.depth === this.best.len && this.best.blocked === null) this.best.blocked = opId;
        if (this.depth === 0) return this.invalid();
        e = next[this.backtrack() * 2]!;
        continue;
      }
      const lifted = this.tryLift(opId);
      if (lifted === 'memo-full') return this.unknown('memo', this.memoReason());
      e = lifted ? next[head]! : next[e]!;
    }
    return { kind: 'valid', steps: this.steps };
  }

  /** Linearizes op now if the model allows it and the configuration is new. */
  private tryLift(opId: number): boolean | 'memo-full' {
    const op = this.ops[opId]!;
    const nextState = stepRegister(this.state, op);
    if (nextState === -1) return false;
    const bit = 1 << (opId & 31);
    const w = opId >> 5;
    this.key[w]! |= bit;
    this.key[this.words] = nextState;
    const hLo = this.hLo ^ this.hashLo[opId]!;
    const hHi = this.hHi ^ this.hashHi[opId]!;
    const hash = ((hLo ^ Math.imul(nextState + 1, 0x9e3779b1)) >>> 0) * 0x200000 + ((hHi ^ Math.imul(nextState + 1, 0x85ebca6b)) >>> 11);
    const added = this.memo.add(hash, this.key);
    if (added !== 'added') {
      this.key[w]! &= ~bit;
      return added === 'full' ? 'memo-full' : false;
    }
    this.hLo = hLo;
    this.hHi = hHi;
    this.stack[this.depth] = opId;
    this.stateBefore[this.depth] = this.state;
    this.depth++;
    this.state = nextState;
    this.list.lift(opId);
    if (!op.info) this.okLeft--;
    this.best.pushed(this.stack, this.depth, nextState);
    return true;
  }

  /** Undoes the last lift; returns the op put back. */
  private backtrack(): number {
    this.depth--;
    const opId = this.stack[this.depth]!;
    this.best.popped(this.depth);
    this.state = this.stateBefore[this.depth]!;
    this.key[opId >> 5]! &= ~(1 << (opId & 31));
    this.hLo ^= this.hashLo[opId]!;
    this.hHi ^= this.hashHi[opId]!;
    this.list.unlift(opId);
    if (!this.ops[opId]!.info) this.okLeft++;
    return opId;
  }

  private memoReason(): string {
    return this.memo.size >= this.budget.memoEntriesMax
      ? `memo bound of ${this.budget.memoEntriesMax} entries reached`
      : `memo bound of ${this.budget.memoBytesMax} bytes reached`;
  }

  private unknown(budget: BudgetKind, reason: string): SearchOutcome {
    return { kind: 'unknown', steps: this.steps, budget, reason };
  }

  private invalid(): SearchOutcome {
    return {
      kind: 'invalid',
      steps: this.steps,
      prefix: Array.from(this.best.ops.subarray(0, this.best.len)),
      stateAfterPrefix: this.best.state,
      blocked: this.best.blocked,
    };
  }
}
