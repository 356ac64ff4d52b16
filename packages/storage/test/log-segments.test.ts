// The log record codec on its own: segments and previous-format records round-trip, runs are cut
// within the limits, and bad bytes only ever produce QKV_STORAGE_CORRUPT (seeded fuzz).
import { describe, expect, test } from 'vitest';
import type { LogEntry } from '@quorumkv/storage';
import { pack, u64be } from '../src/codec.js';
import { StorageCorruptError } from '../src/errors.js';
import { decodeSegment, encodeSegment, peekEntryCount, splitIntoRuns } from '../src/log-segments.js';
import { xorshift32 } from '@quorumkv/testkit';

const entry = (index: number, term: number, bytes: number): LogEntry => ({ index, term, type: 0, data: new Uint8Array(bytes).fill(index & 0xff) });

describe('log records', () => {
  test('a segment and a previous-format record decode to their entries; the peeked count agrees', () => {
    for (const n of [1, 15, 16, 300, 70_000]) { // fixarray, array16 and array32 headers
      const entries = Array.from({ length: n }, (_, i) => entry(100 + i, 3, i % 5));
      const value = encodeSegment(entries);
      expect(peekEntryCount(value)).toBe(n);
      const decoded = decodeSegment('t', u64be(100), value);
      expect(decoded.entries.length).toBe(n);
      expect({ first: decoded.first, entries: decoded.entries.slice(-300) }).toEqual({ first: 100, entries: entries.slice(-300) });
    }
    const legacy = pack([7, 1, new Uint8Array([1, 2])]);
    expect(peekEntryCount(legacy)).toBe(1);
    expect(decodeSegment('t', u64be(9), legacy)).toEqual({ first: 9, entries: [{ index: 9, term: 7, type: 1, data: new Uint8Array([1, 2]) }] });
  });

  test('runs respect both limits and keep at least one entry each', () => {
    const entries = [entry(1, 1, 10), entry(2, 1, 10), entry(3, 1, 500), entry(4, 1, 10), entry(5, 1, 10), entry(6, 1, 10)];
    const runs = splitIntoRuns(entries, { maxEntries: 2, maxBytes: 100 });
    expect(runs.map((r) => r.map((e) => e.index))).toEqual([[1, 2], [3], [4, 5], [6]]);
    expect(splitIntoRuns(entries, { maxEntries: 10, maxBytes: 1 << 20 })).toEqual([entries]);
  });

  test('fuzz: random and mutated records never crash peek or decode (seeded)', () => {
    const seed = Number(process.env['QKV_FUZZ_SEED'] ?? 4242);
    const replay = `seed ${seed}; replay with QKV_FUZZ_SEED=${seed} pnpm vitest run packages/storage/test/log-segments.test.ts`;
    const rand = xorshift32(seed);
    const int = (n: number) => Math.floor(rand() * n);
    let decoded = 0;
    for (let i = 0; i < 3000; i++) {
      const valid = rand() < 0.8 ? encodeSegment(Array.from({ length: 1 + int(5) }, (_, j) => entry(1 + j, 1 + int(3), int(20)))) : pack([1, 0, new Uint8Array(int(9))]);
      let value: Uint8Array;
      const how = int(4);
      if (how === 0) value = Uint8Array.from({ length: int(24) }, () => int(256));
      else if (how === 1) value = valid.slice(0, int(valid.length));
      else {
        value = valid.slice();
        for (let flips = 1 + int(3); flips > 0; flips--) value[int(value.length)] = int(256);
        if (how === 3) value = Uint8Array.from([...value, ...Array.from({ length: 1 + int(4) }, () => int(256))]);
      }
      const key = rand() < 0.95 ? u64be(1 + int(1000)) : Uint8Array.from({ length: int(12) }, () => int(256));
      const count = peekEntryCount(value);
      expect(count === undefined || (Number.isSafeInteger(count) && count > 0), replay).toBe(true);
      try {
        const segment = decodeSegment('fuzz', key, value);
        decoded++;
        expect(segment.entries.length, replay).toBe(count); // open() and load() see the same bounds
      } catch (err) {
        if (!(err instanceof StorageCorruptError)) throw new Error(`${replay}: decode threw ${String(err)}`);
      }
    }
    expect(decoded, replay).toBeGreaterThan(0);
  });
});
