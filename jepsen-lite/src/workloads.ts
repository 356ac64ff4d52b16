// The workloads: what each client process asks for (a pure, seeded generator) and how one op
// is executed against the client library and classified as ok / fail / info.
//
// register: per-key read / write / cas with unique values; each key gets at most
//           `opsPerKey` operations, then is retired and a fresh key takes its place.
// set:      unique adds (each element is its own key under a prefix); after the heal, one final
//           read of the whole prefix on every node.
// watch:    unique-value puts on a small key set under a prefix, while watchers on several nodes
//           record what they see (orchestrator + watch-run.ts; checked by checkers/watch.ts).
// bank:     BANK_ACCOUNTS accounts funded with BANK_INITIAL_BALANCE each; transfers read every
//           account at one revision, then move money between two with a txn that compares both
//           accounts' modRevisions; reads take every account at one revision (a txn range). After
//           the heal, one final read per node. Every read must sum to the constant (checkers/bank.ts).

import { writeOutcomeOf } from '@quorumkv/client';
import type { OpF } from './history.js';
import type { Rng } from './random.js';

/** The client calls the workloads use: a structural subset of `@quorumkv/client`'s `KvClient`. */
export interface KvLike {
  get(key: string, options: { as: 'string'; consistency?: 'linearizable' | 'stale' }): Promise<{ value: string } | undefined>;
  put(key: string, value: string): Promise<{ revision: number; term?: number }>;
  cas(key: string, spec: { ifValue: string; value: string } | { ifAbsent: true; value: string }): Promise<{ revision: number; term?: number }>;
  range(options: { prefix: string; as: 'string'; consistency?: 'linearizable' | 'stale' }): AsyncIterable<{ key: string }>;
  /** The watch workload's watchers (the client's `watch`). */
  watch?(options: { prefix: string; startRevision: number }): WatchLike;
  close(): Promise<void>;
}

/** A running watch, as the workload uses it (a structural subset of the client's `Watch`). */
export interface WatchLike extends AsyncIterable<{ type: 'put' | 'delete'; key: Uint8Array; value?: Uint8Array; modRevision: number }> {
  readonly revision: number | undefined;
  close(): void;
}

/** What the bank workload needs besides KvLike: transactions (`@quorumkv/client`'s `txn`). */
export interface TxnKvLike {
  txn(
    spec: {
      compare?: Array<{ key: string; target: 'modRevision'; op: '=='; value: number }>;
      success?: Array<{ op: 'put'; key: string; value: string } | { op: 'range'; prefix: string; limit: number }>;
    },
    options: { as: 'string' },
  ): Promise<{ succeeded: boolean; revision: number; term?: number; results: Array<{ op: string; items?: Array<{ key: string; value: string; modRevision: number }> }> }>;
}

/** One operation to invoke: `f` and the Jepsen-shaped invocation value. */
export interface PlannedOp {
  f: OpF;
  value: unknown;
}

/** Options of {@link RegisterGenerator}. */
export interface RegisterWorkloadOptions {
  /** Keys open at once. Default 2. */
  activeKeys?: number;
  /** Operations per key before it is retired (keeps each key's search small). Default 200. */
  opsPerKey?: number;
}

/** Seeded op generator of the register workload (one per run, shared by all processes). */
export class RegisterGenerator {
  private readonly opsPerKey: number;
  private readonly active: { key: string; ops: number; written: number[] }[] = [];
  private nextKey = 0;
  private nextValue = 1;

  constructor(
    private readonly rng: Rng,
    options: RegisterWorkloadOptions = {},
  ) {
    this.opsPerKey = options.opsPerKey ?? 200;
    const activeKeys = options.activeKeys ?? 2;
    if (!(activeKeys >= 1 && this.opsPerKey >= 1)) throw new RangeError('activeKeys and opsPerKey must be >= 1');
    for (let i = 0; i < activeKeys; i++) this.active.push(this.freshKey());
  }

  /** The next op: 50 % read, 25 % write, 25 % cas from a recently written value (or absent). */
  next(): PlannedOp {
    const slot = this.rng.int(0, this.active.length - 1);
    let k = this.active[slot]!;
    if (k.ops >= this.opsPerKey) this.active[slot] = k = this.freshKey();
    k.ops++;
    const roll = this.rng.next();
    if (roll < 0.5) return { f: 'read', value: [k.key, null] };
    const v = this.nextValue++;
    if (roll < 0.75) {
      k.written.push(v);
      if (k.written.length > 5) k.written.shift();
      return { f: 'write', value: [k.key, v] };
    }
    const from = k.written.length === 0 || this.rng.chance(0.1) ? null : this.rng.pick(k.written);
    k.written.push(v);
    if (k.written.length > 5) k.written.shift();
    return { f: 'cas', value: [k.key, [from, v]] };
  }

