// Typed errors shared by server and client. The `code` strings are the contract: they travel on
// the wire, callers switch on them, and they never change meaning. Messages may change.
//
// Every operating condition a caller can meet has a class here. Programmer errors (broken
// invariants) are plain `Error`s thrown by `assert` and never cross the wire as themselves: the
// server reports them as `QKV_INTERNAL` without internal detail.
//
// For a write, every code also says whether the write may have been applied (see
// `writeOutcomeOf` and docs/protocol.md § "What an error says about a write"): errors raised
// before the write was proposed say "not applied"; an answer given after the proposal was
// accepted but before its outcome is known says `QKV_INDETERMINATE` and nothing else.

/** The stable error codes of quorumkv's client protocol. */
export const ErrorCode = {
  NotLeader: 'QKV_NOT_LEADER',
  NoLeader: 'QKV_NO_LEADER',
  Busy: 'QKV_BUSY',
  Timeout: 'QKV_TIMEOUT',
  Indeterminate: 'QKV_INDETERMINATE',
  Unavailable: 'QKV_UNAVAILABLE',
  CasFailed: 'QKV_CAS_FAILED',
  Closed: 'QKV_CLOSED',
  InvalidArgument: 'QKV_INVALID_ARGUMENT',
  TooLarge: 'QKV_TOO_LARGE',
  SessionExpired: 'QKV_SESSION_EXPIRED',
  Aborted: 'QKV_ABORTED',
  Protocol: 'QKV_PROTOCOL',
  Internal: 'QKV_INTERNAL',
  QuotaExceeded: 'QKV_QUOTA_EXCEEDED',
  Compacted: 'QKV_COMPACTED',
  LimitExceeded: 'QKV_LIMIT_EXCEEDED',
  DiskFull: 'QKV_DISK_FULL',
  StorageUnavailable: 'QKV_STORAGE_UNAVAILABLE',
} as const;
/** One of the stable error codes in {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Where the leader can be reached, as far as the answering node knows. */
export interface LeaderHint {
  /** The leader's node id ("n1"). */
  id: string;
  /** The leader's client address, `host:port` (what a client puts in `endpoints`). */
  address: string;
}

/** Options every error constructor accepts. */
export interface ErrorOptions {
  /** The underlying error, if any (a socket error, a wire error, an abort reason). */
  cause?: unknown;
}

/**
 * Base class of every error quorumkv raises on purpose. Switch on `code`, not on the message.
 *
 * @example
 * ```ts
 * try { await kv.put('k', 'v'); }
 * catch (e) { if (e instanceof QuorumKvError && e.code === 'QKV_TIMEOUT') { … } }
 * ```
 */
