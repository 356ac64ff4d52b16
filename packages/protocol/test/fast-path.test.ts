// The fast paths of the codec must be invisible: decodeRequestFrame (fast path first) gives the
// same outcome as the generic path (msgpackr + validateRequest) for every frame, valid or not, and
// encodeFrame writes the same bytes as msgpackr for every answer. Seeded random frames in many
// msgpack encodings (the client's own, msgpackr's, and odd but valid ones), mutated frames, and
// the edge values of each msgpack size class.
import { isDeepStrictEqual } from 'node:util';
import { Packr } from 'msgpackr';
import { describe, expect, test } from 'vitest';
import { xorshift32 } from '@quorumkv/testkit';
import { encodePutFrame } from '../../client/src/put-frame.js';
import { decodeMsgpack, decodeRequestFrame, encodeFrame } from '../src/codec.js';
import { fastDecodeRequest } from '../src/fast-request.js';
import { fastEncodeResponse } from '../src/fast-response.js';
import { validateRequest } from '../src/validate.js';
import { DEFAULT_LIMITS, type ClientResponse, type Limits } from '../src/wire.js';

const SEED = Number(process.env['QKV_SEED'] ?? 20261122);
const CASES = Number(process.env['QKV_CASES'] ?? 3000);
const REPLAY = `QKV_SEED=${SEED} pnpm vitest run packages/protocol/test/fast-path.test.ts`;

/** The encoder the codec uses (same options), to compare bytes with. */
const packr = new Packr({ useRecords: false, moreTypes: false, encodeUndefinedAsNil: true });

/** Small limits, so that keys and values over them are cheap to make. */
const SMALL_LIMITS: Limits = { maxKeyBytes: 40, maxValueBytes: 300, maxFrameBytes: 40 + 300 + 1024 };

const EDGE_UINTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
const OTHER_NUMBERS = [-1, -128, 0.5, 2 ** 53, Number.NaN, 600_000, 600_001];
const SESSION_IDS = ['s', 'client-7', 'x'.repeat(31), 'x'.repeat(32), 'y'.repeat(64), 'z'.repeat(65), 'é', 'sess-ü-1', '日本', '', '\u{1F600}'];

type Rand = ReturnType<typeof xorshift32>;

function pick<T>(r: Rand, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)] as T;
}

