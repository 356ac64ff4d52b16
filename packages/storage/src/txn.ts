// Transactions of the key-value state machine (after etcd's v3 Txn): their command shape, strict
// decoding, and their execution as a pure function over the state as the batch has it so far.
//
// A transaction is one command: its compares are evaluated against the state before it, then the
// operations of the branch that was chosen run in order, and every key they change is written at
// ONE revision (the next one), as etcd does. Reads inside a transaction see the transaction's own
// earlier writes (etcd's storeTxnWrite.Range reads at beginRev + 1 once the txn has changes). A key
// may change at most once per transaction (etcd's "duplicate key given in txn request"): two puts
// of one key, or a put of a key that a delete of the same branch covers, are refused when the
// command is decoded, so a transaction yields exactly one mutation per key it changes.
//
// Limits that shape replicated results (the most keys a transaction may delete, the most bytes
// its reads may return) are constants of the command format, not node settings: every replica
// applies them identically.
import { bytesEqual, isIndex, isRecord, latin1, plainBytes } from './codec.js';
import type { KeyValue, KvRecord } from './kv-layout.js';

/** What a compare looks at. Absent keys have version, createRevision and modRevision 0. */
export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision';
/** How a compare compares (the key's field on the left). */
export type CompareOp = '==' | '!=' | '<' | '>';

/** One compare of a transaction. A value compare on an absent key is false (as in etcd). */
export type TxnCompare =
  | { key: Uint8Array; target: 'value'; op: CompareOp; value: Uint8Array }
  | { key: Uint8Array; target: 'version' | 'createRevision' | 'modRevision'; op: CompareOp; value: number };

/** One operation of a transaction branch. Ranges are [start, end); `end` omitted = to the last key. */
export type TxnOp =
  | { op: 'put'; key: Uint8Array; value: Uint8Array }
  | { op: 'get'; key: Uint8Array }
  | { op: 'range'; start: Uint8Array; end?: Uint8Array; limit: number }
  | { op: 'del'; key: Uint8Array }
  | { op: 'deleteRange'; start: Uint8Array; end?: Uint8Array };

/** The result of one operation, in the order of the branch. */
export type TxnOpResult =
  | { op: 'put' }
  | { op: 'get'; item?: KeyValue }
  | { op: 'range'; items: KeyValue[]; more: boolean }
  | { op: 'del'; deleted: number }
  | { op: 'deleteRange'; deleted: number };

/** Named limits of transactions. Part of the replicated rules: never a per-node setting. */
export const TXN_LIMITS = {
  /** Most compares in one transaction. */
  maxCompares: 64,
  /** Most operations in one branch. */
  maxOpsPerBranch: 128,
  /** Most keys one transaction (or one range delete) may delete; beyond it the whole command is refused. */
  maxDeletedKeys: 10_000,
  /** Most rows one range operation inside a transaction may ask for. */
  maxRangeLimit: 1_000,
  /** Most bytes the reads of one transaction may return (rows counted as key + value + TXN_ROW_OVERHEAD_BYTES). */
  maxReadBytes: 1024 * 1024,
  /**
   * Most bytes of rows (counted as above) read from the store for one range op before it runs;
   * past it the op answers what it could read with `more: true`. Bounds a node's memory per
   * range transaction (rows hidden by the transaction's own deletes are read too).
   */
  maxScanBytes: 4 * 1024 * 1024,
  /**
   * Most bytes of rows (counted as above) a range delete may read: it reads the keys it deletes
   * with their values (watchers may ask for a delete's previous value), so past this the whole
   * command is refused, like past maxDeletedKeys.
   */
  maxDeleteScanBytes: 64 * 1024 * 1024,
} as const;

/** Bytes a read row is counted as besides its key and value. */
export const TXN_ROW_OVERHEAD_BYTES = 64;

/** The state a transaction runs against: the batch's state so far (its own writes come on top). */
export interface TxnBase {
  /** The record of a key (latin1), or undefined when absent. */
  record(k: string): KvRecord | undefined;
  /**
   * Live rows of [startK, endK) (latin1; endK undefined = to the last key) in key order: the first
   * `need` of them, or all when there are fewer — unless the rows were read only up to `lastK`
   * (a read stops at TXN_LIMITS.maxScanBytes for a range op, maxDeleteScanBytes for a range delete),
   * then every row up to `lastK`. Records come with their values (a delete's watchers may ask for
   * the previous value).
   */
  rangeRows(startK: string, endK: string | undefined, need: number, purpose: ScanPurpose): KnownRows;
}

