// Typed errors shared by server and client. The `code` strings are the contract: they travel on
// the wire, callers switch on them, and they never change meaning. Messages may change.
//
// Every operating condition a caller can meet has a class here. Programmer errors (broken
// invariants) are plain `Error`s thrown by `assert` and never cross the wire as themselves: the
// server reports them as `QKV_INTERNAL` without internal detail.

/** The stable error codes of quorumkv's client protocol. */
export const ErrorCode = {
  NotLeader: 'QKV_NOT_LEADER',
  NoLeader: 'QKV_NO_LEADER',
  Busy: 'QKV_BUSY',
  Timeout: 'QKV_TIMEOUT',
  Unavailable: 'QKV_UNAVAILABLE',
  CasFailed: 'QKV_CAS_FAILED',
  Closed: 'QKV_CLOSED',
  InvalidArgument: 'QKV_INVALID_ARGUMENT',
  TooLarge: 'QKV_TOO_LARGE',
  SessionExpired: 'QKV_SESSION_EXPIRED',
  Aborted: 'QKV_ABORTED',
  Protocol: 'QKV_PROTOCOL',
  Internal: 'QKV_INTERNAL',
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
 * The deadline passed before an answer came. For a write the outcome is UNKNOWN: it may have been
 * applied. (Retrying it in the same client is safe: the session makes it apply at most once.)
 */
export class TimeoutError extends QuorumKvError {
  constructor(message = 'deadline exceeded', options?: ErrorOptions) {
    super(ErrorCode.Timeout, message, options);
  }
}

/** A node could not be reached or the connection was lost. */
export class UnavailableError extends QuorumKvError {
  constructor(message = 'node unavailable', options?: ErrorOptions) {
    super(ErrorCode.Unavailable, message, options);
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

/** The client (or the node's endpoint) was closed; the request was not completed. */
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
 * The server no longer knows this client session (it expired after being idle). The write that
 * got this answer may or may not have been applied; the client starts a new session for later writes.
 */
export class SessionExpiredError extends QuorumKvError {
  constructor(message = 'client session expired', options?: ErrorOptions) {
    super(ErrorCode.SessionExpired, message, options);
  }
}

/** The caller's `AbortSignal` fired; `cause` is the signal's reason. A write's outcome is unknown. */
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
