// LevelDB-specific failure modes of opening a store (the memory twin has no files).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
});
