// The client wire protocol: what travels over WebSocket `/client` as msgpack frames.
// One frame = one request or one response. Requests carry a connection-unique `id`; responses
// echo it, in any order (the connection is pipelined). docs/protocol.md describes the rules.

import type { LeaderHint } from './errors.js';

/** The protocol version this package speaks. A server refuses a `hello` with another version. */
export const PROTOCOL_VERSION = 1;

/** The HTTP path of the client WebSocket endpoint on every node. */
export const CLIENT_PATH = '/client';

/** Size limits shared by both ends. A server announces its own in the `hello` answer. */
export interface Limits {
  /** Largest key, in bytes (UTF-8 bytes for string keys). Keys are never empty. */
  maxKeyBytes: number;
  /** Largest value, in bytes. */
  maxValueBytes: number;
  /** Largest encoded frame, in bytes, in either direction. */
  maxFrameBytes: number;
}

/** The default limits: 4 KiB keys, 1 MiB values, 2 MiB frames. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxKeyBytes: 4 * 1024,
  maxValueBytes: 1024 * 1024,
  maxFrameBytes: 2 * 1024 * 1024,
});

/** Bytes a frame needs besides its key and value (ids, field names, session, metadata). */
export const FRAME_OVERHEAD_BYTES_MAX = 1024;
/** Most items one `range` request may ask for. */
export const RANGE_LIMIT_MAX = 10_000;
/** Longest per-request timeout a client may ask for (10 minutes). */
export const REQUEST_TIMEOUT_MS_MAX = 10 * 60 * 1000;
/** Most events one `watch` answer may carry (a revision's events are never split, so it may carry a few more). */
export const WATCH_EVENTS_MAX = 1_000;
/** Most events beyond `limit` a `watch` answer may carry to finish its last revision (one command's keys). */
export const WATCH_REVISION_EVENTS_SLACK = 10_000;
/** Longest a watch stream may go without a frame (its progress interval). */
export const WATCH_WAIT_MS_MAX = 60_000;
/** Most unacknowledged batches a watch stream may ask for. */
export const WATCH_WINDOW_MAX = 64;
/** Most entries in one `watchAck` frame. */
export const WATCH_ACKS_MAX = 4096;
/** Bytes of unacknowledged batches the node sends one watch beyond its first (keys and values). */
export const WATCH_STREAM_OUTSTANDING_BYTES_MAX = 256 * 1024;
/** Longest session id, in characters. */
export const SESSION_ID_CHARS_MAX = 64;

/** How fresh a read must be. */
export type Consistency = 'linearizable' | 'stale';

/**
 * The exactly-once session of a write (Raft thesis §6.3). `seq` numbers a client's writes from 1;
 * a retry reuses its `seq`. The state machine keeps the result of every `seq >= ackedBelow`, so a
 * retried `seq` gets the stored result instead of being applied again. `ackedBelow` is the lowest
 * `seq` whose answer the client may still need: every smaller one has been answered.
 */
export interface SessionRef {
  id: string;
  seq: number;
  ackedBelow: number;
}

/** A stored key with its metadata, as it travels on the wire. */
export interface WireItem {
  key: Uint8Array;
  value: Uint8Array;
  /** Revision (the state machine's write counter) of the write that created the key since it last did not exist. */
  createRevision: number;
  /** Revision (the state machine's write counter) of the last write to the key. */
  modRevision: number;
  /** Number of writes since creation; 1 after the first put. */
  version: number;
}

/** The condition of a compare-and-swap. */
export type CasCondition =
  | { kind: 'modRevision'; modRevision: number }
  | { kind: 'value'; value: Uint8Array }
  | { kind: 'absent' };

/** What a compare-and-swap does when its condition holds. */
export type CasAction = { kind: 'put'; value: Uint8Array } | { kind: 'delete' };

/** Fields every request carries. */
export interface RequestBase {
  /** Connection-unique request id (a non-negative safe integer); echoed by the response. */
  id: number;
  /** How long the caller will wait, in ms; the server gives up after it. Absent = server default. */
  timeoutMs?: number;
}

