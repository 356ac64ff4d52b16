// The hand-written encoders of the hot records must write EXACTLY the bytes msgpackr (codec.ts
// `pack`) writes: stored data, state hashes and snapshots must not depend on which one wrote a
// record. Seeded random inputs of every shape, plus the edge values of each msgpack size class.
import { describe, expect, test } from 'vitest';
import { EntryType } from '@quorumkv/raft';
import { pack } from '../src/codec.js';
import { encodeKvRecord, encodeSessionHeader, type KvRecord, type SessionHeader } from '../src/kv-layout.js';
import type { ApplyResult } from '../src/kv-state-machine.js';
import { SEAL_BYTES } from '../src/checksum.js';
import { encodeSegment } from '../src/log-segments.js';
import { metaPut } from '../src/meta.js';
import { MsgpackWriter, encodeApplyResult, packPlain } from '../src/msgpack-writer.js';
import type { LogEntry } from '../src/types.js';
import { xorshift32 } from '@quorumkv/testkit';

const SEED = Number(process.env['QKV_ENC_SEED'] ?? 1);
const CASES = Number(process.env['QKV_ENC_CASES'] ?? 2000);
const REPLAY = `QKV_ENC_SEED=${SEED} pnpm vitest run packages/storage/test/msgpack-writer.test.ts`;

/** Non-negative integers at every size-class boundary msgpack (and msgpackr's float64 fallback) has. */
const EDGE_UINTS = [
  0, 1, 31, 32, 63, 64, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40, 2 ** 53 - 2,
  2 ** 53 - 1,
];
/** Other numbers a plain value may hold (meta records are generic): negatives, fractions, specials. */
const EDGE_OTHER_NUMBERS = [
  -0, -1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53 - 1), 0.5, -0.5, 1e-300, 1.5e300,
  Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.MAX_VALUE, Number.MIN_VALUE,
];
/** Byte lengths around the bin8/bin16/bin32 boundaries. */
const EDGE_BIN_LENGTHS = [0, 1, 31, 32, 255, 256, 65535, 65536, 70000];
/** Strings around fixstr/str8/str16/str32 boundaries, msgpackr's 64-unit cut-off, and non-ASCII. */
const EDGE_STRINGS = [
  '',
  'a',
  'x'.repeat(31),
  'x'.repeat(32),
  'x'.repeat(63),
  'x'.repeat(64),
  'x'.repeat(255),
  'x'.repeat(256),
  'x'.repeat(65535),
  'x'.repeat(65536),
  'é'.repeat(15),
  'é'.repeat(16),
  'é'.repeat(127),
  'é'.repeat(128),
  '€'.repeat(10),
  '€'.repeat(11),
  '€'.repeat(85),
  '€'.repeat(86),
  '€'.repeat(21845),
  '€'.repeat(21846),
  '😀'.repeat(7),
  '😀'.repeat(8),
  '😀'.repeat(40),
  'lone \ud800 high',
  'lone \udc00 low',
  'end \ud83d',
  `${'y'.repeat(70)}\ud800 long lone`,
  'QKV_BAD_COMMAND',
];

interface Gen {
  rand: () => number;
  int: (n: number) => number;
  pick: <T>(xs: readonly T[]) => T;
}

function gen(seed: number): Gen {
  const rand = xorshift32(seed);
  const int = (n: number) => Math.floor(rand() * n);
  return { rand, int, pick: (xs) => xs[int(xs.length)] as (typeof xs)[number] };
}

function uint(g: Gen): number {
  const r = g.rand();
  if (r < 0.3) return g.pick(EDGE_UINTS);
  if (r < 0.5) return g.int(0x80);
  if (r < 0.7) return g.int(0x10000);
  if (r < 0.9) return g.int(0x1_0000_0000);
  return g.int(2 ** 53);
}