export class QuorumKvError extends Error {
  /** The stable code, e.g. `QKV_TIMEOUT`. Unknown codes from newer servers are kept as they are. */
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** The node is not the leader; `leaderHint` says where the leader is, when the node knows. */
export class NotLeaderError extends QuorumKvError {
  /** The leader as the answering node knows it; absent when it knows none. */
  readonly leaderHint: LeaderHint | undefined;
  constructor(leaderHint?: LeaderHint, options?: ErrorOptions) {
    super(
      ErrorCode.NotLeader,
      leaderHint ? `not the leader; the leader is ${leaderHint.id} at ${leaderHint.address}` : 'not the leader',
      options,
    );
    this.leaderHint = leaderHint;
  }
}

/** No leader is known right now (an election is under way, or no quorum is reachable). */
export class NoLeaderError extends QuorumKvError {
  constructor(message = 'no leader is known (election in progress or no quorum)', options?: ErrorOptions) {
    super(ErrorCode.NoLeader, message, options);
  }
}

/** The node shed load; try again after `retryAfterMs`. */
export class BusyError extends QuorumKvError {
  /** How long the node asks the caller to wait before retrying, in milliseconds. */
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number, message = `busy; retry after ${retryAfterMs} ms`, options?: ErrorOptions) {
    super(ErrorCode.Busy, message, options);
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The deadline passed before an answer came. For a read nothing changed. For a write it means
 * NOT applied: the node answers a write whose deadline passed after it was proposed with
 * {@link IndeterminateError} instead, and the client library does the same for a write any of
 * whose attempts may have reached a node.
 */
export class TimeoutError extends QuorumKvError {
  constructor(message = 'deadline exceeded', options?: ErrorOptions) {
    super(ErrorCode.Timeout, message, options);
  }
}

/**
 * The write MAY HAVE BEEN APPLIED, or may be applied later, or never: it was proposed (or sent
 * to a node that may have proposed it), and then its answer was cut off — the deadline passed,
 * the node shut down or failed, the connection was lost, the caller aborted. Nobody can say
 * "failed" truthfully here. To learn the outcome, read the key; the client library's retries
 * of the same write (same session seq) are exactly-once, a write issued again by the caller is a
 * new write. Raised only for writes (put, delete, cas, membership changes).
 */
export class IndeterminateError extends QuorumKvError {
  constructor(message = 'the outcome of the write is unknown: it may have been applied', options?: ErrorOptions) {
    super(ErrorCode.Indeterminate, message, options);
  }
}

/**
 * A node could not be reached, is shutting down, or (for a write) lost the write's log slot to
 * another leader's entry. For a write it means NOT applied: a write cut off after it may have
 * reached a node is reported as {@link IndeterminateError} instead.
 */
export class UnavailableError extends QuorumKvError {
  constructor(message = 'node unavailable', options?: ErrorOptions) {
    super(ErrorCode.Unavailable, message, options);
  }
}

/**
 * The node cannot persist: its disk is full (`ENOSPC`). It takes no writes and no part in
 * elections until a write to its data directory succeeds again (it probes on its own). For a
 * write it means NOT applied: the node refused it without proposing it; ask another node.
 */
export class DiskFullError extends QuorumKvError {
  constructor(message = 'the node\'s disk is full: it takes no writes until space returns', options?: ErrorOptions) {
    super(ErrorCode.DiskFull, message, options);
  }
}

/**
 * The node cannot persist: a write to its data directory failed (`EIO` or another I/O error).
 * As {@link DiskFullError}: NOT applied, no elections, the node probes and recovers on its own.
 */
export class StorageUnavailableError extends QuorumKvError {
  constructor(message = 'the node\'s storage failed a write: it takes no writes until a probe write succeeds', options?: ErrorOptions) {
    super(ErrorCode.StorageUnavailable, message, options);
  }
}

/**
 * A read asked for a revision whose history was compacted away. `compactedRevision` is the oldest
 * revision that can still be read (ask again at it or later, or without a revision).
 */
export class CompactedError extends QuorumKvError {
  readonly compactedRevision: number | undefined;
  constructor(compactedRevision?: number, message = `revision compacted (oldest readable: ${String(compactedRevision ?? '?')})`, options?: ErrorOptions) {
    super(ErrorCode.Compacted, message, options);
    this.compactedRevision = compactedRevision;
  }
}

/** A compare-and-swap's condition did not hold; nothing was written. */
export class CasFailedError extends QuorumKvError {
  /** The key's `modRevision` when the condition was checked; 0 when the key was absent. */
  readonly actualModRevision: number | undefined;
  constructor(actualModRevision?: number, message = 'compare-and-swap condition failed', options?: ErrorOptions) {
    super(ErrorCode.CasFailed, message, options);
    this.actualModRevision = actualModRevision;
  }
}

/**
 * The client (or the node's endpoint) was closed; the request was not completed. For a write:
 * not applied (as for {@link AbortedError}, a write that may have reached a node rejects with
 * {@link IndeterminateError} instead).
 */
export class ClosedError extends QuorumKvError {
  constructor(message = 'closed', options?: ErrorOptions) {
    super(ErrorCode.Closed, message, options);
  }
}

/** An argument broke a rule (empty key, bad option, limit out of range…); the message says which. */
export class InvalidArgumentError extends QuorumKvError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.InvalidArgument, message, options);
  }
}

/** A key, value or frame is larger than the limit. */
export class TooLargeError extends QuorumKvError {
  /** The limit that was exceeded, in bytes (when known). */
  readonly limitBytes: number | undefined;
  constructor(message: string, limitBytes?: number, options?: ErrorOptions) {
    super(ErrorCode.TooLarge, message, options);
    this.limitBytes = limitBytes;
  }
}