/** First request on a connection: agree on the version, learn the node and the limits. */
export interface HelloRequest extends RequestBase {
  op: 'hello';
  version: number;
}
/** Read one key. */
export interface GetRequest extends RequestBase {
  op: 'get';
  key: Uint8Array;
  consistency: Consistency;
  /**
   * Read the key as it was at this revision (absent = now). Below the compacted revision:
   * QKV_COMPACTED; above the node's current revision: QKV_INVALID_ARGUMENT.
   */
  revision?: number;
}
/** Write one key. */
export interface PutRequest extends RequestBase {
  op: 'put';
  key: Uint8Array;
  value: Uint8Array;
  session: SessionRef;
}
/** Delete one key. */
export interface DeleteRequest extends RequestBase {
  op: 'delete';
  key: Uint8Array;
  session: SessionRef;
}
/** Compare-and-swap on one key. */
export interface CasRequest extends RequestBase {
  op: 'cas';
  key: Uint8Array;
  condition: CasCondition;
  action: CasAction;
  session: SessionRef;
}
/**
 * Read keys in order: those starting with `prefix`, or in [`start`, `end`) (no `end` = to the last
 * key). Exactly one of `prefix` and `start` is set. `after` resumes a previous page: only keys
 * strictly greater are returned.
 */
export interface RangeRequest extends RequestBase {
  op: 'range';
  prefix?: Uint8Array;
  start?: Uint8Array;
  end?: Uint8Array;
  after?: Uint8Array;
  /** Most items in this page (1..RANGE_LIMIT_MAX). */
  limit: number;
  consistency: Consistency;
  /**
   * Read at this revision (as GetRequest.revision). A range's later pages pass the `revision` its
   * first page answered, so every page shows the same state.
   */
  revision?: number;
}
/** The node's view of the cluster. */
export interface StatusRequest extends RequestBase {
  op: 'status';
}
/**
 * Compacts history at `revision` through the log (every node at the same revision): reads below
 * it fail QKV_COMPACTED from then on. Idempotent: at or below the compacted revision it changes
 * nothing; above the current revision it is QKV_INVALID_ARGUMENT.
 */
export interface CompactRequest extends RequestBase {
  op: 'compact';
  revision: number;
}

/**
 * Opens a watch stream on the connection (etcd's WatchCreateRequest): the changes of one key
 * (`key`) or of every key under `prefix` (exactly one of the two) after `afterRevision`. The
 * request's `id` names the watch. The node answers with a stream of frames carrying that id: a
 * first one at once (no events; its `revision` is where the watch starts), then a batch of up to
 * `limit` events as soon as there are any, or a progress notification (no events) after
 * `progressMs` with none. A frame is an ordinary answer, `{ id, ok: true, result: WatchResult }`;
 * an error answer (`ok: false`) ends the stream. Flow control: the node has at most `window`
 * batches (and WATCH_STREAM_OUTSTANDING_BYTES_MAX bytes, at least one batch) unacknowledged; the
 * client acknowledges batches with `watchAck` as it consumes them. A watch whose client does not
 * keep up is not buffered: it waits, and resumes from history. `timeoutMs` does not apply.
 * Any node serves a watch, from its applied state; a client resumes after the `revision` of the
 * last frame it took, on any node, with no gap or duplicate. Below the compacted revision:
 * QKV_COMPACTED; a node long without a leader: QKV_NO_LEADER; over the watch limits: QKV_BUSY.
 */
export interface WatchRequest extends RequestBase {
  op: 'watch';
  key?: Uint8Array;
  prefix?: Uint8Array;
  /** Changes after this revision; absent = after the answering node's current revision (from now on). */
  afterRevision?: number;
  /** Most events in a batch (1..WATCH_EVENTS_MAX; a revision's events are never split). */
  limit: number;
  /** Longest time without a frame before a progress notification, in ms (1..WATCH_WAIT_MS_MAX). */
  progressMs: number;
  /** Most unacknowledged batches (1..WATCH_WINDOW_MAX). */
  window: number;
  /** Put each event's previous value in `prevValue`. */
  prevValue?: boolean;
}