/** `n` pseudo-random bytes (one draw from `r` seeds a cheap generator: values may be a megabyte). */
function randBytes(r: Rand, n: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = Math.floor(r() * 0x1_0000_0000) | 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A length around `limit` or a msgpack size class boundary; small ones mostly (big frames are slow to check). */
function randLength(r: Rand, limit: number): number {
  const x = r();
  if (x < (limit > 4096 ? 0.01 : 0.1)) return pick(r, [limit - 1, limit, limit + 1]);
  if (x < 0.4) return pick(r, [0, 1, 31, 32, 255, 256, 65535, 65536].filter((n) => n <= limit + 1));
  return Math.floor(r() * Math.min(limit + 2, 400));
}

function randUint(r: Rand): number {
  const x = r();
  if (x < 0.5) return pick(r, EDGE_UINTS);
  if (x < 0.6) return pick(r, OTHER_NUMBERS);
  return Math.floor(r() * 2 ** (1 + Math.floor(r() * 33)));
}

/**
 * A random request object. Half are clean (valid put/get/delete in the client's field order, the
 * usual case), half chaotic: other ops, missing/extra/wrong fields, any field order.
 */
function randRequest(r: Rand, limits: Limits): Record<string, unknown> {
  const clean = r() < 0.5;
  const odds = (p: number) => (clean ? 0 : p);
  const op = r() < 1 - odds(0.15) ? pick(r, ['put', 'get', 'delete'] as const) : pick(r, ['hello', 'cas', 'range', 'status', 'nope', 7]);
  const o: Record<string, unknown> = { op };
  const fieldOrder: [string, () => unknown][] = [
    ['key', () => randBytes(r, clean ? 1 + Math.floor(r() * limits.maxKeyBytes) : randLength(r, limits.maxKeyBytes))],
    ['value', () => randBytes(r, clean ? Math.floor(r() * Math.min(limits.maxValueBytes, 400)) : randLength(r, limits.maxValueBytes))],
    ['session', () => randSession(r, clean)],
    ['consistency', () => (clean ? pick(r, ['linearizable', 'stale']) : pick(r, ['linearizable', 'stale', 'stale', 'fresh']))],
  ];
  const wants: Record<string, readonly string[]> = { put: ['key', 'value', 'session'], get: ['key', 'consistency'], delete: ['key', 'session'] };
  const want = wants[String(op)] ?? [];
  for (const [name, make] of fieldOrder) {
    const present = want.includes(name) ? r() < 1 - odds(0.03) : r() < odds(0.03);
    if (present) o[name] = make();
  }
  if (r() < odds(0.03)) o['key'] = pick(r, ['text key', 5, null]);
  o['id'] = clean ? (r() < 0.5 ? pick(r, EDGE_UINTS) : Math.floor(r() * 2 ** 32)) : r() < 0.97 ? randUint(r) : pick(r, [-1, 'id', null, 0.5]);
  if (clean) {
    if (r() < 0.9) o['timeoutMs'] = pick(r, [1, 127, 128, 255, 256, 65535, 65536, 600_000, 1 + Math.floor(r() * 600_000)]);
  } else if (r() < 0.8) o['timeoutMs'] = r() < 0.8 ? 1 + Math.floor(r() * 600_000) : randUint(r);
  else if (r() < 0.2) o['timeoutMs'] = null;
  if (r() < odds(0.03)) o[pick(r, ['extra', 'limit', 'version', 'ok'])] = 1;
  if (r() < odds(0.5)) shuffleKeysInPlace(r, o);
  return o;
}

function randSession(r: Rand, clean: boolean): unknown {
  if (clean) {
    const seq = r() < 0.5 ? Math.max(1, pick(r, EDGE_UINTS)) : 1 + Math.floor(r() * 2 ** 32);
    const ackedBelow = r() < 0.3 ? seq : Math.max(1, Math.floor(r() * seq));
    const id = r() < 0.7 ? `c${Math.floor(r() * 1e6)}` : pick(r, SESSION_IDS.filter((x) => x.length > 0 && x.length <= 64));
    return { id, seq, ackedBelow };
  }
  const seq = r() < 0.8 ? Math.floor(r() * 1000) : randUint(r);
  const s: Record<string, unknown> = {
    id: r() < 0.7 ? `c${Math.floor(r() * 1e6)}` : pick(r, SESSION_IDS),
    seq,
    // Around the rule 1 <= ackedBelow <= seq.
    ackedBelow: r() < 0.8 ? pick(r, [0, 1, Math.max(1, Math.floor(r() * seq)), seq, seq + 1]) : randUint(r),
  };
  if (r() < 0.03) delete s[pick(r, ['id', 'seq', 'ackedBelow'])];
  if (r() < 0.03) s['extra'] = 1;
  if (r() < 0.3) shuffleKeysInPlace(r, s);
  return r() < 0.02 ? 'not a map' : s;
}

function shuffleKeysInPlace(r: Rand, o: Record<string, unknown>): void {
  const entries = Object.entries(o);
  for (let i = entries.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }
  for (const [k] of entries) delete o[k];
  for (const [k, v] of entries) o[k] = v;
}

/**
 * A valid msgpack encoding of `v` with randomly chosen (not always smallest) forms: fixmap or
 * map16, wider ints or float64 for integers, str8/str16 for short strings, bin16/bin32 for short bytes.
 */
function oddEncode(r: Rand, v: unknown, out: Out): void {
  const u32 = (n: number) => out.push(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  if (v === null || v === undefined) return void out.push(0xc0);
  if (typeof v === 'boolean') return void out.push(v ? 0xc3 : 0xc2);
  if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) {
      const forms = [v < 0x80 ? 0 : -1, v < 0x100 ? 1 : -1, v < 0x10000 ? 2 : -1, 3, 4, 5].filter((f) => f >= 0);
      switch (pick(r, forms)) {
        case 0:
          return void out.push(v);
        case 1:
          return void out.push(0xcc, v);
        case 2:
          return void out.push(0xcd, v >>> 8, v & 0xff);
        case 3:
          return void (out.push(0xce), u32(v));
        case 4:
          return void (out.push(0xcf), u32(0), u32(v));
      }
    }
    const f = new DataView(new ArrayBuffer(8));
    f.setFloat64(0, v);
    return void out.push(0xcb, ...new Uint8Array(f.buffer));
  }
  if (typeof v === 'string') {
    const b = new TextEncoder().encode(v);
    const forms = [b.length < 32 ? 0 : -1, b.length < 256 ? 1 : -1, 2].filter((f) => f >= 0);
    const form = pick(r, forms);
    if (form === 0) out.push(0xa0 | b.length);
    else if (form === 1) out.push(0xd9, b.length);
    else out.push(0xda, b.length >>> 8, b.length & 0xff);
    return pushAll(out, b);
  }
  if (v instanceof Uint8Array) {
    const forms = [v.length < 256 ? 0 : -1, 1, 2].filter((f) => f >= 0);
    const form = pick(r, forms);
    if (form === 0) out.push(0xc4, v.length);
    else if (form === 1) out.push(0xc5, v.length >>> 8, v.length & 0xff);
    else out.push(0xc6), u32(v.length);
    return pushAll(out, v);
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length < 16 && r() < 0.5) out.push(0x80 | entries.length);
  else out.push(0xde, 0, entries.length);
  for (const [k, x] of entries) {
    oddEncode(r, k, out);
    oddEncode(r, x, out);
  }
}

