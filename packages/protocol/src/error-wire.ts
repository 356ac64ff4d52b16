// Mapping between error classes and their wire form. Pure functions, no I/O.

import {
  AbortedError,
  BusyError,
  CasFailedError,
  ClosedError,
  CompactedError,
  ErrorCode,
  IndeterminateError,
  InternalError,
  InvalidArgumentError,
  LimitExceededError,
  NoLeaderError,
  NotLeaderError,
  ProtocolError,
  QuorumKvError,
  QuotaExceededError,
  SessionExpiredError,
  TimeoutError,
  TooLargeError,
  UnavailableError,
  DiskFullError,
  StorageUnavailableError,
} from './errors.js';
import type { WireError } from './wire.js';

/**
 * The wire form of an error. A {@link QuorumKvError} keeps its code, message and details; anything
 * else is a bug on the sending side and becomes `QKV_INTERNAL` with a generic message, so internal
 * details (stack traces, paths) never reach clients.
 */
export function errorToWire(err: unknown): WireError {
  if (!(err instanceof QuorumKvError)) return { code: ErrorCode.Internal, message: 'internal error' };
  const wire: WireError = { code: err.code, message: err.message };
  if (err instanceof NotLeaderError && err.leaderHint) {
    wire.leaderHint = { id: err.leaderHint.id, address: err.leaderHint.address };
  }
  if (err instanceof BusyError) wire.retryAfterMs = err.retryAfterMs;
  if (err instanceof CasFailedError && err.actualModRevision !== undefined) {
    wire.actualModRevision = err.actualModRevision;
  }
  if (err instanceof TooLargeError && err.limitBytes !== undefined) wire.limitBytes = err.limitBytes;
  if (err instanceof CompactedError && err.compactedRevision !== undefined) wire.compactedRevision = err.compactedRevision;
  return wire;
}

/**
 * The error class for a wire error. Unknown codes (from a newer server) become a plain
 * {@link QuorumKvError} that keeps the code. `cause` is attached to the result when given.
 */
export function errorFromWire(wire: WireError, cause?: unknown): QuorumKvError {
  const o = cause === undefined ? undefined : { cause };
  switch (wire.code) {
    case ErrorCode.NotLeader:
      return new NotLeaderError(wire.leaderHint, o);
    case ErrorCode.NoLeader:
      return new NoLeaderError(wire.message, o);
    case ErrorCode.Busy:
      return new BusyError(wire.retryAfterMs ?? 0, wire.message, o);
    case ErrorCode.Timeout:
      return new TimeoutError(wire.message, o);
    case ErrorCode.Indeterminate:
      return new IndeterminateError(wire.message, o);
    case ErrorCode.Unavailable:
      return new UnavailableError(wire.message, o);
    case ErrorCode.DiskFull:
      return new DiskFullError(wire.message, o);
    case ErrorCode.StorageUnavailable:
      return new StorageUnavailableError(wire.message, o);
    case ErrorCode.CasFailed:
      return new CasFailedError(wire.actualModRevision, wire.message, o);
    case ErrorCode.Closed:
      return new ClosedError(wire.message, o);
    case ErrorCode.InvalidArgument:
      return new InvalidArgumentError(wire.message, o);
    case ErrorCode.TooLarge:
      return new TooLargeError(wire.message, wire.limitBytes, o);
    case ErrorCode.SessionExpired:
      return new SessionExpiredError(wire.message, o);
    case ErrorCode.Aborted:
      return new AbortedError(wire.message, o);
    case ErrorCode.Protocol:
      return new ProtocolError(wire.message, o);
    case ErrorCode.Internal:
      return new InternalError(wire.message, o);
    case ErrorCode.QuotaExceeded:
      return new QuotaExceededError(wire.message, o);
    case ErrorCode.Compacted:
      return new CompactedError(wire.compactedRevision, wire.message, o);
    case ErrorCode.LimitExceeded:
      return new LimitExceededError(wire.message, o);
    default:
      return new QuorumKvError(wire.code, wire.message, o);
  }
}