/**
 * The server no longer knows this client session (it expired after being idle), or no longer
 * keeps the result of this write's seq. This attempt did not apply the write; an EARLIER attempt
 * of the same write may have (the client library then reports {@link IndeterminateError} with
 * this as its `cause`). The client starts a new session for later writes.
 */
export class SessionExpiredError extends QuorumKvError {
  constructor(message = 'client session expired', options?: ErrorOptions) {
    super(ErrorCode.SessionExpired, message, options);
  }
}

/**
 * The caller's `AbortSignal` fired; `cause` is the signal's reason. For a write: not applied (a
 * write aborted after it may have reached a node rejects with {@link IndeterminateError}, whose
 * `cause` is this error).
 */
export class AbortedError extends QuorumKvError {
  constructor(message = 'aborted', options?: ErrorOptions) {
    super(ErrorCode.Aborted, message, options);
  }
}

/** A peer broke the wire protocol (undecodable or malformed frame, wrong version, hello missing). */
export class ProtocolError extends QuorumKvError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Protocol, message, options);
  }
}

/** Something went wrong inside the node; details are in the node's log, not on the wire. */
export class InternalError extends QuorumKvError {
  constructor(message = 'internal error', options?: ErrorOptions) {
    super(ErrorCode.Internal, message, options);
  }
}

/**
 * The caller used up a per-client quota (sessions created per connection or per address). Nothing
 * was done; retrying at once will not help — reuse a session, or wait for old ones to expire.
 */
export class QuotaExceededError extends QuorumKvError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.QuotaExceeded, message, options);
  }
}

/**
 * A transaction or range delete went past a limit the state machine applies to every command
 * alike (more than TXN_DELETED_KEYS_MAX keys to delete, reads beyond TXN_READ_BYTES_MAX). It was
 * decided in the log and wrote nothing; narrow the range or split the work.
 */
export class LimitExceededError extends QuorumKvError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.LimitExceeded, message, options);
  }
}

/**
 * What an error answer says about a write: `not-applied` (it certainly did not take effect and
 * never will: safe to retry as a new write), `applied` (it took effect as an outcome: a failed
 * compare-and-swap is evaluated in the log and writes nothing) or `unknown` (it may have been
 * applied; read to find out). Unknown codes (a newer server) and untyped errors are `unknown`.
 */
export type WriteOutcome = 'not-applied' | 'applied' | 'unknown';

/** Codes that prove a write did not take effect (the errors raised before proposing). */
export const WRITE_NOT_APPLIED_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.NotLeader,
  ErrorCode.NoLeader,
  ErrorCode.Busy,
  ErrorCode.Timeout,
  ErrorCode.Unavailable,
  ErrorCode.Closed,
  ErrorCode.InvalidArgument,
  ErrorCode.TooLarge,
  ErrorCode.SessionExpired,
  ErrorCode.Aborted,
  ErrorCode.Protocol,
  ErrorCode.QuotaExceeded,
  // A read's error (history below the compacted revision); a write never changes anything with it.
  ErrorCode.Compacted,
  // Decided in the log like a failed compare, but the command wrote nothing.
  ErrorCode.LimitExceeded,
  // Answered by a node that stopped on a failed disk write, before any proposal.
  ErrorCode.DiskFull,
  ErrorCode.StorageUnavailable,
]);

/** Codes that are a write's final outcome, decided by the state machine. */
export const WRITE_APPLIED_CODES: ReadonlySet<string> = new Set<string>([ErrorCode.CasFailed]);

/**
 * What the error `err` (or a bare code) says about the write it answered. `QKV_INDETERMINATE`,
 * `QKV_INTERNAL`, unknown codes and anything that is not a {@link QuorumKvError} are `unknown`.
 *
 * @example
 * ```ts
 * try { await kv.put('k', 'v'); }
 * catch (e) { if (writeOutcomeOf(e) === 'unknown') await kv.get('k'); }
 * ```
 */
export function writeOutcomeOf(err: unknown): WriteOutcome {
  const code = typeof err === 'string' ? err : err instanceof QuorumKvError ? err.code : undefined;
  if (code === undefined) return 'unknown';
  if (WRITE_NOT_APPLIED_CODES.has(code)) return 'not-applied';
  if (WRITE_APPLIED_CODES.has(code)) return 'applied';
  return 'unknown';
}