  private freshKey(): { key: string; ops: number; written: number[] } {
    return { key: `jl-r${this.nextKey++}`, ops: 0, written: [] };
  }
}

/** Seeded op generator of the set workload: unique integer elements. */
export class SetGenerator {
  private nextElement = 1;
  /** The next add. */
  next(): PlannedOp {
    return { f: 'add', value: this.nextElement++ };
  }
}

/** The key prefix of the watch workload. */
export const WATCH_PREFIX = 'jl-w/';
/** Keys the watch workload writes (few, so keys see many versions each). */
export const WATCH_KEYS = 8;

/** Seeded op generator of the watch workload: puts of unique values on WATCH_KEYS keys. */
export class WatchGenerator {
  private nextValue = 1;
  constructor(private readonly rng: Rng) {}
  /** The next write. */
  next(): PlannedOp {
    return { f: 'write', value: [`${WATCH_PREFIX}${this.rng.int(0, WATCH_KEYS - 1)}`, this.nextValue++] };
  }
}

/** Accounts of the bank workload, each funded with BANK_INITIAL_BALANCE before the run. */
export const BANK_ACCOUNTS = 5;
export const BANK_INITIAL_BALANCE = 100;
/** What every read of all accounts must sum to. */
export const BANK_TOTAL = BANK_ACCOUNTS * BANK_INITIAL_BALANCE;
/** Largest amount one transfer moves (less when the source holds less). */
export const BANK_TRANSFER_MAX = 10;
/** The key prefix of the bank workload's accounts. */
export const BANK_PREFIX = 'jl-bank/';
/** The invocation value of a bank read (every account at one revision). */
export const BANK_READ = 'accounts';

/** The key of account `i`. */
export function bankAccount(i: number): string {
  return `${BANK_PREFIX}${i}`;
}

/** Seeded op generator of the bank workload: half reads of every account, half transfers. */
export class BankGenerator {
  constructor(private readonly rng: Rng) {}
  /** The next op: a read, or a transfer of 1..BANK_TRANSFER_MAX between two different accounts. */
  next(): PlannedOp {
    if (this.rng.next() < 0.5) return { f: 'read', value: BANK_READ };
    const from = this.rng.int(0, BANK_ACCOUNTS - 1);
    const to = (from + this.rng.int(1, BANK_ACCOUNTS - 1)) % BANK_ACCOUNTS;
    return { f: 'transfer', value: { from, to, amount: this.rng.int(1, BANK_TRANSFER_MAX) } };
  }
}

/** The key prefix of the set workload. */
export const SET_PREFIX = 'jl-set/';

/** The outcome of one executed op, ready for the recorder. */
export interface Outcome {
  type: 'ok' | 'fail' | 'info';
  value: unknown;
  error?: string;
  /** For acknowledged writes: the term of the leader that committed them. */
  term?: number;
}

/**
 * How an error classifies: reads never change state, so any failed read is `fail`. A write is
 * `fail` only when its code says so — the protocol's own classification (`writeOutcomeOf`):
 * "not applied" codes and a failed CAS (an outcome that wrote nothing). `QKV_INDETERMINATE`,
 * `QKV_INTERNAL`, unknown codes and errors without a code are `info`: the write may have taken
 * effect, at any time after its invocation. Because "not applied" codes become `fail`, the
 * checkers test that promise: a `fail` write that did take effect shows up as a value nobody
 * could have written (linearizable) or a failed add that is present (set).
 */
export function classifyError(f: OpF, err: unknown): Outcome['type'] {
  if (f === 'read') return 'fail';
  // A transfer's own read failing means the transfer never started: classified by its code like a write.
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
  return code !== undefined && writeOutcomeOf(code) !== 'unknown' ? 'fail' : 'info';
}

/** How register reads are made: `stale` is the deliberately unsafe mode the checker must catch. */
export type ReadConsistency = 'linearizable' | 'stale';

/** Executes one planned op against the client and returns its outcome (never throws). */
export async function executeOp(kv: KvLike, op: PlannedOp, reads: ReadConsistency = 'linearizable'): Promise<Outcome> {
  if (op.f === 'transfer' || (op.f === 'read' && op.value === BANK_READ)) return executeBankOp(kv as KvLike & TxnKvLike, op);
  try {
    const r = await call(kv, op, reads);
    return { type: 'ok', value: r.value, ...(r.term !== undefined ? { term: r.term } : {}) };
  } catch (err) {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : 'JL_CLIENT_ERROR';
    return { type: classifyError(op.f, err), value: op.value, error: code };
  }
}

