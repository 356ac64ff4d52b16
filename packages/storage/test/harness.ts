// Harnesses for the shared conformance suite: one per backend. A harness owns one "disk" and
// opens stores on it; closing and reopening simulates a restart.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { MemoryDisk, type NodeStore, type NodeStoreOptions, openMemoryNodeStore, openNodeStore } from '@quorumkv/storage';
import { type Backend, type BatchOp, LevelBackend, MemoryBackend } from '../src/backend.js';
import { seal } from '../src/checksum.js';

export type RawNamespace = 'log' | 'meta' | 'kv' | 'sessions' | 'history';

/** One simulated machine: a disk, and stores opened on it. */
export interface Harness {
  /** What error messages name (directory, or "memory"). */
  readonly location: string;
  open(options?: NodeStoreOptions): Promise<NodeStore>;
  /**
   * Writes a raw pair, bypassing the stores (the store must be closed). `log` and `meta` values
   * (but the format record) get their checksum seal, as the stores write them; see `rawPutUnsealed`.
   */
  rawPut(ns: RawNamespace, key: Uint8Array, value: Uint8Array): Promise<void>;
  /** Writes a raw pair exactly as given (no seal). */
  rawPutUnsealed(ns: RawNamespace, key: Uint8Array, value: Uint8Array): Promise<void>;
  /** Reads a raw value (the store must be closed). */
  rawGet(ns: RawNamespace, key: Uint8Array): Promise<Uint8Array | undefined>;
  /** Deletes a raw key (the store must be closed). */
  rawDel(ns: RawNamespace, key: Uint8Array): Promise<void>;
  /** Number of raw keys in a namespace (the store must be closed). */
  rawCount(ns: RawNamespace): Promise<number>;
  /** The raw keys of a namespace, in order (the store must be closed). */
  rawKeys(ns: RawNamespace): Promise<Uint8Array[]>;
  /** The bare backend on this disk, for tests of one store class (no store may be open). */
  openBackend(): Promise<Backend>;
  cleanup(): Promise<void>;
}

export type HarnessFactory = () => Promise<Harness>;

const FORMAT_KEY = new TextEncoder().encode('format');

/** The value a store would write for a raw record: sealed in `log` and `meta` (but `format`). */
export function sealedAsStored(ns: RawNamespace, key: Uint8Array, value: Uint8Array): Uint8Array {
  const sealed = ns === 'log' || (ns === 'meta' && !Buffer.from(key).equals(FORMAT_KEY));
  return sealed ? seal(key, value) : value;
}

export const memoryHarness: HarnessFactory = async () => {
  const disk = new MemoryDisk();
  const k = (key: Uint8Array) => Buffer.from(key).toString('latin1');
  return {
    location: 'memory',
    open: (options) => openMemoryNodeStore(disk, options),
    rawPut: async (ns, key, value) => void disk.data[ns].set(k(key), [key, sealedAsStored(ns, key, value)]),
    rawPutUnsealed: async (ns, key, value) => void disk.data[ns].set(k(key), [key, value]),
    rawGet: async (ns, key) => disk.data[ns].get(k(key))?.[1],
    rawDel: async (ns, key) => void disk.data[ns].delete(k(key)),
    rawCount: async (ns) => disk.data[ns].size,
    rawKeys: async (ns) => [...disk.data[ns].entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, [key]]) => key),
    openBackend: async () => new MemoryBackend(disk),
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
    rawPut: (ns, key, value) => withSub(ns, (sub) => sub.put(key, sealedAsStored(ns, key, value))),
    rawPutUnsealed: (ns, key, value) => withSub(ns, (sub) => sub.put(key, value)),
    rawGet: (ns, key) => withSub(ns, async (sub) => (await sub.get(key)) ?? undefined),
    rawDel: (ns, key) => withSub(ns, (sub) => sub.del(key)),
    rawCount: (ns) => withSub(ns, async (sub) => (await sub.keys().all()).length),
    rawKeys: (ns) => withSub(ns, async (sub) => (await sub.keys().all()).map((key) => new Uint8Array(key))),
    openBackend: () => LevelBackend.open(dir, { createIfMissing: true, hooks: {} }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
};

/** A Backend that passes everything through and records every batch written (to count ops). */
export class RecordingBackend implements Backend {
  /** Every batch written, in order. */
  readonly writes: Array<{ label: string; ops: BatchOp[] }> = [];
  constructor(private readonly inner: Backend) {}
  get location(): string {
    return this.inner.location;
  }
  get: Backend['get'] = (ns, key) => this.inner.get(ns, key);
  getMany: Backend['getMany'] = (ns, keys) => this.inner.getMany(ns, keys);
  iterate: Backend['iterate'] = (ns, range, batchSize) => this.inner.iterate(ns, range, batchSize);
  clear: Backend['clear'] = (ns, range, label) => this.inner.clear(ns, range, label);
  snapshot: Backend['snapshot'] = () => this.inner.snapshot();
  isEmpty: Backend['isEmpty'] = () => this.inner.isEmpty();
  close: Backend['close'] = () => this.inner.close();
  readMarkFile: Backend['readMarkFile'] = () => this.inner.readMarkFile();
  writeMarkFile: Backend['writeMarkFile'] = (offset, bytes) => this.inner.writeMarkFile(offset, bytes);
  async write(ops: BatchOp[], options: { sync: boolean; label: string }): Promise<void> {
    this.writes.push({ label: options.label, ops: [...ops] });
    await this.inner.write(ops, options);
  }
}

/**
 * A RecordingBackend through which, once a kind of write is cut, writes of that kind never reach
 * the disk (they throw without touching it, as if the machine stopped before they were issued)
 * while the others still land: a crash between two concurrent writes, in either order.
 */
export class CrashingBackend extends RecordingBackend {
  /** Log appends ('log.append' batches) stop reaching the disk. */
  cutAppends = false;
  /** High-water-mark writes stop reaching the disk. */
  cutMark = false;
  override async write(ops: BatchOp[], options: { sync: boolean; label: string }): Promise<void> {
    if (this.cutAppends && options.label === 'log.append') throw new Error('crash: the append never reached the disk');
    await super.write(ops, options);
  }
  override writeMarkFile: Backend['writeMarkFile'] = async (offset, bytes) => {
    if (this.cutMark) throw new Error('crash: the mark record never reached the disk');
    await this.innerBackend.writeMarkFile(offset, bytes);
  };
  constructor(private readonly innerBackend: Backend) {
    super(innerBackend);
  }
}
