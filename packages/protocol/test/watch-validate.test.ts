// Validation of the watch stream frames (watch, watchAck, watchCancel) and the answer: bad input is a typed error with the request's
// id (the connection stays), never a partly trusted request.
import { describe, expect, test } from 'vitest';
import { DEFAULT_LIMITS, WATCH_ACKS_MAX, WATCH_EVENTS_MAX, WATCH_WAIT_MS_MAX, WATCH_WINDOW_MAX } from '../src/wire.js';
import { validateRequest, validateResult } from '../src/validate.js';
import { encodeFrame, encodeWatchFrame } from '../src/codec.js';
import { TooLargeError } from '../src/errors.js';

const key = new Uint8Array([107]);
const base = { id: 7, op: 'watch', limit: 10, progressMs: 100, window: 4 };

describe('watch validation', () => {
  test('a watch of a key or a prefix, with or without a revision, is accepted as sent', () => {
    expect(validateRequest({ ...base, key, afterRevision: 3, prevValue: true }, DEFAULT_LIMITS)).toEqual({ ok: true, request: { ...base, key, afterRevision: 3, prevValue: true } });
    expect(validateRequest({ ...base, prefix: new Uint8Array(0) }, DEFAULT_LIMITS)).toEqual({ ok: true, request: { ...base, prefix: new Uint8Array(0) } });
  });

  test.each([
    ['neither key nor prefix', { ...base }, 'QKV_INVALID_ARGUMENT'],
    ['both key and prefix', { ...base, key, prefix: key }, 'QKV_INVALID_ARGUMENT'],
    ['an empty key', { ...base, key: new Uint8Array(0) }, 'QKV_INVALID_ARGUMENT'],
    ['a limit of 0', { ...base, key, limit: 0 }, 'QKV_INVALID_ARGUMENT'],
    ['a limit over the maximum', { ...base, key, limit: WATCH_EVENTS_MAX + 1 }, 'QKV_INVALID_ARGUMENT'],
    ['a progress interval over the maximum', { ...base, key, progressMs: WATCH_WAIT_MS_MAX + 1 }, 'QKV_INVALID_ARGUMENT'],
    ['a progress interval of 0', { ...base, key, progressMs: 0 }, 'QKV_INVALID_ARGUMENT'],
    ['no window', { ...base, key, window: undefined }, 'QKV_PROTOCOL'],
    ['a window of 0', { ...base, key, window: 0 }, 'QKV_INVALID_ARGUMENT'],
    ['a window over the maximum', { ...base, key, window: WATCH_WINDOW_MAX + 1 }, 'QKV_INVALID_ARGUMENT'],
    ['the long poll\'s waitMs (gone)', { ...base, key, waitMs: 100 }, 'QKV_PROTOCOL'],
    ['an ack of no watch', { id: 7, op: 'watchAck', watches: [] }, 'QKV_INVALID_ARGUMENT'],
    ['an ack of more entries than a frame may hold', { id: 7, op: 'watchAck', watches: new Array(WATCH_ACKS_MAX + 1).fill(1) }, 'QKV_PROTOCOL'],
    ['an ack of a negative id', { id: 7, op: 'watchAck', watches: [-1] }, 'QKV_INVALID_ARGUMENT'],
    ['an ack of a fraction', { id: 7, op: 'watchAck', watches: [1.5] }, 'QKV_PROTOCOL'],
    ['an ack that is not a list', { id: 7, op: 'watchAck', watches: 3 }, 'QKV_PROTOCOL'],
    ['an ack with a key', { id: 7, op: 'watchAck', watches: [1], key }, 'QKV_PROTOCOL'],
    ['a cancel with a field', { id: 7, op: 'watchCancel', watches: [1] }, 'QKV_PROTOCOL'],
    ['a negative revision', { ...base, key, afterRevision: -1 }, 'QKV_INVALID_ARGUMENT'],
    ['an unknown field', { ...base, key, from: 1 }, 'QKV_PROTOCOL'],
    ['a prefix longer than a key', { ...base, prefix: new Uint8Array(DEFAULT_LIMITS.maxKeyBytes + 1) }, 'QKV_TOO_LARGE'],
  ])('refuses %s with the request id', (_name, req, code) => {
    const r = validateRequest(req, DEFAULT_LIMITS);
    expect(r.ok).toBe(false);
    expect(r.ok ? undefined : [r.id, r.error.code]).toEqual([7, code]);
  });

  test('an ack and a cancel are accepted as sent, and are never answers', () => {
    expect(validateRequest({ id: 7, op: 'watchAck', watches: [3, 3, 5] }, DEFAULT_LIMITS)).toEqual({ ok: true, request: { id: 7, op: 'watchAck', watches: [3, 3, 5] } });
    expect(validateRequest({ id: 7, op: 'watchCancel' }, DEFAULT_LIMITS)).toEqual({ ok: true, request: { id: 7, op: 'watchCancel' } });
    expect(() => validateResult('watchAck', {}, DEFAULT_LIMITS)).toThrow(/never answered/);
  });

  test('an answer with a malformed event is a protocol error', () => {
    const good = { events: [{ type: 'delete', key, modRevision: 4, createRevision: 0, version: 0 }], revision: 4, compactedRevision: 0 };
    expect(validateResult('watch', good, DEFAULT_LIMITS)).toEqual(good);
    expect(() => validateResult('watch', { ...good, events: [{ ...good.events[0], type: 'expire' }] }, DEFAULT_LIMITS)).toThrow(/type/);
    expect(() => validateResult('watch', { events: [], revision: 4 }, DEFAULT_LIMITS)).toThrow(/compactedRevision/);
  });
});

describe('watch frame encoding', () => {
  const ev = (rev: number, withPrev: boolean) => ({
    type: 'put' as const,
    key: new Uint8Array([1, 2, rev & 0xff]),
    value: new Uint8Array(rev % 300),
    modRevision: rev,
    createRevision: 1,
    version: rev,
    ...(withPrev ? { prevValue: new Uint8Array([9]) } : {}),
  });

  test.each([
    ['a progress frame', 1, { events: [], revision: 5, compactedRevision: 0 }],
    ['a batch', 300, { events: [ev(7, false), ev(8, true)], revision: 8, compactedRevision: 3 }],
    ['big numbers', 2 ** 32 - 1, { events: [ev(70_000, true)], revision: 2 ** 31, compactedRevision: 65_536 }],
    ['numbers past 32 bits (the generic encoder)', 2 ** 40, { events: [ev(1, false)], revision: 2 ** 40, compactedRevision: 0 }],
  ])('%s is byte for byte what encodeFrame writes, also when its events were encoded before', (_name, id, result) => {
    const generic = Buffer.from(encodeFrame({ id, ok: true, result }, DEFAULT_LIMITS.maxFrameBytes));
    expect(Buffer.from(encodeWatchFrame(id, result, DEFAULT_LIMITS.maxFrameBytes))).toEqual(generic);
    expect(Buffer.from(encodeWatchFrame(id, result, DEFAULT_LIMITS.maxFrameBytes))).toEqual(generic); // from the cache
    expect(() => encodeWatchFrame(id, result, generic.length - 1)).toThrow(TooLargeError);
  });
});
