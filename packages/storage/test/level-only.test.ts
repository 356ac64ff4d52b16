// LevelDB-specific failure modes of opening a store (the memory twin has no files).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { openNodeStore } from '@quorumkv/storage';

describe('opening a LevelDB store', () => {
  const dirs: string[] = [];
  const freshDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'qkv-open-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  test('a store already open elsewhere is refused with QKV_STORAGE_IO naming the directory', async () => {
    const dir = freshDir();
    const first = await openNodeStore(dir);
    try {
      const err = await openNodeStore(dir).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'QKV_STORAGE_IO' });
      expect((err as Error).message).toContain(dir);
    } finally {
      await first.close();
    }
  });

  test('a missing store is not created when createIfMissing is false', async () => {
    await expect(openNodeStore(join(freshDir(), 'absent'), { createIfMissing: false })).rejects.toMatchObject({ code: 'QKV_STORAGE_IO' });
  });

  test('damaged LevelDB files are reported as QKV_STORAGE_CORRUPT', async () => {
    const dir = freshDir();
    await (await openNodeStore(dir)).close();
    writeFileSync(join(dir, 'CURRENT'), 'garbage-without-newline');
    const err = await openNodeStore(dir).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'QKV_STORAGE_CORRUPT' });
  });

  test('a CURRENT damaged into naming a manifest that does not exist is corruption, not an I/O error', async () => {
    const dir = freshDir();
    await (await openNodeStore(dir)).close();
    const current = readFileSync(join(dir, 'CURRENT'), 'utf8');
    // One flipped bit in the manifest number (as the corrupt nemesis does): '2' (0x32) → '3' (0x33).
    writeFileSync(join(dir, 'CURRENT'), current.replace(/(\d)\n$/, (_m, d: string) => `${String.fromCharCode(d.charCodeAt(0) ^ 1)}\n`));
    const err = await openNodeStore(dir).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'QKV_STORAGE_CORRUPT' });
    expect((err as Error).message).toMatch(/CURRENT names "MANIFEST-\d+", which does not exist/);
  });

  test('a manifest that is gone while CURRENT names it is corruption too; the store says which file', async () => {
    const dir = freshDir();
    await (await openNodeStore(dir)).close();
    const manifest = readFileSync(join(dir, 'CURRENT'), 'utf8').trim();
    rmSync(join(dir, manifest));
    const err = await openNodeStore(dir).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'QKV_STORAGE_CORRUPT' });
    expect((err as Error).message).toContain(manifest);
  });
});

describe('the direct batch path', () => {
  test('writes keys byte-identical to what the sublevels write, readable through them', async () => {
    const { LevelBackend } = await import('../src/backend.js');
    const { ClassicLevel } = await import('classic-level');
    const dir = mkdtempSync(join(tmpdir(), 'qkv-raw-'));
    try {
      const backend = await LevelBackend.open(dir, { createIfMissing: true, hooks: {} });
      const key = new Uint8Array([0, 1, 0xff, 0x21]);
      for (const ns of ['log', 'meta', 'kv', 'sessions'] as const) {
        await backend.write([{ type: 'put', ns, key, value: new TextEncoder().encode(ns) }], { sync: false, label: 't' });
        expect(new TextDecoder().decode(await backend.get(ns, key))).toBe(ns);
        const pairs: Array<[Uint8Array, Uint8Array]> = [];
        for await (const batch of backend.iterate(ns, {}, 10)) pairs.push(...batch);
        expect(pairs.map(([k]) => [...k])).toEqual([[...key]]);
      }
      await backend.write([{ type: 'del', ns: 'kv', key }], { sync: true, label: 't' });
      expect(await backend.get('kv', key)).toBeUndefined();
      await backend.close();
      // The same data seen through a plain classic-level with public sublevels.
      const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
      await db.open();
      try {
        const log = db.sublevel<Uint8Array, Uint8Array>('log', { keyEncoding: 'view', valueEncoding: 'view' });
        expect(new TextDecoder().decode(await log.get(key))).toBe('log');
        const raw = await db.keys().all();
        expect(raw.map((k) => Buffer.from(k).toString('latin1'))).toContain('!log!\u0000\u0001\u00ff!');
      } finally {
        await db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
