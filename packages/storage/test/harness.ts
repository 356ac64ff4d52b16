// Harnesses for the shared conformance suite: one per backend. A harness owns one "disk" and
// opens stores on it; closing and reopening simulates a restart.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { MemoryDisk, type NodeStore, type NodeStoreOptions, openMemoryNodeStore, openNodeStore } from '@quorumkv/storage';

export type RawNamespace = 'log' | 'meta' | 'kv' | 'sessions';

/** One simulated machine: a disk, and stores opened on it. */
export interface Harness {
  /** What error messages name (directory, or "memory"). */
  readonly location: string;
  open(options?: NodeStoreOptions): Promise<NodeStore>;
  /** Writes a raw pair, bypassing the stores (the store must be closed). */
  rawPut(ns: RawNamespace, key: Uint8Array, value: Uint8Array): Promise<void>;
  /** Deletes a raw key (the store must be closed). */
  rawDel(ns: RawNamespace, key: Uint8Array): Promise<void>;
  /** Number of raw keys in a namespace (the store must be closed). */
  rawCount(ns: RawNamespace): Promise<number>;
  cleanup(): Promise<void>;
}

export type HarnessFactory = () => Promise<Harness>;

export const memoryHarness: HarnessFactory = async () => {
  const disk = new MemoryDisk();
  const k = (key: Uint8Array) => Buffer.from(key).toString('latin1');
  return {
    location: 'memory',
    open: (options) => openMemoryNodeStore(disk, options),
    rawPut: async (ns, key, value) => void disk.data[ns].set(k(key), [key, value]),
    rawDel: async (ns, key) => void disk.data[ns].delete(k(key)),
    rawCount: async (ns) => disk.data[ns].size,
    cleanup: async () => {},
  };
};

export const levelHarness: HarnessFactory = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qkv-storage-'));
  async function withSub<T>(ns: RawNamespace, run: (sub: ReturnType<ClassicLevel<Uint8Array, Uint8Array>['sublevel']>) => Promise<T>): Promise<T> {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    try {
      return await run(db.sublevel<Uint8Array, Uint8Array>(ns, { keyEncoding: 'view', valueEncoding: 'view' }) as never);
    } finally {
      await db.close();
    }
  }
  return {
    location: dir,
    open: (options) => openNodeStore(dir, options),
    rawPut: (ns, key, value) => withSub(ns, (sub) => sub.put(key, value)),
    rawDel: (ns, key) => withSub(ns, (sub) => sub.del(key)),
    rawCount: (ns) => withSub(ns, async (sub) => (await sub.keys().all()).length),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
};
