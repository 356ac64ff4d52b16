// The forgetting filesystem on its own: what survives a simulated power loss is exactly what was
// synced (the file for its bytes, the directory for its entries), and its other faults work.
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ForgetfsMount } from '../src/forgetfs.js';
import { ForgetfsError, forgetfsUnavailable, mountForgetfs } from '../src/forgetfs.js';

const why = forgetfsUnavailable();
if (why && process.env.CI === 'true') throw new Error(`forgetfs is required under CI=true: ${why}`);
if (why) console.warn(`skipping forgetfs tests: ${why}`);

/** fsync of a file or directory by path. */
function sync(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `text` at the end of `path` (created if missing) without syncing. */
function append(path: string, text: string): void {
  const fd = openSync(path, 'a');
  writeSync(fd, text);
  closeSync(fd);
}

describe.skipIf(why !== null)('forgetfs', () => {
  let base: string;
  let fs: ForgetfsMount;
  let m: string;
  beforeEach(async () => {
    base = mkdtempSync(join(tmpdir(), 'forgetfs-'));
    fs = await mountForgetfs({ store: join(base, 'store'), mountpoint: join(base, 'mnt') });
    m = fs.mountpoint;
  });
  afterEach(async () => {
    await fs.unmount();
    rmSync(base, { recursive: true, force: true });
  });

  it('forgets a write that was not synced, and a file whose entry was not synced', async () => {
    append(join(m, 'log'), 'synced;');
    sync(join(m, 'log'));
    sync(m);
    append(join(m, 'log'), 'lost;');
    writeFileSync(join(m, 'new'), 'never synced');
    await fs.powerLoss();
    expect(readFileSync(join(m, 'log'), 'utf8')).toBe('synced;');
    expect(existsSync(join(m, 'new'))).toBe(false);
  });

  it('keeps what was synced: the file for its bytes, the directory for its entry', async () => {
    writeFileSync(join(m, 'a'), 'kept');
    sync(join(m, 'a'));
    sync(m);
    // Synced bytes of a file whose directory entry was not synced: the entry (and so the file) goes.
    writeFileSync(join(m, 'b'), 'orphan');
    sync(join(m, 'b'));
    await fs.powerLoss();
    expect(readdirSync(m).sort()).toEqual(['a']);
    expect(readFileSync(join(m, 'a'), 'utf8')).toBe('kept');
  });

  it('forgets a rename whose directory was not synced, and brings back an unlinked file', async () => {
    writeFileSync(join(m, 'x.tmp'), 'payload');
    sync(join(m, 'x.tmp'));
    writeFileSync(join(m, 'gone'), 'still here');
    sync(join(m, 'gone'));
    sync(m);
    renameSync(join(m, 'x.tmp'), join(m, 'x'));
    unlinkSync(join(m, 'gone'));
    await fs.powerLoss();
    expect(readdirSync(m).sort()).toEqual(['gone', 'x.tmp']);
    expect(readFileSync(join(m, 'x.tmp'), 'utf8')).toBe('payload');
    expect(readFileSync(join(m, 'gone'), 'utf8')).toBe('still here');
  });

  it('undoes overwrites and truncations of synced bytes (also through a write-only, truncating open) in a synced subdirectory', async () => {
    const d = join(m, 'sub');
    mkdirSync(d);
    writeFileSync(join(d, 'f'), '0123456789');
    sync(join(d, 'f'));
    sync(d);
    sync(m);
    const fd = openSync(join(d, 'f'), 'r+');
    writeSync(fd, 'abc', 2);
    ftruncateSync(fd, 4);
    writeSync(fd, 'tail', 8);
    closeSync(fd);
    writeFileSync(join(d, 'g'), 'synced');
    sync(join(d, 'g'));
    sync(d);
    writeFileSync(join(d, 'g'), 'rewritten, write-only and truncating');
    await fs.powerLoss();
    expect(readFileSync(join(d, 'f'), 'utf8')).toBe('0123456789');
    expect(readFileSync(join(d, 'g'), 'utf8')).toBe('synced');
  });

  it('frees a deleted file once nothing can bring it back (its directory synced)', async () => {
    writeFileSync(join(m, 'old.ldb'), 'x'.repeat(4096));
    sync(join(m, 'old.ldb'));
    sync(m);
    unlinkSync(join(m, 'old.ldb'));
    // Until the directory is synced, a power loss must be able to bring it back: it is kept.
    expect(readdirSync(join(fs.store, 'keep')).length).toBeGreaterThan(0);
    sync(m);
    expect(readdirSync(join(fs.store, 'keep'))).toEqual([]);
    await fs.powerLoss();
    expect(readdirSync(m)).toEqual([]);
  });

  it('forgets a synced directory whose own entry was not synced, contents and all', async () => {
    const d = join(m, 'unsynced-dir');
    mkdirSync(d);
    writeFileSync(join(d, 'f'), 'synced inside');
    sync(join(d, 'f'));
    sync(d);
    await fs.powerLoss();
    expect(readdirSync(m)).toEqual([]);
  });

  it('can leave the last unsynced write torn: half of it survives', async () => {
    writeFileSync(join(m, 'wal'), '');
    sync(join(m, 'wal'));
    sync(m);
    append(join(m, 'wal'), 'AAAAAAAA');
    await fs.powerLoss({ torn: true });
    expect(readFileSync(join(m, 'wal'), 'utf8')).toBe('AAAA');
  });

  it('fails writes with ENOSPC or EIO on command, delays fsync, and refuses unknown commands', () => {
    fs.inject({ kind: 'fail', errno: 'enospc' });
    expect(() => writeFileSync(join(m, 'f'), 'x')).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
    fs.inject({ kind: 'fail', errno: 'eio' });
    expect(() => writeFileSync(join(m, 'f'), 'x')).toThrow(expect.objectContaining({ code: 'EIO' }));
    fs.inject({ kind: 'fail', errno: 'none' });
    writeFileSync(join(m, 'f'), 'x');
    fs.inject({ kind: 'delay-fsync', ms: 150 });
    const t0 = performance.now();
    sync(join(m, 'f'));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    fs.inject({ kind: 'delay-fsync', ms: 0 });
    expect(fs.stats().delay_fsync_ms).toBe(0);
    expect(() => fs.inject({ kind: 'delay-fsync', ms: -1 })).toThrow(ForgetfsError);
  });

  it('refuses to mount outside the temporary directory', async () => {
    await expect(mountForgetfs({ store: join(base, 's2'), mountpoint: '/var/forgetfs-test-mnt' })).rejects.toThrow(/refusing to mount outside/);
    expect(existsSync('/var/forgetfs-test-mnt')).toBe(false);
  });
});