/** The op's completion value, and for writes the term of the leader that acknowledged it. */
async function call(kv: KvLike, op: PlannedOp, reads: ReadConsistency): Promise<{ value: unknown; term?: number | undefined }> {
  switch (op.f) {
    case 'read': {
      const [key] = op.value as [string, null];
      const item = await kv.get(key, { as: 'string', consistency: reads });
      return { value: [key, item === undefined ? null : Number(item.value)] };
    }
    case 'write': {
      const [key, v] = op.value as [string, number];
      const r = await kv.put(key, String(v));
      return { value: op.value, term: r.term };
    }
    case 'cas': {
      const [key, [from, to]] = op.value as [string, [number | null, number]];
      const r = await kv.cas(key, from === null ? { ifAbsent: true, value: String(to) } : { ifValue: String(from), value: String(to) });
      return { value: op.value, term: r.term };
    }
    case 'add': {
      const r = await kv.put(`${SET_PREFIX}${String(op.value)}`, '1');
      return { value: op.value, term: r.term };
    }
    case 'delete':
    case 'transfer':
      throw new Error(`${op.f} is not an op of this workload`);
  }
}

/** Every account's balance as one txn read shows it (one revision), by account index. */
async function readAccounts(kv: TxnKvLike): Promise<{ revision: number; balances: number[]; modRevisions: number[] }> {
  const r = await kv.txn({ success: [{ op: 'range', prefix: BANK_PREFIX, limit: BANK_ACCOUNTS + 1 }] }, { as: 'string' });
  return { revision: r.revision, ...balancesOf(r.results[0]?.items ?? []) };
}

/** Balances and modRevisions by account index from the items of a range over the accounts. */
function balancesOf(items: ReadonlyArray<{ key: string; value: string; modRevision: number }>): { balances: number[]; modRevisions: number[] } {
  const balances: number[] = [];
  const modRevisions: number[] = [];
  for (const it of items) {
    const i = Number(it.key.slice(BANK_PREFIX.length));
    balances[i] = Number(it.value);
    modRevisions[i] = it.modRevision;
  }
  return { balances, modRevisions };
}

/**
 * A bank op. A read completes with `{revision, balances}`. A transfer reads every account, then
 * moves min(amount, source balance) with one txn that compares both accounts' modRevisions: ok
 * with `{from, to, amount, revision}` when it ran, `fail` (JL_TXN_CONFLICT, nothing written) when
 * an account changed in between; errors classify like any write.
 */
async function executeBankOp(kv: TxnKvLike, op: PlannedOp): Promise<Outcome> {
  try {
    const seen = await readAccounts(kv);
    if (op.f === 'read') return { type: 'ok', value: { revision: seen.revision, balances: seen.balances } };
    const { from, to, amount } = op.value as { from: number; to: number; amount: number };
    const move = Math.min(amount, seen.balances[from] ?? 0);
    const r = await kv.txn(
      {
        compare: [from, to].map((i) => ({ key: bankAccount(i), target: 'modRevision' as const, op: '==' as const, value: seen.modRevisions[i] ?? 0 })),
        success: [
          { op: 'put', key: bankAccount(from), value: String((seen.balances[from] ?? 0) - move) },
          { op: 'put', key: bankAccount(to), value: String((seen.balances[to] ?? 0) + move) },
        ],
      },
      { as: 'string' },
    );
    if (!r.succeeded) return { type: 'fail', value: op.value, error: 'JL_TXN_CONFLICT' };
    return { type: 'ok', value: { from, to, amount: move, revision: r.revision }, ...(r.term === undefined ? {} : { term: r.term }) };
  } catch (err) {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : 'JL_CLIENT_ERROR';
    return { type: classifyError(op.f, err), value: op.value, error: code };
  }
}

/** Every account's balance as one node sees it (stale: that node's own state), by account index. */
export async function readBank(kv: KvLike): Promise<number[]> {
  const items: Array<{ key: string; value: string; modRevision: number }> = [];
  for await (const item of kv.range({ prefix: BANK_PREFIX, as: 'string', consistency: 'stale' })) items.push(item as { key: string; value: string; modRevision: number });
  return balancesOf(items).balances;
}

/** Reads every element of the set as one node sees it (stale read = that node's own state). */
export async function readSet(kv: KvLike): Promise<number[]> {
  const out: number[] = [];
  for await (const item of kv.range({ prefix: SET_PREFIX, as: 'string', consistency: 'stale' })) out.push(Number(item.key.slice(SET_PREFIX.length)));
  return out.sort((a, b) => a - b);
}
