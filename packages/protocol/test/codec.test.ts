// The codec round-trips every frame type and refuses every malformed frame with a typed error.

import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_LIMITS,
  ProtocolError,
  QuorumKvError,
  TooLargeError,
  decodeRequestFrame,
  decodeResponseFrame,
  encodeFrame,
  validateResult,
  type ClientRequest,
  type ClientResponse,
  type Limits,
} from '@quorumkv/protocol';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const session = { id: 'sess-1', seq: 7, ackedBelow: 5 };
const limits: Limits = DEFAULT_LIMITS;
const raw = new Packr({ useRecords: false });
const rawFrame = (x: unknown): Uint8Array => raw.pack(x);

/** Compares after turning Buffers into plain Uint8Arrays (decode yields Buffers in Node). */
const plain = (x: unknown): unknown =>
  JSON.parse(JSON.stringify(x, (_k, v: unknown) => (v instanceof Uint8Array || (v as { type?: string })?.type === 'Buffer' ? Array.from(v instanceof Uint8Array ? v : ((v as { data: number[] }).data)) : v)));

const requests: ClientRequest[] = [
  { id: 0, op: 'hello', version: 1 },
  { id: 1, op: 'get', key: b('k'), consistency: 'stale', timeoutMs: 500 },
  { id: 2, op: 'put', key: b('k'), value: b('v'), session },
  { id: 3, op: 'delete', key: b('k'), session },
  { id: 4, op: 'cas', key: b('k'), condition: { kind: 'modRevision', modRevision: 9 }, action: { kind: 'put', value: b('x') }, session },
  { id: 5, op: 'cas', key: b('k'), condition: { kind: 'value', value: b('old') }, action: { kind: 'delete' }, session },
  { id: 6, op: 'cas', key: b('k'), condition: { kind: 'absent' }, action: { kind: 'put', value: new Uint8Array() }, session },
  { id: 7, op: 'range', prefix: b('user/'), after: b('user/5'), limit: 100, consistency: 'linearizable' },
  { id: 8, op: 'range', start: b('a'), end: b('b'), limit: 1, consistency: 'stale' },
  { id: 9, op: 'status' },
  { id: 10, op: 'get', key: b('k'), consistency: 'linearizable', revision: 7 },
  { id: 11, op: 'range', prefix: b('a'), limit: 10, consistency: 'stale', revision: 0 },
  { id: 12, op: 'compact', revision: 41 },
];