/** Encoder output: header bytes, with big byte strings kept as parts. */
class Out {
  parts: Uint8Array[] = [];
  cur: number[] = [];
  push(...xs: number[]): void {
    for (const x of xs) this.cur.push(x);
  }
  bytes(): Uint8Array {
    this.flush();
    return Buffer.concat(this.parts);
  }
  flush(): void {
    this.parts.push(Uint8Array.from(this.cur));
    this.cur = [];
  }
}

function pushAll(out: Out, bytes: Uint8Array): void {
  out.flush();
  out.parts.push(bytes);
}

/** Several encodings of one request: msgpackr's, the client's put encoder's, odd valid ones. */
function encodings(r: Rand, req: Record<string, unknown>): Uint8Array[] {
  const out: Uint8Array[] = [packr.pack(req)];
  const s = req['session'] as { id: string; seq: number; ackedBelow: number } | undefined;
  const keys = Object.keys(req).join();
  const clientShaped =
    keys === 'op,key,value,session,id,timeoutMs' &&
    req['op'] === 'put' &&
    req['key'] instanceof Uint8Array &&
    req['value'] instanceof Uint8Array &&
    typeof s === 'object' &&
    Object.keys(s).join() === 'id,seq,ackedBelow' &&
    typeof s.id === 'string' &&
    typeof s.seq === 'number' &&
    typeof s.ackedBelow === 'number' &&
    typeof req['id'] === 'number' &&
    typeof req['timeoutMs'] === 'number';
  if (clientShaped) {
    const f = encodePutFrame(req['key'] as Uint8Array, req['value'] as Uint8Array, s!, req['id'] as number, req['timeoutMs'] as number);
    if (f !== undefined) out.push(f);
  }
  const odd = new Out();
  oddEncode(r, req, odd);
  out.push(odd.bytes());
  return out;
}

/** A frame spoiled at random: truncated, extended, a byte changed, or a duplicated field. */
function mutate(r: Rand, frame: Uint8Array): Uint8Array {
  const b = Uint8Array.from(frame);
  switch (Math.floor(r() * 5)) {
    case 0:
      return b.subarray(0, Math.floor(r() * b.length));
    case 1:
      return Buffer.concat([b, randBytes(r, 1 + Math.floor(r() * 3))]);
    case 2:
      b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      return b;
    case 3: {
      const at = Math.floor(r() * b.length);
      b[at] = (b[at] ?? 0) ^ (1 << Math.floor(r() * 8));
      return b;
    }
    default:
      // Map size one more or less than the fields present.
      if (b[0] === 0xde) b[2] = (b[2]! + (r() < 0.5 ? 1 : 255)) & 0xff;
      else if ((b[0]! & 0xf0) === 0x80) b[0] = 0x80 | ((b[0]! + 1) & 0x0f);
      return b;
  }
}

