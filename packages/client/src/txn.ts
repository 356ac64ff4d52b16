// Transactions in the client: the caller's compares and operations (keys and values as strings or
// bytes) checked and turned into the wire form, and the answer turned into items.
import {
  InvalidArgumentError,
  TXN_COMPARES_MAX,
  TXN_OPS_MAX,
  TXN_RANGE_LIMIT_MAX,
  checkKey,
  checkValue,
  type BytesLike,
  type Limits,
  type TxnCompare as WireCompare,
  type TxnCompareOp,
  type TxnOp as WireOp,
  type TxnResult,
} from '@quorumkv/protocol';
import { toItem, type KvItem, type KvTextItem, type ValueFormat } from './item.js';
import { bytesOf } from './utf8.js';

/**
 * One compare: the key's `target` on the left, `value` on the right. `value` is bytes or a string
 * for `target: 'value'`, a number for the others. An absent key has version, createRevision and
 * modRevision 0, and a value compare on it never holds.
 */
export type TxnCompareSpec =
  | { key: BytesLike; target: 'value'; op: TxnCompareOp; value: BytesLike }
  | { key: BytesLike; target: 'version' | 'createRevision' | 'modRevision'; op: TxnCompareOp; value: number };

/** One operation of a branch. Ranges take `prefix`, or `start` with an optional exclusive `end`. */
export type TxnOpSpec =
  | { op: 'put'; key: BytesLike; value: BytesLike }
  | { op: 'get'; key: BytesLike }
  | { op: 'range'; prefix?: BytesLike; start?: BytesLike; end?: BytesLike; limit: number }
  | { op: 'delete'; key: BytesLike }
  | { op: 'deleteRange'; prefix?: BytesLike; start?: BytesLike; end?: BytesLike };

/** A transaction: if every compare holds, `success` runs, else `failure`. */
export interface TxnSpec {
  compare?: TxnCompareSpec[];
  success?: TxnOpSpec[];
  failure?: TxnOpSpec[];
}

/** The result of one operation, in branch order. */
export type TxnOpResponse<I = KvItem> =
  | { op: 'put' }
  | { op: 'get'; item: I | undefined }
  | { op: 'range'; items: I[]; more: boolean }
  | { op: 'delete'; deleted: boolean }
  | { op: 'deleteRange'; deleted: number };

/** Answer of `txn`. */
export interface TxnResponse<I = KvItem> {
  /** True when every compare held (the success branch ran). */
  succeeded: boolean;
  /** The transaction's revision when it changed a key, else the current revision. */
  revision: number;
  /** One per operation of the branch that ran. */
  results: Array<TxnOpResponse<I>>;
  /** Term of the leader that committed it. */
  term?: number;
}

/** Checks a transaction and turns it into its wire form. Throws InvalidArgumentError / TooLargeError. */
export function wireTxn(spec: TxnSpec, limits: Limits): { compare: WireCompare[]; success: WireOp[]; failure: WireOp[] } {
  if (!spec || typeof spec !== 'object') throw new InvalidArgumentError('txn needs { compare, success, failure }');
  const compare = spec.compare ?? [];
  if (!Array.isArray(compare) || compare.length > TXN_COMPARES_MAX) throw new InvalidArgumentError(`compare must be a list of at most ${TXN_COMPARES_MAX}`);
  const branch = (ops: TxnOpSpec[] | undefined, name: string): WireOp[] => {
    const list = ops ?? [];
    if (!Array.isArray(list) || list.length > TXN_OPS_MAX) throw new InvalidArgumentError(`${name} must be a list of at most ${TXN_OPS_MAX} operations`);
    return list.map((op, i) => wireOp(op, limits, `${name}[${i}]`));
  };
  return { compare: compare.map((c, i) => wireCompare(c, limits, `compare[${i}]`)), success: branch(spec.success, 'success'), failure: branch(spec.failure, 'failure') };
}

const COMPARE_OPS: readonly string[] = ['==', '!=', '<', '>'];

