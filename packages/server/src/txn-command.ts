// Transactions between the client contract and the state machine: a validated TxnRequest (from
// WebSocket or HTTP JSON) becomes one `txn` command, and its apply result becomes a TxnResult.
// Range delete is the transaction with no compares and one deleteRange op.
import {
  InternalError,
  InvalidArgumentError,
  TXN_COMPARES_MAX,
  TXN_DELETED_KEYS_MAX,
  TXN_OPS_MAX,
  TXN_RANGE_LIMIT_MAX,
  TXN_READ_BYTES_MAX,
  type TxnArgs,
  type TxnOp as WireTxnOp,
  type TxnOpResult as WireTxnOpResult,
  type TxnResult,
} from '@quorumkv/protocol';
import { type ApplyResult, type Command, type SessionTag, type TxnOp, type TxnOpResult, TXN_LIMITS, TxnShapeError, checkBranch } from '@quorumkv/storage';
import { pageRange, throwIfApplyError, toWireItem } from './kv-service.js';

// The protocol announces the state machine's limits; they must be the same numbers.
const LIMITS_AGREE =
  TXN_COMPARES_MAX === TXN_LIMITS.maxCompares &&
  TXN_OPS_MAX === TXN_LIMITS.maxOpsPerBranch &&
  TXN_RANGE_LIMIT_MAX === TXN_LIMITS.maxRangeLimit &&
  TXN_DELETED_KEYS_MAX === TXN_LIMITS.maxDeletedKeys &&
  TXN_READ_BYTES_MAX === TXN_LIMITS.maxReadBytes;
if (!LIMITS_AGREE) throw new Error('transaction limits of @quorumkv/protocol and @quorumkv/storage disagree');

/** A wire range (prefix, or start with optional end) as the state machine's [start, end); null when empty. */
function bounds(op: { prefix?: Uint8Array | undefined; start?: Uint8Array | undefined; end?: Uint8Array | undefined }): { start: Uint8Array; end?: Uint8Array } | null {
  const r = pageRange(op);
  if (!r) return null;
  return 'end' in r && r.end ? { start: r.start, end: r.end } : { start: (r as { start: Uint8Array }).start };
}

/**
 * The storage op of a wire op, or null for a range that is empty by construction (start >= end):
 * it still answers (no rows, nothing deleted) without reading.
 */
function storageOp(op: WireTxnOp): TxnOp | null {
  switch (op.op) {
    case 'put':
      return { op: 'put', key: op.key, value: op.value };
    case 'get':
      return { op: 'get', key: op.key };
    case 'delete':
      return { op: 'del', key: op.key };
    case 'range': {
      const b = bounds(op);
      return b && { op: 'range', ...b, limit: op.limit };
    }
    case 'deleteRange': {
      const b = bounds(op);
      return b && { op: 'deleteRange', ...b };
    }
  }
}

/** One branch: its storage ops, and for each wire op the index of its storage op (null = empty range). */
function branch(ops: WireTxnOp[], where: string): { ops: TxnOp[]; at: Array<number | null> } {
  const out: TxnOp[] = [];
  const at = ops.map((op) => {
    const s = storageOp(op);
    if (!s) return null;
    out.push(s);
    return out.length - 1;
  });
  try {
    checkBranch(out, where);
  } catch (e) {
    if (e instanceof TxnShapeError) throw new InvalidArgumentError(e.message, { cause: e });
    throw e;
  }
  return { ops: out, at };
}

/** A validated transaction as a command, with what toTxnResult needs to map the answer back. */
export interface PreparedTxn {
  cmd: Command;
  wire: Pick<TxnArgs, 'success' | 'failure'>;
  at: { success: Array<number | null>; failure: Array<number | null> };
}

/**
 * The `txn` command of a validated transaction (WebSocket or HTTP). Throws InvalidArgumentError
 * for a branch that changes a key twice (etcd refuses it too).
 */
export function prepareTxn(args: Pick<TxnArgs, 'compare' | 'success' | 'failure'>, session?: SessionTag): PreparedTxn {
  const success = branch(args.success, 'success');
  const failure = branch(args.failure, 'failure');
  const cmd: Command = { op: 'txn', compare: args.compare, success: success.ops, failure: failure.ops, ...(session ? { session } : {}) };
  return { cmd, wire: args, at: { success: success.at, failure: failure.at } };
}

/** The client contract's answer to a transaction's apply result (typed errors for error results). */
export function toTxnResult(p: PreparedTxn, r: ApplyResult): TxnResult {
  throwIfApplyError(r);
  if (r.op !== 'txn') throw new InternalError(`unexpected apply result ${r.op} for txn`);
  const ops = r.succeeded ? p.wire.success : p.wire.failure;
  const at = r.succeeded ? p.at.success : p.at.failure;
  const results = ops.map((op, i) => {
    const j = at[i];
    return wireResult(op, j === null || j === undefined ? undefined : r.results[j]);
  });
  return { succeeded: r.succeeded, revision: r.revision, results, ...(r.term === undefined ? {} : { term: r.term }) };
}

/** The wire result of one op (`r` undefined: an empty range, answered without the state machine). */
function wireResult(op: WireTxnOp, r: TxnOpResult | undefined): WireTxnOpResult {
  switch (op.op) {
    case 'put':
      return { op: 'put' };
    case 'get':
      return { op: 'get', item: r?.op === 'get' && r.item ? toWireItem(r.item) : null };
    case 'range':
      return r?.op === 'range' ? { op: 'range', items: r.items.map(toWireItem), more: r.more } : { op: 'range', items: [], more: false };
    case 'delete':
      return { op: 'delete', deleted: r?.op === 'del' && r.deleted > 0 };
    case 'deleteRange':
      return { op: 'deleteRange', deleted: r?.op === 'deleteRange' ? r.deleted : 0 };
  }
}