function bytes(g: Gen): Uint8Array {
  const n = g.rand() < 0.2 ? g.pick(EDGE_BIN_LENGTHS) : g.int(g.rand() < 0.8 ? 300 : 5000);
  const out = g.rand() < 0.2 ? Buffer.alloc(n) : new Uint8Array(n);
  for (let i = 0; i < n; i += 1 + g.int(64)) out[i] = g.int(256);
  // Sometimes a view into a bigger buffer (as values cut from network frames are).
  if (g.rand() < 0.2) {
    const big = new Uint8Array(n + 8);
    big.set(out, 3);
    return big.subarray(3, 3 + n);
  }
  return out;
}

function str(g: Gen): string {
  if (g.rand() < 0.3) return g.pick(EDGE_STRINGS);
  const alphabet = ['a', 'Z', '0', ' ', 'é', 'ß', '€', '中', '😀', '\u007f', '\u0080', '\u07ff', '\u0800', '\uffff', '\ud800', '\udfff'];
  const n = g.int(g.rand() < 0.8 ? 40 : 400);
  let s = '';
  for (let i = 0; i < n; i++) s += g.pick(alphabet);
  return s;
}

function kvRecord(g: Gen): KvRecord {
  return { value: bytes(g), createRevision: uint(g), modRevision: uint(g), version: uint(g) };
}

function applyResult(g: Gen): ApplyResult {
  const term = (): { term?: number } => (g.rand() < 0.8 ? { term: uint(g) } : {});
  switch (g.int(9)) {
    case 0:
      return { op: 'put', revision: uint(g), ...term() };
    case 1:
      return { op: 'del', deleted: g.rand() < 0.5, revision: uint(g), ...term() };
    case 2:
      return { op: 'cas', succeeded: true, revision: uint(g), ...term() };
    case 3:
      return { op: 'cas', succeeded: false, revision: uint(g), ...term() };
    case 4: {
      const current = { key: bytes(g), ...kvRecord(g) };
      return { op: 'cas', succeeded: false, revision: uint(g), current, ...term() };
    }
    case 5:
      return { op: 'none' };
    case 6:
      return { op: 'error', code: g.pick(['QKV_BAD_COMMAND', 'QKV_SESSION_EXPIRED', 'QKV_SESSIONS_FULL'] as const), message: str(g) };
    case 7:
      // The common case, as withTerm() builds it (spread then term).
      return g.rand() < 0.5 ? { ...{ op: 'put' as const, revision: uint(g) }, term: uint(g) } : { ...{ op: 'del' as const, deleted: g.rand() < 0.5, revision: uint(g) }, term: uint(g) };
    default: {
      // Near misses of the put/del templates: other key orders (a decoded result may have any),
      // extra keys, non-number fields. They must take the generic walk and still match.
      const odd: unknown[] = [
        { term: uint(g), op: 'put', revision: uint(g) },
        { op: 'put', term: uint(g), revision: uint(g) },
        { op: 'put', revision: uint(g), term: uint(g), extra: str(g) },
        { op: 'put', revision: String(uint(g)), term: uint(g) },
        { op: 'del', revision: uint(g), deleted: true, term: uint(g) },
        { op: 'del', deleted: 1, revision: uint(g), term: uint(g) },
        { op: 'del', deleted: false, revision: uint(g), term: undefined },
        { op: 'put', revision: uint(g), term: g.pick(EDGE_OTHER_NUMBERS) },
        // An inherited enumerable `term`: msgpackr skips it (not own), so must we.
        Object.assign(Object.create({ term: 7 }) as object, { op: 'put', revision: uint(g) }),
      ];
      return g.pick(odd) as ApplyResult;
    }
  }
}

function sessionHeader(g: Gen): SessionHeader {
  const n = g.rand() < 0.1 ? g.pick([0, 15, 16, 64, 1024]) : g.int(20);
  const seqs: number[] = [];
  let seq = uint(g) % 2 ** 40;
  for (let i = 0; i < n; i++) seqs.push((seq += 1 + g.int(300)));
  const inline = seqs.map(() => (g.rand() < 0.6 ? pack(applyResult(g)) : null));
  return { lastActiveMs: uint(g), discardedBelow: uint(g), seqs, inline, inlineCount: inline.filter((p) => p !== null).length };
}