function wireCompare(c: TxnCompareSpec, limits: Limits, path: string): WireCompare {
  const key = checkKey(bytesOf(c.key, `${path}.key`), limits, `${path}.key`);
  if (!COMPARE_OPS.includes(c.op)) throw new InvalidArgumentError(`${path}.op must be one of ==, !=, <, >`);
  if (c.target === 'value') return { key, target: 'value', op: c.op, value: checkValue(bytesOf(c.value, `${path}.value`), limits, `${path}.value`) };
  if (c.target !== 'version' && c.target !== 'createRevision' && c.target !== 'modRevision') {
    throw new InvalidArgumentError(`${path}.target must be value, version, createRevision or modRevision`);
  }
  if (!Number.isSafeInteger(c.value) || c.value < 0) throw new InvalidArgumentError(`${path}.value must be a non-negative integer`);
  return { key, target: c.target, op: c.op, value: c.value };
}

function wireOp(op: TxnOpSpec, limits: Limits, path: string): WireOp {
  const key = (k: BytesLike) => checkKey(bytesOf(k, `${path}.key`), limits, `${path}.key`);
  switch (op?.op) {
    case 'put':
      return { op: 'put', key: key(op.key), value: checkValue(bytesOf(op.value, `${path}.value`), limits, `${path}.value`) };
    case 'get':
    case 'delete':
      return { op: op.op, key: key(op.key) };
    case 'range': {
      if (!Number.isSafeInteger(op.limit) || op.limit < 1 || op.limit > TXN_RANGE_LIMIT_MAX) {
        throw new InvalidArgumentError(`${path}.limit must be an integer in [1, ${TXN_RANGE_LIMIT_MAX}]`);
      }
      return { op: 'range', ...rangeBounds(op, limits, path), limit: op.limit };
    }
    case 'deleteRange':
      return { op: 'deleteRange', ...rangeBounds(op, limits, path) };
    default:
      throw new InvalidArgumentError(`${path}.op must be put, get, range, delete or deleteRange`);
  }
}

/** `prefix`, or `start` with an optional `end`, checked: exactly one of prefix and start. */
export function rangeBounds(
  o: { prefix?: BytesLike | undefined; start?: BytesLike | undefined; end?: BytesLike | undefined },
  limits: Limits,
  path: string,
): { prefix?: Uint8Array; start?: Uint8Array; end?: Uint8Array } {
  if ((o.prefix === undefined) === (o.start === undefined)) throw new InvalidArgumentError(`${path} needs exactly one of prefix and start`);
  if (o.prefix !== undefined && o.end !== undefined) throw new InvalidArgumentError(`${path} takes end only with start`);
  const bound = (b: BytesLike, what: string): Uint8Array => {
    const bytes = bytesOf(b, what);
    if (bytes.length > limits.maxKeyBytes) throw new InvalidArgumentError(`${what} is longer than a key may be`);
    return bytes;
  };
  if (o.prefix !== undefined) return { prefix: bound(o.prefix, `${path}.prefix`) };
  const start = bound(o.start as BytesLike, `${path}.start`);
  return o.end === undefined ? { start } : { start, end: checkKey(bytesOf(o.end, `${path}.end`), limits, `${path}.end`) };
}

/** The wire answer as the caller asked for it (items as bytes or strings). */
export function txnResponse(r: TxnResult, as: ValueFormat): TxnResponse<KvItem | KvTextItem> {
  const results = r.results.map((x): TxnOpResponse<KvItem | KvTextItem> => {
    switch (x.op) {
      case 'get':
        return { op: 'get', item: x.item ? toItem(x.item, as) : undefined };
      case 'range':
        return { op: 'range', items: x.items.map((i) => toItem(i, as)), more: x.more };
      default:
        return x;
    }
  });
  return { succeeded: r.succeeded, revision: r.revision, results, ...(r.term === undefined ? {} : { term: r.term }) };
}
