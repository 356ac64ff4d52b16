import { describe, expect, test } from 'vitest';
import { type Command, CommandDecodeError, decodeCommand, encodeCommand, openMemoryNodeStore } from '@quorumkv/storage';
import { pack } from '../src/codec.js';
import { xorshift32 } from '@quorumkv/testkit';

const b = (s: string) => new TextEncoder().encode(s);

describe('command encoding', () => {
  const commands: Command[] = [
    { op: 'put', key: b('k'), value: b('v') },
    { op: 'put', key: b('k'), value: new Uint8Array(0), session: { id: 'c1', seq: 7, ackedBelow: 3 }, timeMs: 1_700_000_000_000 },
    { op: 'del', key: b('k'), timeMs: 5 },
    { op: 'cas', key: b('k'), cond: { modRevision: 0 }, then: { op: 'put', value: b('x') } },
    { op: 'cas', key: b('k'), cond: { value: b('old') }, then: { op: 'del' } },
    { op: 'cas', key: b('k'), cond: { absent: true }, then: { op: 'put', value: b('x') }, session: { id: 's', seq: 0, ackedBelow: 0 } },
  ];

  test.each(commands.map((c) => [c.op, c] as const))('%s round-trips', (_op, cmd) => {
    expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd);
  });

  const bad: Array<[string, unknown]> = [
    ['not a map', [1, 2]],
    ['wrong version', { v: 2, op: 'put', key: b('k'), value: b('v') }],
    ['unknown op', { v: 1, op: 'get', key: b('k') }],
    ['missing value', { v: 1, op: 'put', key: b('k') }],
    ['string key', { v: 1, op: 'put', key: 'k', value: b('v') }],
    ['empty key', { v: 1, op: 'put', key: new Uint8Array(0), value: b('v') }],
    ['oversized key', { v: 1, op: 'del', key: new Uint8Array(4097) }],
    ['unknown field', { v: 1, op: 'del', key: b('k'), value: b('v') }],
    ['ackedBelow above seq', { v: 1, op: 'del', key: b('k'), session: { id: 'c', seq: 1, ackedBelow: 2 } }],
    ['negative seq', { v: 1, op: 'del', key: b('k'), session: { id: 'c', seq: -1, ackedBelow: 0 } }],
    ['empty session id', { v: 1, op: 'del', key: b('k'), session: { id: '', seq: 0, ackedBelow: 0 } }],
    ['fractional timeMs', { v: 1, op: 'del', key: b('k'), timeMs: 1.5 }],
    ['two conditions', { v: 1, op: 'cas', key: b('k'), cond: { absent: true, modRevision: 1 }, then: { op: 'del' } }],
    ['absent: false', { v: 1, op: 'cas', key: b('k'), cond: { absent: false }, then: { op: 'del' } }],
    ['bad action', { v: 1, op: 'cas', key: b('k'), cond: { absent: true }, then: { op: 'put' } }],
    ['null session', { v: 1, op: 'del', key: b('k'), session: null }],
  ];
  test.each(bad)('refuses %s', (_name, raw) => {
    expect(() => decodeCommand(pack(raw))).toThrow(CommandDecodeError);
  });

  test('refuses invalid and trailing bytes', () => {
    const ok = encodeCommand({ op: 'del', key: b('k') });
    for (const bytes of [new Uint8Array([0xc1]), ok.subarray(0, ok.length - 1), new Uint8Array([...ok, 0])]) {
      expect(() => decodeCommand(bytes)).toThrow(CommandDecodeError);
    }
  });

  test('encodeCommand refuses a command replicas would reject', () => {
    expect(() => encodeCommand({ op: 'del', key: new Uint8Array(0) })).toThrow(CommandDecodeError);
  });

  test('fuzz: random and mutated bytes never crash decode or apply (seeded)', async () => {
    const seed = Number(process.env['QKV_FUZZ_SEED'] ?? 12345);
    const rand = xorshift32(seed);
    const valid = commands.map(encodeCommand);
    const store = await openMemoryNodeStore();
    let index = 0;
    for (let round = 0; round < 300; round++) {
      const base = valid[Math.floor(rand() * valid.length)]!.slice();
      const bytes = rand() < 0.3 ? Uint8Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256)) : base;
      for (let m = 0; m < 1 + Math.floor(rand() * 3); m++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      try {
        decodeCommand(bytes);
      } catch (err) {
        if (!(err instanceof CommandDecodeError)) throw new Error(`seed ${seed}: decode threw ${String(err)}; replay with QKV_FUZZ_SEED=${seed} pnpm vitest run packages/storage/test/commands.test.ts`);
      }
      index++;
      const [result] = await store.kv.apply([{ kind: 'entry', index, term: 1, data: bytes }]);
      expect(result, `seed ${seed}`).toBeDefined();
    }
    expect(store.kv.appliedIndex()).toBe(300);
  });
});