/** What a transaction compare looks at. An absent key has version, createRevision and modRevision 0. */
export type TxnCompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision';
/** How a compare compares: the key's field on the left, `value` on the right. */
export type TxnCompareOp = '==' | '!=' | '<' | '>';
/** One compare of a transaction. A value compare on an absent key never holds (as in etcd). */
export type TxnCompare =
  | { key: Uint8Array; target: 'value'; op: TxnCompareOp; value: Uint8Array }
  | { key: Uint8Array; target: 'version' | 'createRevision' | 'modRevision'; op: TxnCompareOp; value: number };
/**
 * One operation of a transaction branch. Ranges take `prefix`, or `start` with an optional `end`
 * (exclusive), as `range` requests do; an empty prefix is every key.
 */
export type TxnOp =
  | { op: 'put'; key: Uint8Array; value: Uint8Array }
  | { op: 'get'; key: Uint8Array }
  | { op: 'range'; prefix?: Uint8Array; start?: Uint8Array; end?: Uint8Array; limit: number }
  | { op: 'delete'; key: Uint8Array }
  | { op: 'deleteRange'; prefix?: Uint8Array; start?: Uint8Array; end?: Uint8Array };
/** The result of one transaction operation, in branch order. */
export type TxnOpResult =
  | { op: 'put' }
  | { op: 'get'; item: WireItem | null }
  | { op: 'range'; items: WireItem[]; more: boolean }
  | { op: 'delete'; deleted: boolean }
  | { op: 'deleteRange'; deleted: number };

/** Most compares in one transaction (the state machine's own limit is the same). */
export const TXN_COMPARES_MAX = 64;
/** Most operations in one transaction branch. */
export const TXN_OPS_MAX = 128;
/** Most rows one range operation inside a transaction may ask for. */
export const TXN_RANGE_LIMIT_MAX = 1000;
/** Most keys one transaction or range delete may delete; beyond it the command fails QKV_LIMIT_EXCEEDED. */
export const TXN_DELETED_KEYS_MAX = 10_000;
/** Most bytes the reads of one transaction may return (rows counted as key + value + 64). */
export const TXN_READ_BYTES_MAX = 1024 * 1024;

/**
 * A transaction (after etcd's Txn): if every compare holds, the `success` operations run, else
 * the `failure` ones; all of it is one write at one revision. Reads inside see the transaction's
 * own earlier writes. A branch may change a key at most once.
 */
export interface TxnRequest extends RequestBase {
  op: 'txn';
  compare: TxnCompare[];
  success: TxnOp[];
  failure: TxnOp[];
  session: SessionRef;
}

/**
 * Acknowledges frames of the connection's watches: each entry of `watches` is one frame of the
 * watch it names (repeat an id for several). One frame carries the acks of many watches, so a
 * client with many watches sends few. Never answered; unknown ids are ignored; `id` is unused.
 */
export interface WatchAckRequest extends RequestBase {
  op: 'watchAck';
  watches: number[];
}

/** Cancels the watch `id` (never answered; the node sends nothing more for it). */
export interface WatchCancelRequest extends RequestBase {
  op: 'watchCancel';
}

/** Any client request. */
export type ClientRequest =
  | HelloRequest
  | GetRequest
  | PutRequest
  | DeleteRequest
  | CasRequest
  | RangeRequest
  | StatusRequest
  | CompactRequest
  | WatchRequest
  | TxnRequest
  | WatchAckRequest
  | WatchCancelRequest;
/** The operation names. */
export type Op = ClientRequest['op'];
/** The requests that write (and so carry a session). */
export type WriteRequest = PutRequest | DeleteRequest | CasRequest | TxnRequest;