/** What a range is read for: a `range` op or a `deleteRange` (their reads stop at different byte limits). */
export type ScanPurpose = 'range' | 'delete';

/** Rows of a range as far as they are known: all of them (`lastK` undefined), or those up to `lastK`. */
export interface KnownRows {
  rows: Array<[string, Uint8Array, KvRecord]>;
  lastK: string | undefined;
}

/** Merges a range's changes over its known rows (changes beyond a known `lastK` are left out: unknown ground); the first `need`. */
export function mergeRows(
  known: KnownRows,
  changes: Iterable<[string, Uint8Array, KvRecord | null]>,
  startK: string,
  endK: string | undefined,
  need: number,
): KnownRows & { exhausted: boolean } {
  const merged = new Map<string, [string, Uint8Array, KvRecord]>();
  for (const row of known.rows) merged.set(row[0], row);
  for (const [k, key, record] of changes) {
    if (k < startK || (endK !== undefined && k >= endK)) continue;
    if (known.lastK !== undefined && k > known.lastK) continue;
    if (record) merged.set(k, [k, key, record]);
    else merged.delete(k);
  }
  const out = [...merged.values()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  if (out.length > need) {
    // Cut: what is handed on is known up to its last row only.
    const rows = out.slice(0, need);
    return { rows, lastK: rows[rows.length - 1]?.[0] ?? known.lastK, exhausted: false };
  }
  // Fewer than `need` while the rows were read only up to lastK: the caller cannot know what follows.
  return { rows: out, lastK: known.lastK, exhausted: known.lastK !== undefined && out.length < need };
}

/** One key a transaction changed: its new record, or null when deleted, and the record it had before (null: absent). */
export interface TxnChange {
  k: string;
  key: Uint8Array;
  record: KvRecord | null;
  /** Never null for a delete (only keys that exist are deleted). */
  prev: KvRecord | null;
}

/** What running a transaction gives: which branch ran, each op's result, and the keys it changed. */
export type TxnOutcome =
  | { ok: true; succeeded: boolean; results: TxnOpResult[]; changes: TxnChange[] }
  /** Refused as a whole (nothing changes): a limit of TXN_LIMITS was exceeded. */
  | { ok: false; message: string };

/**
 * Runs a transaction against `base`. Pure: the same base and transaction give the same outcome.
 * `revision` is the revision its writes get (the current one + 1); nothing is written here — the
 * caller writes `changes` at `revision` only if the transaction changed anything.
 */
export function runTxn(base: TxnBase, compare: readonly TxnCompare[], success: readonly TxnOp[], failure: readonly TxnOp[], revision: number): TxnOutcome {
  const succeeded = compare.every((c) => compareHolds(base.record(latin1(c.key)), c));
  const run = new TxnRun(base, revision);
  const results: TxnOpResult[] = [];
  for (const op of succeeded ? success : failure) {
    const r = run.apply(op);
    if (typeof r === 'string') return { ok: false, message: r };
    results.push(r);
  }
  return { ok: true, succeeded, results, changes: [...run.changes.values()] };
}

/** Whether a compare holds for a key's record (undefined = absent). */
export function compareHolds(r: KvRecord | undefined, c: TxnCompare): boolean {
  if (c.target === 'value') {
    if (!r) return false;
    const order = compareByteOrder(r.value, c.value);
    return holds(order, c.op);
  }
  const actual = r ? r[c.target] : 0;
  return holds(actual < c.value ? -1 : actual > c.value ? 1 : 0, c.op);
}

function holds(order: number, op: CompareOp): boolean {
  switch (op) {
    case '==':
      return order === 0;
    case '!=':
      return order !== 0;
    case '<':
      return order < 0;
    case '>':
      return order > 0;
  }
}

function compareByteOrder(a: Uint8Array, b: Uint8Array): number {
  if (bytesEqual(a, b)) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

/** The size a read row is counted as against TXN_LIMITS.maxReadBytes. */
function rowBytes(key: Uint8Array, r: KvRecord): number {
  return key.length + r.value.length + TXN_ROW_OVERHEAD_BYTES;
}

function toItem(key: Uint8Array, r: KvRecord): KeyValue {
  return { key, value: r.value, createRevision: r.createRevision, modRevision: r.modRevision, version: r.version };
}

/** One transaction's branch running: its own changes over the base. */
class TxnRun {
  /** Keys changed so far, by latin1 key (each at most once: decoding refuses overlaps). */
  readonly changes = new Map<string, TxnChange>();
  private deleted = 0;
  private readBytes = 0;

  constructor(
    private readonly base: TxnBase,
    private readonly revision: number,
  ) {}

  /** Runs one op: its result, or a message when a limit refuses the transaction. */
  apply(op: TxnOp): TxnOpResult | string {
    switch (op.op) {
      case 'put':
        return this.put(op.key, op.value);
      case 'get': {
        const r = this.record(latin1(op.key));
        if (!r) return { op: 'get' };
        if (!this.chargeRead(rowBytes(op.key, r))) return `the reads of the transaction exceed ${TXN_LIMITS.maxReadBytes} bytes`;
        return { op: 'get', item: toItem(op.key, r) };
      }
      case 'range':
        return this.range(op.start, op.end, op.limit);
      case 'del': {
        const k = latin1(op.key);
        const current = this.record(k);
        return this.deleteKeys(current ? [[k, op.key, current]] : [], 'del');
      }
      case 'deleteRange': {
        const { rows, exhausted } = this.rows(latin1(op.start), op.end && latin1(op.end), TXN_LIMITS.maxDeletedKeys - this.deleted + 1, 'delete');
        // The read stopped at maxDeleteScanBytes before the range's end: it cannot delete what it did not see.
        if (exhausted) return `the keys to delete hold more than ${TXN_LIMITS.maxDeleteScanBytes} bytes (keys and values); delete a smaller range`;
        return this.deleteKeys(rows, 'deleteRange');
      }
    }
  }

  private put(key: Uint8Array, value: Uint8Array): TxnOpResult {
    const k = latin1(key);
    const current = this.record(k);
    const record: KvRecord = {
      // Copied: a command's value is a view into a network frame, which the cache must not keep alive.
      value: value.slice(),
      createRevision: current ? current.createRevision : this.revision,
      modRevision: this.revision,
      version: current ? current.version + 1 : 1,
    };
    this.changes.set(k, { k, key, record, prev: current ?? null });
    return { op: 'put' };
  }

  /** Deletes keys that exist at this point of the transaction. */
  /** Deletes keys that exist at this point of the transaction (with their records: a delete's prev). */
  private deleteKeys(keys: Array<[string, Uint8Array, KvRecord]>, op: 'del' | 'deleteRange'): TxnOpResult | string {
    let n = 0;
    for (const [k, key, prev] of keys) {
      if (++this.deleted > TXN_LIMITS.maxDeletedKeys) return `the command would delete more than ${TXN_LIMITS.maxDeletedKeys} keys`;
      this.changes.set(k, { k, key, record: null, prev });
      n++;
    }
    return { op, deleted: n };
  }

  private range(start: Uint8Array, end: Uint8Array | undefined, limit: number): TxnOpResult {
    const { rows, exhausted } = this.rows(latin1(start), end && latin1(end), limit + 1, 'range');
    const items: KeyValue[] = [];
    for (const [, key, r] of rows) {
      if (items.length === limit || !this.chargeRead(rowBytes(key, r))) return { op: 'range', items, more: true };
      items.push(toItem(key, r));
    }
    // Rows were read only part of the way (maxScanBytes): there may be more.
    return { op: 'range', items, more: exhausted };
  }

  private chargeRead(bytes: number): boolean {
    if (this.readBytes + bytes > TXN_LIMITS.maxReadBytes) return false;
    this.readBytes += bytes;
    return true;
  }

  /** A key's record as of this point of the transaction. */
  private record(k: string): KvRecord | undefined {
    const own = this.changes.get(k);
    return own ? (own.record ?? undefined) : this.base.record(k);
  }

  /** The first `need` live rows of [startK, endK) as of this point of the transaction, as far as they are known. */
  private rows(startK: string, endK: string | undefined, need: number, purpose: ScanPurpose): KnownRows & { exhausted: boolean } {
    // Every key this transaction deleted can hide one base row (a put adds or replaces one): ask for that many more.
    const base = this.base.rangeRows(startK, endK, need + this.deleted, purpose);
    const own = [...this.changes.values()].map((c): [string, Uint8Array, KvRecord | null] => [c.k, c.key, c.record]);
    return mergeRows(base, own, startK, endK, need);
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding and validation (commands.ts calls decodeTxnFields; the server validates with checkTxn).

/** A transaction's fields are malformed or break a rule; `message` says which and why. */
export class TxnShapeError extends Error {
  readonly code = 'QKV_BAD_COMMAND';
  constructor(message: string) {
    super(message);
    this.name = 'TxnShapeError';
  }
}

function bad(message: string): never {
  throw new TxnShapeError(message);
}

const COMPARE_TARGETS: ReadonlySet<string> = new Set(['value', 'version', 'createRevision', 'modRevision']);
const COMPARE_OPS: ReadonlySet<string> = new Set(['==', '!=', '<', '>']);

function key(x: Record<string, unknown>, name: string, maxKeyBytes: number, where: string, minBytes = 1): Uint8Array {
  const v = x[name];
  if (!(v instanceof Uint8Array) || v.length < minBytes || v.length > maxKeyBytes) bad(`${where}.${name} must be ${minBytes}..${maxKeyBytes} bytes`);
  return plainBytes(v);
}

function only(x: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k in x) if (!allowed.includes(k)) bad(`unknown field "${k}" in ${where}`);
}

function decodeCompare(x: unknown, maxKeyBytes: number, where: string): TxnCompare {
  if (!isRecord(x)) bad(`${where} must be a map`);
  only(x, ['key', 'target', 'op', 'value'], where);
  const k = key(x, 'key', maxKeyBytes, where);
  const { target, op, value } = x;
  if (typeof target !== 'string' || !COMPARE_TARGETS.has(target)) bad(`${where}.target must be one of value, version, createRevision, modRevision`);
  if (typeof op !== 'string' || !COMPARE_OPS.has(op)) bad(`${where}.op must be one of ==, !=, <, >`);
  if (target === 'value') {
    if (!(value instanceof Uint8Array)) bad(`${where}.value must be bytes for a value compare`);
    return { key: k, target, op: op as CompareOp, value: plainBytes(value) };
  }
  if (!isIndex(value)) bad(`${where}.value must be a non-negative integer for a ${target} compare`);
  return { key: k, target: target as 'version' | 'createRevision' | 'modRevision', op: op as CompareOp, value };
}

function decodeOp(x: unknown, maxKeyBytes: number, where: string): TxnOp {
  if (!isRecord(x)) bad(`${where} must be a map`);
  const end = (): { end?: Uint8Array } => (x['end'] === undefined ? {} : { end: key(x, 'end', maxKeyBytes, where) });
  switch (x['op']) {
    case 'put':
      only(x, ['op', 'key', 'value'], where);
      if (!(x['value'] instanceof Uint8Array)) bad(`${where}.value must be bytes`);
      return { op: 'put', key: key(x, 'key', maxKeyBytes, where), value: plainBytes(x['value']) };
    case 'get':
      only(x, ['op', 'key'], where);
      return { op: 'get', key: key(x, 'key', maxKeyBytes, where) };
    case 'del':
      only(x, ['op', 'key'], where);
      return { op: 'del', key: key(x, 'key', maxKeyBytes, where) };
    case 'range': {
      only(x, ['op', 'start', 'end', 'limit'], where);
      const limit = x['limit'];
      if (!isIndex(limit) || limit < 1 || limit > TXN_LIMITS.maxRangeLimit) bad(`${where}.limit must be an integer in 1..${TXN_LIMITS.maxRangeLimit}`);
      // An empty start is the first key (a range over every key).
      return { op: 'range', start: key(x, 'start', maxKeyBytes, where, 0), ...end(), limit };
    }
    case 'deleteRange':
      only(x, ['op', 'start', 'end'], where);
      return { op: 'deleteRange', start: key(x, 'start', maxKeyBytes, where, 0), ...end() };
    default:
      return bad(`${where}.op must be put, get, range, del or deleteRange`);
  }
}

function list<T>(x: unknown, max: number, where: string, each: (item: unknown, where: string) => T): T[] {
  if (x === undefined) return [];
  if (!Array.isArray(x)) bad(`${where} must be a list`);
  if (x.length > max) bad(`${where} has ${x.length} entries; at most ${max} are allowed`);
  return x.map((item, i) => each(item, `${where}[${i}]`));
}

/** The compares and branches of a decoded transaction command. */
export interface TxnFields {
  compare: TxnCompare[];
  success: TxnOp[];
  failure: TxnOp[];
}

/** Decodes and checks the compare/success/failure fields of a transaction (throws TxnShapeError). */
export function decodeTxnFields(raw: Record<string, unknown>, maxKeyBytes: number): TxnFields {
  const compare = list(raw['compare'], TXN_LIMITS.maxCompares, 'compare', (x, w) => decodeCompare(x, maxKeyBytes, w));
  const success = list(raw['success'], TXN_LIMITS.maxOpsPerBranch, 'success', (x, w) => decodeOp(x, maxKeyBytes, w));
  const failure = list(raw['failure'], TXN_LIMITS.maxOpsPerBranch, 'failure', (x, w) => decodeOp(x, maxKeyBytes, w));
  checkBranch(success, 'success');
  checkBranch(failure, 'failure');
  return { compare, success, failure };
}

/**
 * Refuses a branch that would change one key twice: two puts of a key, or a put of a key that a
 * del or deleteRange of the same branch covers (etcd refuses the same). Deletes may overlap.
 */
export function checkBranch(ops: readonly TxnOp[], where: string): void {
  const puts = new Set<string>();
  const deletes: Array<[string, string | undefined]> = [];
  for (const op of ops) {
    if (op.op === 'del') deletes.push([latin1(op.key), latin1(op.key) + '\0']);
    else if (op.op === 'deleteRange') deletes.push([latin1(op.start), op.end && latin1(op.end)]);
  }
  for (const op of ops) {
    if (op.op !== 'put') continue;
    const k = latin1(op.key);
    if (puts.has(k)) bad(`${where} puts key ${JSON.stringify(k)} twice; a transaction may change a key once`);
    puts.add(k);
    for (const [s, e] of deletes) {
      if (k >= s && (e === undefined || k < e)) bad(`${where} both puts and deletes key ${JSON.stringify(k)}; a transaction may change a key once`);
    }
  }
}

/** The point keys a transaction reads or writes (compares and single-key ops of both branches). */
export function txnPointKeys(t: TxnFields): Uint8Array[] {
  const out: Uint8Array[] = t.compare.map((c) => c.key);
  for (const op of [...t.success, ...t.failure]) if (op.op === 'put' || op.op === 'get' || op.op === 'del') out.push(op.key);
  return out;
}

/** A range a transaction may read: how many rows at most, and what for. */
export interface TxnRangeRead {
  start: Uint8Array;
  end: Uint8Array | undefined;
  need: number;
  /** 'range': the read also stops at TXN_LIMITS.maxScanBytes; 'delete': at maxDeleteScanBytes. */
  purpose: ScanPurpose;
}

/**
 * The ranges a transaction may read (range and deleteRange ops of both branches), with how many
 * rows of the state before it each may need: what the op reads plus every key the branch's earlier
 * ops may have deleted (each hides one row; at most TXN_LIMITS.maxDeletedKeys in all). TxnRun.rows
 * asks for no more than this.
 */
export function txnRanges(t: TxnFields): TxnRangeRead[] {
  const out: TxnRangeRead[] = [];
  const max = TXN_LIMITS.maxDeletedKeys;
  for (const branch of [t.success, t.failure]) {
    let deletable = 0; // keys the ops so far may have deleted
    for (const op of branch) {
      if (op.op === 'range') out.push({ start: op.start, end: op.end, need: op.limit + 1 + deletable, purpose: 'range' });
      else if (op.op === 'deleteRange') out.push({ start: op.start, end: op.end, need: max + 1, purpose: 'delete' });
      if (op.op === 'del') deletable = Math.min(max, deletable + 1);
      else if (op.op === 'deleteRange') deletable = max;
    }
  }
  return out;
}
