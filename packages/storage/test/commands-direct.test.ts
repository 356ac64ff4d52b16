// encodeCommandAt writes usual put/del commands directly and remembers the Command built from its
// input instead of decoding its own bytes. Both must be invisible: the bytes are those of the
// generic path (msgpackr packing `{v: 1, ...cmd, timeMs}`), errors are the same, and the
// remembered Command (what the leader applies) equals decodeCommand(bytes) exactly. Seeded random
// commands, valid and not, at every size-class edge.
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, test } from 'vitest';
import { pack } from '../src/codec.js';
import { type Command, decodeCommand, decodeCommandOnce, encodeCommand, encodeCommandAt, encodeDirect } from '../src/commands.js';
import { xorshift32 } from '@quorumkv/testkit';

const SEED = Number(process.env['QKV_SEED'] ?? 20261122);
const CASES = Number(process.env['QKV_CASES'] ?? 4000);
const REPLAY = `QKV_SEED=${SEED} pnpm vitest run packages/storage/test/commands-direct.test.ts`;

type Rand = ReturnType<typeof xorshift32>;

function pick<T>(r: Rand, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)] as T;
}

const EDGE_UINTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 1_763_800_000_000];
const BAD_NUMBERS = [-0, -1, 0.5, 2 ** 53, Number.NaN];
const SESSION_IDS = ['s', 'client-1', 'é', '日本語', '\u{1F600}', '\ud800', 'a\udc00b', '', 'x'.repeat(85), 'x'.repeat(86), 'x'.repeat(256), 'x'.repeat(257), 'é'.repeat(85), 'é'.repeat(129)];

function bytes(r: Rand, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return r() < 0.3 ? Buffer.from(b) : b;
}

function num(r: Rand, clean: boolean): number {
  if (!clean && r() < 0.1) return pick(r, BAD_NUMBERS);
  return r() < 0.5 ? pick(r, EDGE_UINTS) : Math.floor(r() * 2 ** (1 + Math.floor(r() * 40)));
}

function shuffle(r: Rand, o: Record<string, unknown>): Record<string, unknown> {
  const entries = Object.entries(o);
  for (let i = entries.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }
  return Object.fromEntries(entries);
}

/** A random command: half clean (as the server builds them), half with odd or invalid parts. */
function randCommand(r: Rand): { cmd: Command; timeMs: number | undefined } {
  const clean = r() < 0.5;
  const odd = (p: number) => !clean && r() < p;
  const op = odd(0.1) ? pick(r, ['cas', 'nope']) : pick(r, ['put', 'del']);
  const keyLen = r() < 0.2 ? pick(r, clean ? [1, 4096] : [0, 1, 4096, 4097]) : 1 + Math.floor(r() * 40);
  const c: Record<string, unknown> = { op, key: odd(0.03) ? 'text' : bytes(r, keyLen) };
  if (op === 'put' || odd(0.05)) c['value'] = odd(0.03) ? 'text' : bytes(r, r() < 0.1 ? pick(r, [0, 255, 256, 3000, 5000]) : Math.floor(r() * 300));
  if (op === 'cas') Object.assign(c, { cond: { modRevision: 3 }, then: { op: 'del' } });
  if (r() < 0.8 || odd(0.5)) {
    const seq = num(r, clean);
    const s: Record<string, unknown> = {
      id: clean ? (r() < 0.6 ? `c${Math.floor(r() * 1e6)}` : pick(r, SESSION_IDS.filter((x) => x.length > 0 && !/[\ud800-\udfff]/.test(x) && x.length <= 85))) : pick(r, SESSION_IDS),
      seq,
      ackedBelow: clean ? Math.floor(r() * (seq + 1)) : pick(r, [0, seq, seq + 1, num(r, clean)]),
    };
    if (odd(0.05)) s['extra'] = 1;
    c['session'] = odd(0.2) ? shuffle(r, s) : odd(0.05) ? undefined : s;
  }
  if (r() < 0.2) c['timeMs'] = odd(0.3) ? pick(r, BAD_NUMBERS) : num(r, true);
  if (odd(0.05)) c['extra'] = 1;
  if (odd(0.05)) c['v'] = 1;
  const cmd = (odd(0.2) ? shuffle(r, c) : c) as unknown as Command;
  const timeMs = r() < 0.6 ? (odd(0.1) ? pick(r, BAD_NUMBERS) : r() < 0.5 ? Date.now() : num(r, true)) : undefined;
  return { cmd, timeMs };
}

/** The encoding before the direct path: msgpackr of `{v: 1, ...defined fields of {...cmd, timeMs}}`, validated. */
function reference(cmd: Command, timeMs: number | undefined): { hex: string } | { error: string } {
  const full = timeMs === undefined ? cmd : { ...cmd, timeMs };
  const wire: Record<string, unknown> = { v: 1 };
  for (const [k, v] of Object.entries(full)) if (v !== undefined) wire[k] = v;
  const b = pack(wire);
  try {
    decodeCommand(b);
  } catch (e) {
    return { error: (e as Error).message };
  }
  return { hex: Buffer.from(b).toString('hex') };
}

function describeCommand(cmd: unknown, timeMs: unknown): string {
  return JSON.stringify({ cmd, timeMs }, (_k, v: unknown) => (v instanceof Uint8Array ? `${v.constructor.name}(${v.length})` : Object.is(v, -0) ? '-0' : v));
}

