// The forgetting filesystem (tools/forgetfs): build it, mount it under the temporary directory,
// drive its faults (power loss, torn write, slow fsync, EIO/ENOSPC) and unmount it — always,
// even when the caller fails: every mount is also unmounted when this process exits.
//
//   const fs = await mountForgetfs({ store: '/tmp/x/store', mountpoint: '/tmp/x/mnt' });
//   …                                    // a node runs with its data directory inside fs.mountpoint
//   await fs.powerLoss();                // node stopped first: unsynced changes are gone
//   await fs.unmount();

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the filesystem's sources live (the repository's tools/forgetfs), from src/ or dist/. */
export const FORGETFS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tools', 'forgetfs');
/** The built binary (`make -C tools/forgetfs`). */
export const FORGETFS_BIN = join(FORGETFS_DIR, 'build', 'forgetfs');
/** The control file at the root of a mount (not listed by readdir). */
export const FORGETFS_CONTROL = '.forgetfs';
/** Longest wait for a mount to appear or a daemon to exit. */
export const FORGETFS_MOUNT_WAIT_MS = 5_000;
/** Poll interval while waiting for a mount to appear or go. */
const POLL_MS = 20;
/** Unmount attempts while the mount is busy (back-off POLL_MS × attempt: about 1 s in all). */
const UNMOUNT_ATTEMPTS_MAX = 10;

/** The forgetting filesystem cannot be built, mounted or driven. */
export class ForgetfsError extends Error {
  readonly code: 'FORGETFS_UNAVAILABLE' | 'FORGETFS_MOUNT' | 'FORGETFS_CONTROL';
  constructor(code: ForgetfsError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'ForgetfsError';
  }
}

/** A fault the filesystem injects until changed; see tools/forgetfs/forgetfs.c. */
export type ForgetfsFault =
  /** Every fsync of a name matching `glob` (a basename pattern, default every name) first sleeps `ms`. */
  | { kind: 'delay-fsync'; ms: number; glob?: string }
  | { kind: 'fail'; errno: 'eio' | 'enospc' | 'none' };

/** Longest glob the filesystem accepts for a fsync delay. */
export const FORGETFS_GLOB_CHARS_MAX = 63;

/**
 * Builds the filesystem if its binary is missing or older than its source; returns why it
 * cannot be used (no libfuse3-dev, no /dev/fuse, no fusermount3), or null when it can.
 */