/** Answer to `hello`. */
export interface HelloResult {
  version: number;
  /** The answering node's id. */
  serverId: string;
  /** The leader as this node knows it, or null. */
  leader: LeaderHint | null;
  limits: Limits;
}
/** Answer to `get`: the item, or null when the key does not exist. */
export interface GetResult {
  item: WireItem | null;
}
/** Answer to `put`: the revision of the write. */
export interface PutResult {
  revision: number;
  /** Term of the leader that committed the write (the log entry's term). Absent from older servers. */
  term?: number;
}
/** Answer to `delete`: the revision of the delete, and whether a key was there. */
export interface DeleteResult {
  revision: number;
  deleted: boolean;
  /** Term of the leader that committed the delete. */
  term?: number;
}
/** Answer to a successful `cas` (a failed one is a `QKV_CAS_FAILED` error). */
export interface CasResult {
  revision: number;
  /** Term of the leader that committed the write. */
  term?: number;
}
/**
 * Answer to `txn`: whether the compares held (`succeeded`: the success branch ran), the revision
 * (the transaction's own when it changed a key, else the current one) and each operation's result.
 */
export interface TxnResult {
  succeeded: boolean;
  revision: number;
  results: TxnOpResult[];
  /** Term of the leader that committed the transaction. */
  term?: number;
}
/** One page of a range; `more` says whether keys remain after the last item. */
export interface RangeResult {
  items: WireItem[];
  more: boolean;
  /** The revision the page was read at (absent from servers before revisions had history). */
  revision?: number;
}
/** One member of the cluster, as seen by the answering node. */
export interface MemberStatus {
  id: string;
  /** Client address, `host:port`. */
  address: string;
  /** Failure-domain label, if configured. */
  zone?: string;
  /** 'voter' or 'learner'. */
  kind: 'voter' | 'learner';
}
/** Answer to `status`: the cluster as the answering node sees it. */
export interface ClusterStatus {
  nodeId: string;
  role: 'follower' | 'preCandidate' | 'candidate' | 'leader';
  term: number;
  leader: LeaderHint | null;
  commitIndex: number;
  appliedIndex: number;
  members: MemberStatus[];
  /** Operator warnings, e.g. "zone a holds a quorum". */
  warnings: string[];
}

/** The result type of each operation. */
export interface ResultByOp {
  hello: HelloResult;
  get: GetResult;
  put: PutResult;
  delete: DeleteResult;
  cas: CasResult;
  range: RangeResult;
  status: ClusterStatus;
  compact: CompactResult;
  watch: WatchResult;
  txn: TxnResult;
  /** Never answered. */
  watchAck: never;
  /** Never answered. */
  watchCancel: never;
}

/**
 * One change of a watched key (etcd's mvccpb.Event). A delete carries no value, and
 * createRevision and version 0; `prevValue` is there when asked for and the key existed before.
 */
export interface WireWatchEvent {
  type: 'put' | 'delete';
  key: Uint8Array;
  value?: Uint8Array;
  modRevision: number;
  createRevision: number;
  version: number;
  prevValue?: Uint8Array;
}

/** Answer to `watch`: events in revision order, and how far they reach. */
export interface WatchResult {
  events: WireWatchEvent[];
  /**
   * Every change of the watched keys with a revision up to here is in `events` or was before
   * `afterRevision`: the next request asks after it. With no events, a progress notification.
   */
  revision: number;
  /** The node's compacted revision: a watch that falls below it ends with QKV_COMPACTED. */
  compactedRevision: number;
}

/** The compacted revision after a compact, and the current revision. */
export interface CompactResult {
  compactedRevision: number;
  revision: number;
}

/** An error as it travels: a stable code, a message, and code-specific details. */
export interface WireError {
  code: string;
  message: string;
  /** QKV_NOT_LEADER */
  leaderHint?: LeaderHint;
  /** QKV_BUSY */
  retryAfterMs?: number;
  /** QKV_CAS_FAILED */
  actualModRevision?: number;
  /** QKV_TOO_LARGE */
  limitBytes?: number;
  /** QKV_COMPACTED: the oldest revision that can still be read. */
  compactedRevision?: number;
}

/** A successful answer. */
export interface OkResponse<R = unknown> {
  id: number;
  ok: true;
  result: R;
}
/** A failed answer. */
export interface ErrorResponse {
  id: number;
  ok: false;
  error: WireError;
}
/** Any answer. */
export type ClientResponse<R = unknown> = OkResponse<R> | ErrorResponse;