describe('requests', () => {
  it.each(requests.map((r) => [r.op, r] as const))('round-trips %s', (_op, req) => {
    const out = decodeRequestFrame(encodeFrame(req, limits.maxFrameBytes), limits);
    expect(out.ok).toBe(true);
    expect(plain(out.ok && out.request)).toEqual(plain(req));
  });

  it('defaults a missing consistency to linearizable', () => {
    const out = decodeRequestFrame(rawFrame({ id: 1, op: 'get', key: b('k') }), limits);
    expect(out).toMatchObject({ ok: true, request: { consistency: 'linearizable' } });
  });

  const answerable: [string, unknown, string][] = [
    ['unknown op', { id: 1, op: 'explode' }, 'QKV_PROTOCOL'],
    ['unknown field', { id: 1, op: 'get', key: b('k'), sneaky: 1 }, 'QKV_PROTOCOL'],
    ['string key', { id: 1, op: 'get', key: 'k' }, 'QKV_PROTOCOL'],
    ['empty key', { id: 1, op: 'get', key: new Uint8Array() }, 'QKV_INVALID_ARGUMENT'],
    ['negative revision', { id: 1, op: 'get', key: b('k'), revision: -1 }, 'QKV_INVALID_ARGUMENT'],
    ['fractional revision (not an integer: a malformed frame)', { id: 1, op: 'range', prefix: b(''), limit: 1, revision: 1.5 }, 'QKV_PROTOCOL'],
    ['compact without a revision', { id: 1, op: 'compact' }, 'QKV_PROTOCOL'],
    ['key too large', { id: 1, op: 'get', key: new Uint8Array(4097) }, 'QKV_TOO_LARGE'],
    ['value too large', { id: 1, op: 'put', key: b('k'), value: new Uint8Array(limits.maxValueBytes + 1), session }, 'QKV_TOO_LARGE'],
    ['missing session', { id: 1, op: 'put', key: b('k'), value: b('v') }, 'QKV_PROTOCOL'],
    ['ackedBelow above seq', { id: 1, op: 'delete', key: b('k'), session: { id: 's', seq: 2, ackedBelow: 3 } }, 'QKV_INVALID_ARGUMENT'],
    ['seq zero', { id: 1, op: 'delete', key: b('k'), session: { id: 's', seq: 0, ackedBelow: 0 } }, 'QKV_INVALID_ARGUMENT'],
    ['long session id', { id: 1, op: 'delete', key: b('k'), session: { id: 'x'.repeat(65), seq: 1, ackedBelow: 1 } }, 'QKV_INVALID_ARGUMENT'],
    ['float seq', { id: 1, op: 'delete', key: b('k'), session: { id: 's', seq: 1.5, ackedBelow: 1 } }, 'QKV_PROTOCOL'],
    ['bad consistency', { id: 1, op: 'get', key: b('k'), consistency: 'eventual' }, 'QKV_PROTOCOL'],
    ['range with prefix and start', { id: 1, op: 'range', prefix: b('a'), start: b('a'), limit: 1 }, 'QKV_INVALID_ARGUMENT'],
    ['range with neither', { id: 1, op: 'range', limit: 1 }, 'QKV_INVALID_ARGUMENT'],
    ['range with prefix and end', { id: 1, op: 'range', prefix: b('a'), end: b('b'), limit: 1 }, 'QKV_INVALID_ARGUMENT'],
    ['range limit zero', { id: 1, op: 'range', prefix: b('a'), limit: 0 }, 'QKV_INVALID_ARGUMENT'],
    ['range limit too big', { id: 1, op: 'range', prefix: b('a'), limit: 10_001 }, 'QKV_INVALID_ARGUMENT'],
    ['bad cas condition', { id: 1, op: 'cas', key: b('k'), condition: { kind: 'maybe' }, action: { kind: 'delete' }, session }, 'QKV_PROTOCOL'],
    ['cas condition extra field', { id: 1, op: 'cas', key: b('k'), condition: { kind: 'absent', value: b('x') }, action: { kind: 'delete' }, session }, 'QKV_PROTOCOL'],
    ['timeout zero', { id: 1, op: 'status', timeoutMs: 0 }, 'QKV_INVALID_ARGUMENT'],
    ['timeout huge', { id: 1, op: 'status', timeoutMs: 1e12 }, 'QKV_INVALID_ARGUMENT'],
    ['date as key', { id: 1, op: 'get', key: new Date(0) }, 'QKV_PROTOCOL'],
    ['map as key', { id: 1, op: 'get', key: new Map([[1, 2]]) }, 'QKV_PROTOCOL'],
  ];
  it.each(answerable)('answers a request with %s with an error for its id', (_name, frame, code) => {
    const out = decodeRequestFrame(rawFrame(frame), limits);
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expect(out.id).toBe(1);
      expect(out.error).toBeInstanceOf(QuorumKvError);
      expect(out.error.code).toBe(code);
    }
  });

  const fatal: [string, Uint8Array][] = [
    ['empty frame', new Uint8Array()],
    ['truncated msgpack', new Uint8Array([0x92, 0x01])],
    ['reserved byte 0xc1', new Uint8Array([0xc1])],
    ['trailing bytes', new Uint8Array([0x01, 0x02])],
    ['an array', rawFrame([1, 2, 3])],
    ['a number', rawFrame(42)],
    ['no id', rawFrame({ op: 'status' })],
    ['negative id', rawFrame({ id: -1, op: 'status' })],
    ['string id', rawFrame({ id: '1', op: 'status' })],
    ['fractional id', rawFrame({ id: 1.5, op: 'status' })],
  ];
  it.each(fatal)('refuses %s with a ProtocolError (the connection closes)', (_name, frame) => {
    expect(() => decodeRequestFrame(frame, limits)).toThrow(ProtocolError);
  });

  it('refuses frames over the size limit, both ways', () => {
    const small: Limits = { maxKeyBytes: 16, maxValueBytes: 16, maxFrameBytes: 1100 };
    const big: ClientRequest = { id: 1, op: 'put', key: b('k'), value: new Uint8Array(2000), session };
    expect(() => encodeFrame(big, small.maxFrameBytes)).toThrow(TooLargeError);
    expect(() => decodeRequestFrame(encodeFrame(big, 1e6), small)).toThrow(TooLargeError);
  });

  it('never throws anything but a QuorumKvError on random bytes (seeded fuzz)', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const valid = requests.map((r) => encodeFrame(r, limits.maxFrameBytes));
    for (let i = 0; i < 3000; i++) {
      // Half pure noise, half valid frames with a few bytes flipped.
      const base = valid[rnd(valid.length)] as Uint8Array;
      const frame = i % 2 === 0 ? Uint8Array.from({ length: 1 + rnd(64) }, () => rnd(256)) : Uint8Array.from(base);
      if (i % 2 === 1) for (let j = 0; j < 3; j++) frame[rnd(frame.length)] = rnd(256);
      try {
        decodeRequestFrame(frame, limits);
        decodeResponseFrame(frame, limits.maxFrameBytes);
      } catch (e) {
        if (!(e instanceof QuorumKvError)) throw new Error(`seed 12345 iteration ${i}: ${String(e)}`, { cause: e });
      }
    }
  });
});