export function forgetfsUnavailable(): string | null {
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse on this machine';
  if (spawnSync('fusermount3', ['-V']).error) return 'fusermount3 is missing (apt-get install fuse3)';
  const r = spawnSync('make', ['-s', '-C', FORGETFS_DIR], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `building forgetfs failed (needs gcc, make, pkg-config, libfuse3-dev): ${r.error?.message ?? r.stderr.trim()}`;
  return null;
}

/** Mounts currently up in this process, unmounted at exit whatever happened. */
const live = new Set<string>();
process.once('exit', () => {
  for (const m of live) spawnSync('fusermount3', ['-u', '-z', m]);
});

/** Options of {@link mountForgetfs}. */
export interface ForgetfsOptions {
  /** Directory holding the files (`data/`) and the restore links (`keep/`); kept across mounts. */
  store: string;
  /** Where to mount; must lie under the temporary directory. */
  mountpoint: string;
}

/** A mounted forgetting filesystem. */
export interface ForgetfsMount {
  readonly mountpoint: string;
  readonly store: string;
  /** Discards every unsynced change (optionally leaving the last write torn), then remounts. */
  powerLoss(options?: { torn?: boolean }): Promise<void>;
  /** Injects or clears a fault. */
  inject(fault: ForgetfsFault): void;
  /** The daemon's counters: files, dirs, undo_bytes, fsyncs, powerlosses, … */
  stats(): Record<string, number>;
  unmount(): Promise<void>;
}

/** Mounts the forgetting filesystem; throws {@link ForgetfsError} when it cannot. */
export async function mountForgetfs(options: ForgetfsOptions): Promise<ForgetfsMount> {
  const why = forgetfsUnavailable();
  if (why) throw new ForgetfsError('FORGETFS_UNAVAILABLE', why);
  const tmp = realpathSync(tmpdir());
  if (!resolve(options.mountpoint).startsWith(tmp + sep)) throw new ForgetfsError('FORGETFS_MOUNT', `refusing to mount outside ${tmp}: ${options.mountpoint}`);
  mkdirSync(options.store, { recursive: true });
  mkdirSync(options.mountpoint, { recursive: true });
  const mountpoint = realpathSync(options.mountpoint);
  let daemon = await startDaemon(options.store, mountpoint);
  const control = (cmd: string): void => {
    try {
      writeFileSync(join(mountpoint, FORGETFS_CONTROL), cmd);
    } catch (cause) {
      throw new ForgetfsError('FORGETFS_CONTROL', `forgetfs at ${mountpoint} refused "${cmd}"`, { cause });
    }
  };
  return {
    mountpoint,
    store: options.store,
    async powerLoss(o = {}) {
      control(o.torn ? 'powerloss-torn' : 'powerloss');
      await stopDaemon(daemon, mountpoint);
      daemon = await startDaemon(options.store, mountpoint);
    },
    inject(fault) {
      control(fault.kind === 'delay-fsync' ? `delay-fsync-ms ${fault.ms} ${globOf(fault)}` : `fail ${fault.errno}`);
    },
    stats() {
      const words = readFileSync(join(mountpoint, FORGETFS_CONTROL), 'utf8').trim().split(/\s+/);
      const out: Record<string, number> = {};
      for (let i = 0; i + 1 < words.length; i += 2) out[words[i]!] = Number(words[i + 1]);
      return out;
    },
    unmount: () => stopDaemon(daemon, mountpoint),
  };
}

function globOf(fault: { glob?: string }): string {
  const glob = fault.glob ?? '*';
  if (!/^\S+$/.test(glob) || glob.length > FORGETFS_GLOB_CHARS_MAX) throw new ForgetfsError('FORGETFS_CONTROL', `bad fsync-delay glob ${JSON.stringify(glob)}`);
  return glob;
}

function isMounted(mountpoint: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mountpoint);
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + FORGETFS_MOUNT_WAIT_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new ForgetfsError('FORGETFS_MOUNT', `timed out after ${FORGETFS_MOUNT_WAIT_MS} ms: ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function startDaemon(store: string, mountpoint: string): Promise<ChildProcess> {
  const child = spawn(FORGETFS_BIN, [store, mountpoint, '-f', '-o', 'auto_unmount'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4096)));
  live.add(mountpoint);
  try {
    await waitFor(() => isMounted(mountpoint) || child.exitCode !== null, `mounting ${mountpoint}`);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  if (!isMounted(mountpoint)) throw new ForgetfsError('FORGETFS_MOUNT', `forgetfs exited while mounting ${mountpoint}: ${stderr.trim()}`);
  return child;
}

/**
 * Unmounts: a file closed a moment ago may still hold the mount busy (the kernel releases it
 * asynchronously), so a busy unmount is retried; if it stays busy, the mount is detached lazily
 * (no mount is ever left behind) and the error names it.
 */
async function unmount(mountpoint: string): Promise<void> {
  let lastError: unknown;
  for (let attempt = 0; attempt < UNMOUNT_ATTEMPTS_MAX && isMounted(mountpoint); attempt++) {
    try {
      execFileSync('fusermount3', ['-u', mountpoint], { stdio: 'pipe' });
      return;
    } catch (e) {
      lastError = e;
      await new Promise((r) => setTimeout(r, POLL_MS * (attempt + 1)));
    }
  }
  if (!isMounted(mountpoint)) return;
  spawnSync('fusermount3', ['-u', '-z', mountpoint]);
  throw new ForgetfsError('FORGETFS_MOUNT', `${mountpoint} stayed busy after ${UNMOUNT_ATTEMPTS_MAX} attempts (a process still uses it?); detached it lazily`, { cause: lastError });
}

async function stopDaemon(child: ChildProcess, mountpoint: string): Promise<void> {
  try {
    await unmount(mountpoint);
  } finally {
    live.delete(mountpoint);
    await reap(child);
  }
}

/** Waits (bounded) for the daemon to exit after its unmount; kills it if it does not. */
async function reap(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    await Promise.race([exited, new Promise((r) => setTimeout(r, FORGETFS_MOUNT_WAIT_MS))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
