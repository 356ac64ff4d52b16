// Every error class survives the wire with its code, class and details; untyped errors do not leak.

import { describe, expect, it } from 'vitest';
import {
  AbortedError,
  BusyError,
  CasFailedError,
  ClosedError,
  ErrorCode,
  IndeterminateError,
  InternalError,
  LimitExceededError,
  InvalidArgumentError,
  NoLeaderError,
  NotLeaderError,
  ProtocolError,
  QuorumKvError,
  QuotaExceededError,
  CompactedError,
  DiskFullError,
  StorageUnavailableError,
  SessionExpiredError,
  TimeoutError,
  TooLargeError,
  UnavailableError,
  errorFromWire,
  errorToWire,
  writeOutcomeOf,
  WRITE_APPLIED_CODES,
  WRITE_NOT_APPLIED_CODES,
} from '@quorumkv/protocol';

const samples: QuorumKvError[] = [
  new NotLeaderError({ id: 'n2', address: '127.0.0.1:7002' }),
  new NotLeaderError(),
  new NoLeaderError(),
  new BusyError(25),
  new TimeoutError(),
  new IndeterminateError(),
  new UnavailableError(),
  new CasFailedError(7),
  new ClosedError(),
  new InvalidArgumentError('key must not be empty'),
  new TooLargeError('too big', 4096),
  new SessionExpiredError(),
  new AbortedError(),
  new ProtocolError('bad frame'),
  new InternalError(),
  new QuotaExceededError('too many sessions from this address'),
  new CompactedError(12),
  new LimitExceededError("more than 10000 keys"),
  new DiskFullError(),
  new StorageUnavailableError(),
];

describe('error mapping', () => {
  it.each(samples.map((e) => [e.code, e] as const))('%s round-trips with its class and details', (_code, err) => {
    const back = errorFromWire(errorToWire(err));
    expect(back).toBeInstanceOf(err.constructor);
    expect(back).toMatchObject({ ...err, name: err.name, code: err.code, message: err.message });
  });

  it('covers every code in ErrorCode', () => {
    expect(new Set(samples.map((e) => e.code))).toEqual(new Set(Object.values(ErrorCode)));
  });

  it('keeps details a caller needs', () => {
    expect(errorFromWire(errorToWire(new BusyError(40)))).toMatchObject({ retryAfterMs: 40 });
    expect(errorFromWire(errorToWire(new NotLeaderError({ id: 'n3', address: 'h:3' })))).toMatchObject({ leaderHint: { id: 'n3', address: 'h:3' } });
    expect(errorFromWire(errorToWire(new CasFailedError(0)))).toMatchObject({ actualModRevision: 0 });
  });

  it('reports untyped errors as QKV_INTERNAL without their message', () => {
    expect(errorToWire(new Error('/secret/path failed'))).toEqual({ code: 'QKV_INTERNAL', message: 'internal error' });
    expect(errorToWire('a string')).toEqual({ code: 'QKV_INTERNAL', message: 'internal error' });
  });

  it('keeps unknown codes from newer servers', () => {
    const e = errorFromWire({ code: 'QKV_FUTURE', message: 'new' }, 'why');
    expect(e).toBeInstanceOf(QuorumKvError);
    expect(e).toMatchObject({ code: 'QKV_FUTURE', cause: 'why' });
  });

  it('gives each class its own name and Error ancestry', () => {
    const e = new TimeoutError('t', { cause: 'c' });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('TimeoutError');
    expect(e.cause).toBe('c');
  });
});

describe('what an error says about a write', () => {
  it('puts every code in exactly one class, and only INDETERMINATE and INTERNAL in "unknown"', () => {
    const unknown = Object.values(ErrorCode).filter((c) => writeOutcomeOf(c) === 'unknown');
    expect(unknown.sort()).toEqual(['QKV_INDETERMINATE', 'QKV_INTERNAL']);
    for (const c of WRITE_NOT_APPLIED_CODES) expect(WRITE_APPLIED_CODES.has(c)).toBe(false);
  });

  it('classifies errors, bare codes, unknown codes and untyped errors', () => {
    expect(writeOutcomeOf(new IndeterminateError())).toBe('unknown');
    expect(writeOutcomeOf(new NotLeaderError())).toBe('not-applied');
    expect(writeOutcomeOf(new CasFailedError(3))).toBe('applied');
    expect(writeOutcomeOf('QKV_BUSY')).toBe('not-applied');
    expect(writeOutcomeOf(new QuorumKvError('QKV_FUTURE', 'new'))).toBe('unknown');
    expect(writeOutcomeOf(new Error('boom'))).toBe('unknown');
  });
});
