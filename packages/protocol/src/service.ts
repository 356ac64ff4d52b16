// The server-facing contract: what the node implements so that the client endpoint can serve
// `/client`. The endpoint decodes and validates every frame, then calls exactly one method with
// arguments that already obey the limits. Methods answer with a result or throw a typed error
// from ./errors.ts; anything else thrown is reported to the client as QKV_INTERNAL.

import type { LeaderHint } from './errors.js';
import type {
  CasRequest,
  CasResult,
  ClusterStatus,
  CompactRequest,
  CompactResult,
  DeleteRequest,
  DeleteResult,
  GetRequest,
  GetResult,
  PutRequest,
  PutResult,
  RangeRequest,
  RangeResult,
  WatchRequest,
  WatchResult,
  TxnRequest,
  TxnResult,
} from './wire.js';

/** Strips the envelope fields (`id`, `op`, `timeoutMs`) from a request type. */
export type ArgsOf<R> = Omit<R, 'id' | 'op' | 'timeoutMs'>;
/** Validated arguments of `get`. */
export type GetArgs = ArgsOf<GetRequest>;
/** Validated arguments of `compact`. */
export type CompactArgs = ArgsOf<CompactRequest>;
/** Validated arguments of `put`. */
export type PutArgs = ArgsOf<PutRequest>;
/** Validated arguments of `delete`. */
export type DeleteArgs = ArgsOf<DeleteRequest>;
/** Validated arguments of `cas`. */
export type CasArgs = ArgsOf<CasRequest>;
/** Validated arguments of `txn`. */
export type TxnArgs = ArgsOf<TxnRequest>;
/** Validated arguments of `range`, plus the byte budget of the answer. */
export type RangeArgs = ArgsOf<RangeRequest> & {
  /**
   * Most bytes of keys + values the page may carry so its frame fits. The service stops early
   * (with `more: true`) when the next item would exceed it, but always returns at least one item
   * if any remains (one item always fits: keys and values obey the limits).
   */
  maxResultBytes: number;
};

/** Validated arguments of `watch`. */
export type WatchArgs = ArgsOf<WatchRequest>;

/** Per-call context the endpoint hands to the service. */
export interface CallContext {
  /** Fires when the deadline passes or the client connection closes; stop work and throw. */
  signal: AbortSignal;
  /** Absolute deadline, milliseconds since the epoch (`Date.now()` clock). */
  deadlineMs: number;
}

/** What a node says about itself in the `hello` answer. */
export interface NodeIdentity {
  /** This node's id. */
  serverId: string;
  /** The leader as this node knows it right now, or null. */
  leader: LeaderHint | null;
}

/**
 * The key-value operations a node serves to clients. The server implements it on top of Raft;
 * tests implement in-memory fakes.
 *
 * Semantics the implementation must keep (docs/protocol.md has the long form):
 *  - writes (`put`, `delete`, `cas`) go through the log on the leader; a follower throws
 *    `NotLeaderError` with a hint (or `NoLeaderError`), an overloaded leader `BusyError`;
 *  - exactly-once: a write whose `session.seq` already has a stored result returns that result
 *    (or rethrows the stored `CasFailedError`) without applying again; results with
 *    `seq < session.ackedBelow` may be dropped; an unknown session with `ackedBelow > 1` is an
 *    expired one (`SessionExpiredError`);
 *  - `get`/`range` with `linearizable` use ReadIndex on the leader; `stale` reads the local state;
 *  - when `ctx.signal` fires, give up and throw (a write may still commit; the session covers retries).
 */
export interface KvService {
  /** Identity for the `hello` answer; called once per connection, must be cheap. */
  identity(): NodeIdentity;
  /** Reads one key (linearizable: leader + ReadIndex; stale: local state). */
  get(args: GetArgs, ctx: CallContext): Promise<GetResult>;
  /** Writes one key through the log, exactly once per `session.seq`. */
  put(args: PutArgs, ctx: CallContext): Promise<PutResult>;
  /** Deletes one key through the log, exactly once per `session.seq`. */
  delete(args: DeleteArgs, ctx: CallContext): Promise<DeleteResult>;
  /** Throws `CasFailedError` (with `actualModRevision`) when the condition does not hold. */
  cas(args: CasArgs, ctx: CallContext): Promise<CasResult>;
  /** One page of keys in byte order (see `rangeInterval`), within `args.maxResultBytes`. */
  range(args: RangeArgs, ctx: CallContext): Promise<RangeResult>;
  /** This node's view of the cluster; any node answers. */
  status(ctx: CallContext): Promise<ClusterStatus>;
  /** Compacts history at `args.revision` through the log (idempotent; see CompactRequest). */
  compact(args: CompactArgs, ctx: CallContext): Promise<CompactResult>;
  /** A transaction through the log, exactly once per `session.seq` (see TxnRequest). */
  txn(args: TxnArgs, ctx: CallContext): Promise<TxnResult>;
}

/** Where a watch stream's frames go (the connection): batches and progress, then at most one end. */
export interface WatchSink {
  /** One batch of events, or progress (no events); the watch has everything through `result.revision`. */
  push(result: WatchResult): void;
  /** The watch ended with a typed error (QKV_COMPACTED, QKV_NO_LEADER, ...); nothing follows. */
  end(err: unknown): void;
}

/** A running watch stream, as its connection holds it. */
export interface WatchHandle {
  /** The client took `batches` more frames: the node may send as many more. */
  ack(batches: number): void;
  /** Stops the stream; nothing more is pushed or ended. */
  cancel(): void;
}

/**
 * The add-on ability to serve `watch` streams (a node has it; a KvService fake need not). `owner`
 * names the connection the request came on, so that per-connection limits can be kept.
 */
export interface WatchService {
  /** Starts a watch stream (see WatchRequest); throws BusyError at once over the watch limits. */
  open(args: WatchArgs, owner: object, sink: WatchSink): WatchHandle;
}