describe('direct command encoding = generic encoding', () => {
  test(`${CASES} random commands: same bytes or same error, remembered Command = decodeCommand(bytes) (seed ${SEED})`, () => {
    const r = xorshift32(SEED);
    let direct = 0;
    for (let i = 0; i < CASES; i++) {
      const { cmd, timeMs } = randCommand(r);
      const what = () => `case ${i}: ${describeCommand(cmd, timeMs)}; replay: ${REPLAY}`;
      const want = reference(cmd, timeMs);
      let got: { hex: string } | { error: string };
      let out: Uint8Array | undefined;
      try {
        out = timeMs === undefined && r() < 0.5 ? encodeCommand(cmd) : encodeCommandAt(cmd, timeMs);
        got = { hex: Buffer.from(out).toString('hex') };
      } catch (e) {
        got = { error: (e as Error).message };
      }
      if (!isDeepStrictEqual(got, want)) expect(got, what()).toStrictEqual(want);
      if (out === undefined) continue;
      const remembered = decodeCommandOnce(out);
      const decoded = decodeCommand(out);
      if (!isDeepStrictEqual(remembered, decoded)) expect(remembered, what()).toStrictEqual(decoded);
      // Taken once: a second call decodes.
      expect(decodeCommandOnce(out)).toStrictEqual(decoded);
      // Count the commands the direct path serves (its output is not remembered twice: drop it).
      const d = encodeDirect(cmd, timeMs);
      if (d !== undefined) {
        direct++;
        expect(Buffer.from(d).toString('hex')).toBe((want as { hex: string }).hex);
        decodeCommandOnce(d);
      }
    }
    expect(direct).toBeGreaterThan(CASES / 3);
  });

  test('the command as the server proposes it is written directly', () => {
    const key = new Uint8Array([1, 2, 3]);
    const cmd: Command = { op: 'put', key, value: new Uint8Array(100), session: { id: 'client-1', seq: 7, ackedBelow: 5 } };
    const now = Date.now();
    const out = encodeDirect(cmd, now);
    expect(out).toBeDefined();
    expect(Buffer.from(out!)).toStrictEqual(Buffer.from(pack({ v: 1, ...cmd, timeMs: now })));
    expect(decodeCommandOnce(out!)).toStrictEqual(decodeCommand(out!));
    // The remembered key is a view of the command bytes, not the caller's array.
    key[0] = 9;
    expect(decodeCommandOnce(encodeCommandAt(cmd, now)).key[0]).toBe(9);
  });

  test('bytes handed out are not overwritten by later commands', () => {
    const first = encodeCommandAt({ op: 'del', key: new Uint8Array([7]) }, 1);
    const copy = Buffer.from(Uint8Array.from(first));
    for (let i = 0; i < 3000; i++) decodeCommandOnce(encodeCommandAt({ op: 'put', key: new Uint8Array([i & 255, 1]), value: new Uint8Array(50) }, i));
    expect(Buffer.from(first)).toStrictEqual(copy);
  });
});

describe('direct command decoding = decodeCommand', () => {
  /** Flips, truncates or extends encoded bytes. */
  function mutate(r: Rand, b: Uint8Array): Uint8Array {
    const c = Uint8Array.from(b);
    switch (Math.floor(r() * 4)) {
      case 0:
        c[Math.floor(r() * c.length)] ^= 1 << Math.floor(r() * 8);
        return c;
      case 1:
        return c.subarray(0, Math.floor(r() * c.length));
      case 2:
        return Uint8Array.from([...c, Math.floor(r() * 256)]);
      default:
        c[Math.floor(r() * c.length)] = Math.floor(r() * 256);
        return c;
    }
  }

  test(`${CASES} random commands and mutations: decodeDirect returns nothing or exactly decodeCommand's result (seed ${SEED})`, async () => {
    const { decodeDirect } = await import('../src/commands.js');
    const r = xorshift32(SEED + 1);
    let served = 0;
    for (let i = 0; i < CASES; i++) {
      const { cmd, timeMs } = randCommand(r);
      const want = reference(cmd, timeMs);
      if ('error' in want) continue;
      const encoded = Buffer.from(want.hex, 'hex');
      const variants = [encoded, new Uint8Array(encoded), mutate(r, encoded), mutate(r, encoded)];
      for (const [v, b] of variants.entries()) {
        const what = () => `case ${i} variant ${v}: ${describeCommand(cmd, timeMs)} bytes ${Buffer.from(b).toString('hex')}; replay: ${REPLAY}`;
        const fast = decodeDirect(b);
        let generic: Command | undefined;
        try {
          generic = decodeCommand(b);
        } catch {
          generic = undefined;
        }
        if (fast === undefined) continue;
        if (v < 2) served++;
        expect(generic, what()).toBeDefined();
        if (!isDeepStrictEqual(fast, generic)) expect(fast, what()).toStrictEqual(generic);
      }
    }
    // The layout the server writes is the one followers see: most valid commands take the fast path.
    expect(served).toBeGreaterThan(CASES / 3);
  });

  test('a proposed command decodes directly on a follower, with plain Uint8Array views', async () => {
    const { decodeDirect } = await import('../src/commands.js');
    const cmd: Command = { op: 'put', key: new Uint8Array([1, 2, 3]), value: new Uint8Array(300).fill(7), session: { id: 'client-1', seq: 70000, ackedBelow: 69990 } };
    const bytes = Uint8Array.from(encodeCommandAt(cmd, Date.now()));
    const fast = decodeDirect(bytes);
    expect(fast).toBeDefined();
    expect(fast).toStrictEqual(decodeCommand(bytes));
    expect(fast!.key.constructor).toBe(Uint8Array);
  });
});
