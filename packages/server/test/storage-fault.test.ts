// Which failures stop the node for a probe-and-restart (storage-fault.ts) and which still end the
// process, read from the errors the store really raises; the probe's back-off is bounded.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StorageCorruptError, StorageIoError } from '@quorumkv/storage';
import { describe, expect, it } from 'vitest';
import { STORAGE_PROBE_BACKOFF_MAX_MS, STORAGE_PROBE_BACKOFF_MIN_MS, probeDelayMs, probeWritable, storageFaultKindOf } from '../src/storage-fault.js';

/** LevelDB's error for a failed append, as classic-level raises it (no errno code, the text only). */
const levelEnospc = new Error('IO error: /data/000003.log: No space left on device');
/** Node's error for a failed write of the high-water mark. */
const nodeEnospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
const nodeEio = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });

describe('storageFaultKindOf', () => {
  it('finds ENOSPC and EIO through the cause chain, in LevelDB text or as an errno code', () => {
    expect(storageFaultKindOf(new StorageIoError('/data', 'write "kv.apply" failed', { cause: levelEnospc }))).toBe('disk-full');
    expect(storageFaultKindOf(new StorageIoError('/data', 'write "mark" failed', { cause: nodeEnospc }))).toBe('disk-full');
    const poisoned = new StorageIoError('/data', 'an earlier write failed; close and reopen the store', { cause: nodeEio });
    expect(storageFaultKindOf(poisoned)).toBe('io');
    expect(storageFaultKindOf(new StorageIoError('/data', 'write "log.append" failed', { cause: new Error('IO error: /data/000005.log: Input/output error') }))).toBe('io');
  });

  it('leaves corruption and broken invariants to end the process', () => {
    expect(storageFaultKindOf(new StorageCorruptError('/data', 'log segment 3 checksum mismatch'))).toBeUndefined();
    expect(storageFaultKindOf(new Error('invariant: applied <= committed'))).toBeUndefined();
    expect(storageFaultKindOf('ENOSPC')).toBeUndefined();
    expect(storageFaultKindOf(new StorageIoError('/data', 'the database is locked by another process', { cause: Object.assign(new Error('locked'), { code: 'LEVEL_LOCKED' }) }))).toBeUndefined();
  });
});

describe('probe', () => {
  it('backs off from the minimum, doubling, never past the maximum', () => {
    const delays = Array.from({ length: 40 }, (_, i) => probeDelayMs(i));
    expect(delays.slice(0, 3)).toEqual([STORAGE_PROBE_BACKOFF_MIN_MS, 2 * STORAGE_PROBE_BACKOFF_MIN_MS, 4 * STORAGE_PROBE_BACKOFF_MIN_MS]);
    expect(Math.max(...delays)).toBe(STORAGE_PROBE_BACKOFF_MAX_MS);
    expect(delays.every((d, i) => i === 0 || d >= delays[i - 1]!)).toBe(true);
  });

  it('succeeds on a writable directory and leaves no file behind; fails on a missing one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qkv-probe-'));
    try {
      expect(await probeWritable(dir)).toBe(true);
      expect(readdirSync(dir)).toEqual([]);
      expect(await probeWritable(join(dir, 'gone'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