function logEntries(g: Gen): LogEntry[] {
  const n = g.rand() < 0.1 ? g.pick([0, 1, 15, 16, 300]) : 1 + g.int(40);
  let index = uint(g) % 2 ** 50;
  const types = Object.values(EntryType);
  return Array.from({ length: n }, () => ({ index: ++index, term: uint(g), type: g.pick(types), data: bytes(g) }));
}

/** A random plain value tree (for meta records and packPlain in general). */
function plain(g: Gen, depth = 0): unknown {
  const r = g.int(depth > 3 ? 7 : 10);
  switch (r) {
    case 0:
      return null;
    case 1:
      return g.rand() < 0.5;
    case 2:
      return uint(g);
    case 3:
      return g.pick(EDGE_OTHER_NUMBERS);
    case 4:
      return str(g);
    case 5:
      return bytes(g);
    case 6:
      return undefined;
    case 7:
    case 8: {
      const o: Record<string, unknown> = {};
      const n = g.rand() < 0.05 ? 20 : g.int(6);
      for (let i = 0; i < n; i++) o[g.rand() < 0.5 ? g.pick(['index', 'term', 'hash', 'clockMs', 'voters', 'id']) : str(g)] = plain(g, depth + 1);
      return o;
    }
    default:
      return Array.from({ length: g.rand() < 0.05 ? 17 : g.int(5) }, () => plain(g, depth + 1));
  }
}

/** Asserts byte-identity with a readable message (first differing offset, bytes there, the replay command). */
function expectSame(actual: Uint8Array, value: unknown, what: string, i: number): void {
  const expected = pack(value);
  if (Buffer.compare(Buffer.from(actual), Buffer.from(expected)) !== 0) {
    let at = 0;
    while (at < actual.length && at < expected.length && actual[at] === expected[at]) at++;
    const hex = (b: Uint8Array) => Buffer.from(b.subarray(Math.max(0, at - 8), at + 24)).toString('hex');
    expect.fail(
      `${what} #${i} differs from msgpackr at byte ${at} (lengths ${actual.length} / ${expected.length})\n` +
        `  ours:     …${hex(actual)}\n  msgpackr: …${hex(expected)}\nreplay: ${REPLAY}`,
    );
  }
}

function forCases(what: string, cases: number, check: (g: Gen, i: number) => void): void {
  const g = gen(SEED * 7919 + what.length);
  for (let i = 0; i < cases; i++) check(g, i);
}

