// Power loss right after LevelDB switched to a new write-ahead-log file. LevelDB 1.20 creates the
// new NNNNNN.log without syncing its directory; the directory is synced only when the manifest
// that names the file is written, after the old memtable is compacted. An append synced into the
// new file and acknowledged before that would vanish with the file's directory entry. The store
// syncs the directory itself when the newest log file changed (packages/storage/src/backend.ts).
//
// On the forgetting filesystem (tools/forgetfs) with slow fsyncs of table files, so the compaction
// (table fsync, then directory and manifest sync) is still running when the append that switched
// is acknowledged: the writer is killed at that moment, the power is cut, and every acknowledged
// index must be there.
import { spawn } from 'node:child_process';
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { openNodeStore } from '@quorumkv/storage';
import { describe, expect, it } from 'vitest';
import { forgetfsUnavailable, mountForgetfs } from '../../jepsen-lite/src/forgetfs.js';

/** The delay of each table file's fsync: far longer than an append takes to be acknowledged. */
const TABLE_FSYNC_DELAY_MS = 1_000;
/** Bound on the writer's run (a switch needs about 16 appends). */
const WRITER_DEADLINE_MS = 30_000;

const why = forgetfsUnavailable();
if (why && process.env.CI === 'true') throw new Error(`forgetfs is required under CI=true: ${why}`);

/** Runs the writer until it reports the switch; returns the last acknowledged index, then kills it. */
async function writeUntilWalSwitch(dataDir: string): Promise<{ acked: number; switched: string }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'wal-switch-writer.mjs'), dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), WRITER_DEADLINE_MS);
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      const msg = JSON.parse(line) as { acked?: number; switched?: string; error?: string };
      if (msg.error) throw new Error(msg.error);
      if (msg.switched !== undefined && msg.acked !== undefined) return { acked: msg.acked, switched: msg.switched };
    }
    throw new Error(`the writer exited (code ${child.exitCode}) before a WAL switch`);
  } finally {
    clearTimeout(timer);
    const exited = new Promise((r) => child.once('exit', r));
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL'); // the power cut: nothing after the acknowledgement runs
      await exited;
    }
  }
}

describe.skipIf(why !== null)('power loss after a write-ahead-log switch', () => {
  it('keeps every acknowledged append, the one synced into the new log file too', async () => {
    const base = mkdtempSync(join(tmpdir(), 'qkv-wal-switch-'));
    const fs = await mountForgetfs({ store: join(base, 'store'), mountpoint: join(base, 'mnt') });
    try {
      const dataDir = join(fs.mountpoint, 'n1');
      // Create the data directory (durably: its own entry too) and the store first, then slow
      // the table files' fsyncs down.
      mkdirSync(dataDir);
      const root = openSync(fs.mountpoint, 'r');
      fsyncSync(root);
      closeSync(root);
      await (await openNodeStore(dataDir)).close();
      fs.inject({ kind: 'delay-fsync', ms: TABLE_FSYNC_DELAY_MS, glob: '*.ldb' });
      const { acked, switched } = await writeUntilWalSwitch(dataDir);
      fs.inject({ kind: 'delay-fsync', ms: 0 });
      await fs.powerLoss();

      const store = await openNodeStore(dataDir);
      try {
        const loaded = await store.log.load();
        expect({ switched, last: loaded.entries.at(-1)?.index, shortfall: store.log.shortfall() }).toEqual({ switched, last: acked, shortfall: undefined });
      } finally {
        await store.close();
      }
    } finally {
      await fs.unmount();
      rmSync(base, { recursive: true, force: true });
    }
  });
});