/** What a decode gave, in a form to compare: the result, or the error's class, code and message. */
function outcome(decode: () => unknown): unknown {
  try {
    const v = decode() as { ok: boolean; error?: unknown; id?: number; request?: unknown };
    if (v.ok === false) return { ok: false, id: v.id, error: errorOf(v.error) };
    return v;
  } catch (e) {
    return { threw: errorOf(e) };
  }
}

function errorOf(e: unknown): unknown {
  if (!(e instanceof Error)) return { notAnError: String(e) };
  return { name: e.constructor.name, code: (e as { code?: unknown }).code, message: e.message };
}

function hex(bytes: Uint8Array): string {
  const h = Buffer.from(bytes.subarray(0, 2000)).toString('hex');
  return bytes.length > 2000 ? `${h}… (${bytes.length} bytes)` : h;
}

function generic(bytes: Uint8Array, limits: Limits): unknown {
  return validateRequest(decodeMsgpack(bytes, limits.maxFrameBytes), limits);
}

/** Asserts both paths agree on `frame` (as a Buffer and as a plain Uint8Array); true when the fast path answered. */
function checkSame(frame: Uint8Array, limits: Limits, what: () => string): boolean {
  let fast = false;
  for (const bytes of [Buffer.from(frame), Uint8Array.from(frame)]) {
    const want = outcome(() => generic(bytes, limits));
    const got = outcome(() => decodeRequestFrame(bytes, limits));
    // Described only on failure (frames may be megabytes).
    if (!isDeepStrictEqual(got, want)) expect(got, `${what()}; replay: ${REPLAY}`).toStrictEqual(want);
    if (fastDecodeRequest(bytes, limits) !== undefined) fast = true;
  }
  return fast;
}

describe('request fast path = generic path', () => {
  test(`${CASES} random requests, several encodings each, and mutations of them (seed ${SEED})`, () => {
    const r = xorshift32(SEED);
    let fastValid = 0;
    let fastPutFromClient = 0;
    let checked = 0;
    for (let i = 0; i < CASES; i++) {
      const limits = r() < 0.7 ? SMALL_LIMITS : DEFAULT_LIMITS;
      const req = randRequest(r, limits);
      const frames = encodings(r, req);
      frames.forEach((frame, j) => {
        const what = () => `case ${i}, encoding ${j}, frame ${hex(frame)}`;
        if (checkSame(frame, limits, what)) {
          fastValid++;
          if (j === 1) fastPutFromClient++;
        }
        checked++;
        for (let m = 0; m < 2; m++) {
          const bad = mutate(r, frame);
          checkSame(bad, limits, () => `case ${i}, encoding ${j}, mutation ${m}, frame ${hex(bad)}`);
          checked++;
        }
      });
    }
    // The fast path must actually serve the usual frames (not fall back on everything).
    expect(fastValid).toBeGreaterThan(CASES / 2);
    expect(fastPutFromClient).toBeGreaterThan(CASES / 20);
    expect(checked).toBeGreaterThan(CASES * 6);
  });

  test('the client put frame at integer boundaries is served by the fast path, as the generic path decodes it', () => {
    const key = Uint8Array.from([1, 2, 3]);
    const value = new Uint8Array(0);
    for (const n of [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1]) {
      const seq = Math.max(1, n);
      const frame = encodePutFrame(key, value, { id: 'abc', seq, ackedBelow: seq }, n, 1 + (n % 600_000));
      expect(frame).toBeDefined();
      expect(checkSame(frame!, DEFAULT_LIMITS, () => `n=${n}`)).toBe(true);
    }
  });

  test('limits: keys and values at and over the limit, frames over the limit, take the generic answer', () => {
    const limits = SMALL_LIMITS;
    for (const keyLen of [0, 1, limits.maxKeyBytes, limits.maxKeyBytes + 1]) {
      for (const valueLen of [0, limits.maxValueBytes, limits.maxValueBytes + 1]) {
        const req = { op: 'put', key: new Uint8Array(keyLen), value: new Uint8Array(valueLen), session: { id: 's', seq: 2, ackedBelow: 1 }, id: 9, timeoutMs: 100 };
        checkSame(packr.pack(req), limits, () => `key ${keyLen}, value ${valueLen}`);
        checkSame(packr.pack(req), { ...limits, maxFrameBytes: 60 }, () => `frame limit, key ${keyLen}, value ${valueLen}`);
      }
    }
  });
});