describe(`hand-written encoders are byte-identical to msgpackr (seed ${SEED})`, () => {
  test('kv records, edge revisions and value sizes included', () => {
    const g = gen(SEED);
    for (const n of EDGE_UINTS) {
      for (const len of EDGE_BIN_LENGTHS) {
        const r: KvRecord = { value: new Uint8Array(len).fill(n & 0xff), createRevision: n, modRevision: uint(g), version: n };
        expectSame(encodeKvRecord(r), [r.value, r.createRevision, r.modRevision, r.version], 'edge kv record', n);
      }
    }
    forCases('kv', CASES, (g, i) => {
      const r = kvRecord(g);
      expectSame(encodeKvRecord(r), [r.value, r.createRevision, r.modRevision, r.version], 'kv record', i);
    });
  });

  test('session results: every ApplyResult variant', () => {
    const seen = new Set<string>();
    forCases('results', CASES, (g, i) => {
      const r = applyResult(g);
      seen.add(`${r.op}/${'succeeded' in r ? r.succeeded : ''}/${'current' in r}/${'term' in r}`);
      expectSame(encodeApplyResult(r), r, 'session result', i);
      expectSame(packPlain(r), r, 'session result (plain walk)', i);
    });
    // put, del, cas ok, cas failed with and without current, none, error, each with and without term.
    expect(seen.size, REPLAY).toBeGreaterThanOrEqual(11);
  });

  test('session headers, with and without inline results', () => {
    forCases('headers', CASES / 4, (g, i) => {
      const h = sessionHeader(g);
      expectSame(encodeSessionHeader(h), [h.lastActiveMs, h.discardedBelow, h.seqs, h.inline], 'session header', i);
    });
  });

  test('log segments, empty and large ones included', () => {
    forCases('segments', CASES / 8, (g, i) => {
      const entries = logEntries(g);
      expectSame(encodeSegment(entries), entries.map((e) => [e.term, e.type, e.data]), 'segment', i);
    });
  });

  test('meta records: applied state, membership, format, generation, random plain values', () => {
    const g = gen(SEED + 1);
    const applied = { index: uint(g), term: uint(g), hash: new Uint8Array(32).fill(9), clockMs: uint(g) };
    const membership = {
      voters: [{ id: 'n1', address: '127.0.0.1:7001' }, { id: 'n2', address: '127.0.0.1:7002', zone: 'eu-1' }],
      learners: [{ id: 'n4', address: 'host-ü:1' }],
    };
    for (const v of [applied, membership, { version: 1 }, 0, 0xffff_fffe, { term: 2 ** 33, vote: 'n1', commit: 0 }]) {
      const op = metaPut(new Uint8Array(1), v);
      expect(op.type).toBe('put');
      // The stored value is the checksum seal (4 bytes) and then the encoding.
      expectSame((op as { value: Uint8Array }).value.subarray(SEAL_BYTES), v, 'meta record', 0);
    }
    forCases('plain', CASES, (g, i) => {
      const v = plain(g);
      expectSame(packPlain(v), v, 'plain value', i);
    });
  });

  test('every edge number and string on its own, and as object keys', () => {
    const values: unknown[] = [...EDGE_UINTS, ...EDGE_OTHER_NUMBERS, ...EDGE_STRINGS];
    values.forEach((v, i) => expectSame(packPlain(v), v, 'edge value', i));
    EDGE_STRINGS.forEach((s, i) => expectSame(packPlain({ [s]: s, k: 1 }), { [s]: s, k: 1 }, 'edge key', i));
  });

  // (Not other typed arrays: msgpackr writes a Uint16Array as a bin of its byte length but copies
  // only its elements, leaving stale bytes, so its own output is not repeatable.)
  test('values outside the plain types go to msgpackr and still match', () => {
    class Thing {
      a = 1;
    }
    const odd: unknown[] = [new Date(0), new Map([['a', 1]]), new Set([1]), new Thing(), { nested: new Date(1000) }, [1, new Map()], 10n];
    odd.forEach((v, i) => expectSame(packPlain(v), v, 'fallback value', i));
  });

  test('outputs stay valid: later encodes never overwrite earlier results', () => {
    const g = gen(SEED + 2);
    const kept: [Uint8Array, Uint8Array][] = [];
    for (let i = 0; i < 3000; i++) {
      const r = kvRecord(g);
      const out = encodeKvRecord(r);
      kept.push([out, Uint8Array.from(pack([r.value, r.createRevision, r.modRevision, r.version]))]);
      const result = applyResult(g);
      kept.push([encodeApplyResult(result), Uint8Array.from(pack(result))]);
    }
    kept.forEach(([out, expected], i) => expect(Buffer.compare(Buffer.from(out), Buffer.from(expected)), `output #${i} changed; ${REPLAY}`).toBe(0));
  });

  test('a writer grows in the middle of an output without losing what it wrote', () => {
    const w = new MsgpackWriter();
    w.begin();
    const value = { a: 'x'.repeat(5000), b: new Uint8Array(20000).fill(1), c: Array.from({ length: 3000 }, (_, i) => i * 1000) };
    w.writePlain(value);
    expectSame(w.end(), value, 'grown output', 0);
  });
});