describe('responses', () => {
  const cases: [string, ClientResponse, unknown][] = [
    ['hello', { id: 1, ok: true, result: { version: 1, serverId: 'n1', leader: { id: 'n2', address: 'h:2' }, limits } }, 'hello'],
    ['get hit', { id: 1, ok: true, result: { item: { key: b('k'), value: b('v'), createRevision: 1, modRevision: 2, version: 2 } } }, 'get'],
    ['get miss', { id: 1, ok: true, result: { item: null } }, 'get'],
    ['put', { id: 1, ok: true, result: { revision: 5 } }, 'put'],
    ['delete', { id: 1, ok: true, result: { revision: 6, deleted: true } }, 'delete'],
    ['range', { id: 1, ok: true, result: { items: [], more: false } }, 'range'],
    ['range at a revision', { id: 1, ok: true, result: { items: [], more: false, revision: 12 } }, 'range'],
    ['compact', { id: 1, ok: true, result: { compactedRevision: 10, revision: 12 } }, 'compact'],
    [
      'status',
      {
        id: 1,
        ok: true,
        result: { nodeId: 'n1', role: 'leader', term: 3, leader: null, commitIndex: 9, appliedIndex: 9, members: [{ id: 'n1', address: 'h:1', kind: 'voter', zone: 'a' }], warnings: ['w'] },
      },
      'status',
    ],
  ];
  it.each(cases)('round-trips %s', (_n, res, op) => {
    const env = decodeResponseFrame(encodeFrame(res, limits.maxFrameBytes), limits.maxFrameBytes);
    expect(env.ok).toBe(true);
    if (env.ok) expect(plain(validateResult(op as 'get', env.result, limits))).toEqual(plain((res as { result: unknown }).result));
  });

  it('round-trips an error with its details', () => {
    const res: ClientResponse = { id: 3, ok: false, error: { code: 'QKV_NOT_LEADER', message: 'm', leaderHint: { id: 'n2', address: 'h:2' } } };
    expect(decodeResponseFrame(encodeFrame(res, 1e6), 1e6)).toEqual(res);
  });

  it('refuses results that do not match their operation', () => {
    expect(() => validateResult('put', { revision: 'five' }, limits)).toThrow(ProtocolError);
    expect(() => validateResult('put', { revision: 5, extra: 1 }, limits)).toThrow(ProtocolError);
    expect(() => validateResult('get', { item: { key: b('k') } }, limits)).toThrow(ProtocolError);
    expect(() => validateResult('delete', { revision: -1, deleted: true }, limits)).toThrow(ProtocolError);
    expect(() => validateResult('hello', { version: 1, serverId: 'n1', leader: null, limits: { ...limits, maxFrameBytes: 10 } }, limits)).toThrow(
      ProtocolError,
    );
    expect(() => decodeResponseFrame(rawFrame({ id: 1, ok: 'yes' }), 1e6)).toThrow(ProtocolError);
    expect(() => decodeResponseFrame(rawFrame({ id: 1, ok: false, error: { code: 1 } }), 1e6)).toThrow(ProtocolError);
    expect(() => decodeResponseFrame(rawFrame({ id: 1, ok: false, error: { code: 'X', message: 'm', retryAfterMs: -5 } }), 1e6)).toThrow(ProtocolError);
  });
});