/** A random successful answer of the shapes the fast encoder covers (and some it does not). */
function randAnswer(r: Rand): ClientResponse {
  const id = randUint(r);
  const n = () => (r() < 0.9 ? (r() < 0.5 ? pick(r, EDGE_UINTS) : Math.floor(r() * 2 ** 32)) : pick(r, OTHER_NUMBERS));
  const bin = (len: number) => (r() < 0.5 ? randBytes(r, len) : Buffer.from(randBytes(r, len)));
  const lens = [0, 1, 31, 32, 255, 256, 65535, 65536, 70_000];
  switch (Math.floor(r() * 6)) {
    case 0:
      return { id, ok: true, result: { revision: n(), term: n() } };
    case 1:
      return { id, ok: true, result: { revision: n(), deleted: r() < 0.5, term: n() } };
    case 2:
      return { id, ok: true, result: { item: null } };
    case 3: {
      const small = r() < 0.9;
      const item = {
        key: bin(small ? Math.floor(r() * 40) : pick(r, lens)),
        value: bin(small ? Math.floor(r() * 300) : pick(r, lens)),
        createRevision: n(),
        modRevision: n(),
        version: n(),
      };
      return { id, ok: true, result: { item } };
    }
    case 4:
      return { id, ok: true, result: { revision: n() } };
    default:
      return { id, ok: false, error: { code: 'QKV_BUSY', message: 'busy', retryAfterMs: n() } };
  }
}

describe('answer fast path = msgpackr', () => {
  test(`${CASES} random answers are encoded byte for byte as msgpackr does (seed ${SEED})`, () => {
    const r = xorshift32(SEED + 1);
    let fast = 0;
    for (let i = 0; i < CASES; i++) {
      const frame = randAnswer(r);
      const maxFrameBytes = r() < 0.9 ? DEFAULT_LIMITS.maxFrameBytes : 40 + Math.floor(r() * 200);
      const want = outcome(() => Buffer.from(packr.pack(frame)).toString('hex'));
      const wantSized = (want as { threw?: unknown }).threw === undefined && (want as string).length / 2 > maxFrameBytes ? 'too large' : want;
      const got = outcome(() => Buffer.from(encodeFrame(frame, maxFrameBytes)).toString('hex'));
      const gotSized = (got as { threw?: { name: string } }).threw?.name === 'TooLargeError' ? 'too large' : got;
      expect(gotSized, `case ${i}: ${JSON.stringify(frame, (_k, v: unknown) => (v instanceof Uint8Array ? `bytes(${v.length})` : v))}; replay: ${REPLAY}`).toStrictEqual(wantSized);
      if (fastEncodeResponse(frame, maxFrameBytes) !== undefined) fast++;
    }
    expect(fast).toBeGreaterThan(CASES / 3);
  });

  test('answers in another field order, or of class instances, keep msgpackr bytes', () => {
    const odd: ClientResponse[] = [
      { ok: true, id: 1, result: { revision: 2, term: 3 } },
      { id: 1, ok: true, result: { term: 3, revision: 2 } },
      { id: 1, ok: true, result: { revision: 2, term: undefined } },
      { id: 1, ok: true, result: Object.assign(Object.create({ inherited: 1 }) as object, { revision: 2, term: 3 }) },
    ];
    for (const frame of odd) {
      expect(Buffer.from(encodeFrame(frame, DEFAULT_LIMITS.maxFrameBytes))).toStrictEqual(Buffer.from(packr.pack(frame)));
    }
  });

  test('answers already handed out are never overwritten by later ones', () => {
    const first = encodeFrame({ id: 1, ok: true, result: { revision: 2, term: 3 } }, DEFAULT_LIMITS.maxFrameBytes);
    const copy = Uint8Array.from(first);
    for (let i = 0; i < 5000; i++) encodeFrame({ id: i, ok: true, result: { revision: i, term: 1 } }, DEFAULT_LIMITS.maxFrameBytes);
    expect(first).toStrictEqual(copy);
  });
});
