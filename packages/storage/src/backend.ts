// The ordered key-value backend under every store: four namespaces, atomic multi-namespace
// batches, range iteration, point-in-time views. `LevelBackend` is the real one (classic-level);
// `MemoryBackend` is its in-memory twin. The stores above are written once against this
// interface, so the LevelDB stores and the memory twins share their logic and differ only here.
import { type FileHandle, open as openFile, readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { compareBytes } from './codec.js';
import { StorageCorruptError, StorageIoError, assert } from './errors.js';

/** The sublevels of a node's database. */
export type Namespace = 'log' | 'meta' | 'kv' | 'sessions' | 'history';
/** Every namespace, in a fixed order. */
export const NAMESPACES: readonly Namespace[] = ['log', 'meta', 'kv', 'sessions', 'history'];

/** One write of an atomic batch. */
export type BatchOp =
  | { type: 'put'; ns: Namespace; key: Uint8Array; value: Uint8Array }
  | { type: 'del'; ns: Namespace; key: Uint8Array };

/** A key range: [gte, lt), either bound optional. */
export interface KeyRange {
  gte?: Uint8Array;
  lt?: Uint8Array;
  reverse?: boolean;
  limit?: number;
}

/** Reads, either of the live database or of a point-in-time view. */
export interface ReadView {
  get(ns: Namespace, key: Uint8Array): Promise<Uint8Array | undefined>;
  /** Point reads of many keys in one call (one round trip to LevelDB's thread pool). */
  getMany(ns: Namespace, keys: Uint8Array[]): Promise<Array<Uint8Array | undefined>>;
  /** Yields the range in batches of at most `batchSize` pairs, awaiting between batches. */
  iterate(ns: Namespace, range: KeyRange, batchSize: number): AsyncGenerator<Array<[Uint8Array, Uint8Array]>>;
}

/** A consistent point-in-time view; close it when done. */
export interface SnapshotView extends ReadView {
  close(): Promise<void>;
}

/**
 * Test-only fault injection: `beforeWrite(label)` runs before every batch or clear reaches the
 * backend; throwing from it simulates a crash at that point (the write does not happen).
 */
export interface TestHooks {
  beforeWrite?(label: string): void;
}

/** The backend interface. A failed write poisons the backend: every later call throws. */
export interface Backend extends ReadView {
  readonly location: string;
  write(ops: BatchOp[], options: { sync: boolean; label: string }): Promise<void>;
  /** Deletes a range; NOT atomic (used only for garbage that is unreachable). */
  clear(ns: Namespace, range: { gte?: Uint8Array; lt?: Uint8Array }, label: string): Promise<void>;
  snapshot(): Promise<SnapshotView>;
  isEmpty(): Promise<boolean>;
  close(): Promise<void>;
  /** The bytes of the high-water-mark file (high-water.ts), kept outside the database; undefined if none. */
  readMarkFile(): Promise<Uint8Array | undefined>;
  /** Writes `bytes` at `offset` of the high-water-mark file and makes them durable before resolving. */
  writeMarkFile(offset: number, bytes: Uint8Array): Promise<void>;
}

/**
 * The high-water-mark file in a LevelDB directory: a file of its own, not a LevelDB record, so
 * damage to LevelDB's journal cannot take it along (LevelDB ignores files it did not name).
 */
export const MARK_FILE = 'HIGH_WATER';

/** Max pairs read per iterator step when a caller asks for everything. */
export const ITERATE_BATCH_MAX = 256;

/** Shared poisoning logic: after a failed write, nothing may be trusted until reopen. */
abstract class BaseBackend {
  private failure: unknown;
  protected closed = false;
  constructor(
    readonly location: string,
    protected readonly hooks: TestHooks,
  ) {}

  protected check(): void {
    if (this.failure !== undefined) {
      throw new StorageIoError(this.location, 'an earlier write failed; close and reopen the store', {
        cause: this.failure,
      });
    }
    if (this.closed) throw new StorageIoError(this.location, 'the store is closed');
  }

  protected async guardedWrite(label: string, run: () => Promise<void>): Promise<void> {
    this.check();
    try {
      this.hooks.beforeWrite?.(label);
      await run();
    } catch (err) {
      this.failure = err;
      throw err instanceof StorageIoError ? err : new StorageIoError(this.location, `write "${label}" failed`, { cause: err });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// LevelDB

type Bytes = Uint8Array;
type Db = ClassicLevel<Bytes, Bytes>;
type Sub = ReturnType<Db['sublevel']>;
type LevelSnapshot = ReturnType<Db['snapshot']>;

/** The classic-level backend. One LevelDB per node; namespaces are sublevels. */
export class LevelBackend extends BaseBackend implements Backend {
  private constructor(
    location: string,
    hooks: TestHooks,
    private readonly db: Db,
    private readonly subs: Record<Namespace, Sub>,
  ) {
    super(location, hooks);
    const prefixes = {} as Record<Namespace, Uint8Array>;
    for (const ns of NAMESPACES) prefixes[ns] = sublevelPrefix(subs[ns]);
    this.prefixes = prefixes;
  }

  /** The byte prefix of each namespace's keys in the root database. */
  private readonly prefixes: Record<Namespace, Uint8Array>;

  /** Opens (creating when allowed) the database at `dir`. Maps LevelDB failures to typed errors. */
  static async open(dir: string, options: { createIfMissing: boolean; hooks: TestHooks }): Promise<LevelBackend> {
    const db: Db = new ClassicLevel<Bytes, Bytes>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    try {
      await db.open({ createIfMissing: options.createIfMissing });
    } catch (err) {
      throw levelOpenError(dir, err);
    }
    const subs = {} as Record<Namespace, Sub>;
    for (const ns of NAMESPACES) {
      subs[ns] = db.sublevel<Bytes, Bytes>(ns, { keyEncoding: 'view', valueEncoding: 'view' }) as unknown as Sub;
    }
    return new LevelBackend(dir, options.hooks, db, subs);
  }

  async get(ns: Namespace, key: Uint8Array, snapshot?: LevelSnapshot): Promise<Uint8Array | undefined> {
    this.check();
    return (await this.subs[ns].get(key, snapshot ? { snapshot } : {})) ?? undefined;
  }

  async getMany(ns: Namespace, keys: Uint8Array[], snapshot?: LevelSnapshot): Promise<Array<Uint8Array | undefined>> {
    this.check();
    if (keys.length === 0) return [];
    const values = (await this.subs[ns].getMany(keys, snapshot ? { snapshot } : {})) as Array<Uint8Array | undefined>;
    return values.map((v) => v ?? undefined);
  }

  async *iterate(
    ns: Namespace,
    range: KeyRange,
    batchSize: number,
    snapshot?: LevelSnapshot,
  ): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> {
    this.check();
    const options: Record<string, unknown> = { reverse: range.reverse ?? false, limit: range.limit ?? -1 };
    if (range.gte) options['gte'] = range.gte;
    if (range.lt) options['lt'] = range.lt;
    if (snapshot) options['snapshot'] = snapshot;
    const it = this.subs[ns].iterator(options);
    try {
      for (;;) {
        const items = await it.nextv(batchSize);
        if (items.length === 0) return;
        yield items as Array<[Uint8Array, Uint8Array]>;
      }
    } finally {
      await it.close();
    }
  }

  async write(ops: BatchOp[], options: { sync: boolean; label: string }): Promise<void> {
    if (ops.length === 0) return;
    await this.guardedWrite(options.label, async () => {
      // Hot path (every log append and every apply): hand classic-level's private batch method
      // keys that already carry their sublevel prefix. The public batch() re-validates, clones,
      // encodes and prefixes every op in JavaScript, which cost about as much CPU as LevelDB's
      // own work. The keys are byte-identical to what the sublevels write (a test checks it).
      //
      // All keys go into one off-heap buffer: LevelDB reads them through N-API, and V8 moves a
      // small on-heap Uint8Array (≤ 64 bytes, i.e. every key) off the heap on that access — a
      // malloc and a copy per key, which showed up as several % of a node's main thread.
      let keyBytes = 0;
      for (const op of ops) keyBytes += this.prefixes[op.ns].length + op.key.length;
      const keyBuf = Buffer.allocUnsafe(keyBytes);
      let at = 0;
      const levelOps = new Array<{ type: 'put' | 'del'; key: Uint8Array; value?: Uint8Array }>(ops.length);
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i] as BatchOp;
        const prefix = this.prefixes[op.ns];
        keyBuf.set(prefix, at);
        keyBuf.set(op.key, at + prefix.length);
        const end = at + prefix.length + op.key.length;
        const key = keyBuf.subarray(at, end);
        at = end;
        levelOps[i] = op.type === 'put' ? { type: 'put', key, value: op.value } : { type: 'del', key };
      }
      await (this.db as unknown as RawBatch)._batch(levelOps, { sync: options.sync });
      if (options.sync) await this.syncDirIfNewWal();
    });
  }

  /** The newest write-ahead-log file whose directory entry is known to be durable. */
  private durableWal: string | undefined;

  /**
   * Makes the directory entry of LevelDB's current write-ahead log durable, once per log file.
   * LevelDB 1.20 creates a new `NNNNNN.log` when its memtable fills, without syncing the
   * directory; the directory is synced only when the manifest naming the file is written, after
   * the old memtable's compaction. A batch synced into the new file in between is acknowledged,
   * yet a power loss takes the file's name and so the batch with it (test/cluster/power-loss-wal.test.ts).
   * Called after every synced batch: one readdir, and a directory fsync only when the newest
   * log file changed (log numbers only grow, so the newest name is the current log).
   */
  private async syncDirIfNewWal(): Promise<void> {
    const newest = newestWal(await readdir(this.location));
    if (newest === undefined || newest === this.durableWal) return;
    await syncDirectory(this.location);
    this.durableWal = newest;
  }

  async clear(ns: Namespace, range: { gte?: Uint8Array; lt?: Uint8Array }, label: string): Promise<void> {
    await this.guardedWrite(label, async () => {
      const options: Record<string, unknown> = {};
      if (range.gte) options['gte'] = range.gte;
      if (range.lt) options['lt'] = range.lt;
      await this.subs[ns].clear(options);
    });
  }

  async snapshot(): Promise<SnapshotView> {
    this.check();
    const snap = this.db.snapshot();
    return {
      get: (ns, key) => this.get(ns, key, snap),
      getMany: (ns, keys) => this.getMany(ns, keys, snap),
      iterate: (ns, range, batchSize) => this.iterate(ns, range, batchSize, snap),
      close: () => snap.close(),
    };
  }

  async isEmpty(): Promise<boolean> {
    this.check();
    for await (const batch of this.iterateAll({ limit: 1 })) if (batch.length > 0) return false;
    return true;
  }

  private iterateAll(range: KeyRange): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> {
    // Every key of the database, sublevel or not: catches data written by anything.
    const db = this.db;
    return (async function* () {
      const it = db.iterator({ limit: range.limit ?? -1 });
      try {
        const items = await it.nextv(1);
        if (items.length > 0) yield items as Array<[Uint8Array, Uint8Array]>;
      } finally {
        await it.close();
      }
    })();
  }

  private markHandle: FileHandle | undefined;

  async readMarkFile(): Promise<Uint8Array | undefined> {
    this.check();
    try {
      return new Uint8Array(await readFile(join(this.location, MARK_FILE)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StorageIoError(this.location, `could not read ${MARK_FILE}`, { cause: err });
    }
  }

  async writeMarkFile(offset: number, bytes: Uint8Array): Promise<void> {
    await this.guardedWrite('mark', async () => {
      if (!this.markHandle) this.markHandle = await this.openMarkFile();
      await this.markHandle.write(bytes, 0, bytes.length, offset);
      await this.markHandle.datasync();
    });
  }

  /** Opens the mark file for writing; creating it also syncs the directory (the new name must survive). */
  private async openMarkFile(): Promise<FileHandle> {
    const path = join(this.location, MARK_FILE);
    try {
      return await openFile(path, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const handle = await openFile(path, 'w+');
    await handle.datasync();
    await syncDirectory(this.location);
    return handle;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.markHandle?.close().catch(() => undefined);
    await this.db.close();
  }
}

/** fsync of a directory: makes the names created, renamed or removed in it durable. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await openFile(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The newest LevelDB write-ahead-log file (`NNNNNN.log`; LevelDB's own `LOG` is its info log) among `names`. */
export function newestWal(names: readonly string[]): string | undefined {
  let newest: string | undefined;
  for (const n of names) if (/^\d+\.log$/.test(n) && (newest === undefined || n.length > newest.length || (n.length === newest.length && n > newest))) newest = n;
  return newest;
}

/** classic-level's implementation of batch(): already-encoded ops, no validation. */
interface RawBatch {
  _batch(ops: Array<{ type: 'put' | 'del'; key: Uint8Array; value?: Uint8Array }>, options: { sync: boolean }): Promise<void>;
}

/** The bytes a sublevel puts in front of its keys ("!name!" by default). */
function sublevelPrefix(sub: Sub): Uint8Array {
  const prefixKey = (sub as unknown as { prefixKey(key: Uint8Array, format: 'view', local: boolean): Uint8Array }).prefixKey;
  const p = prefixKey.call(sub, new Uint8Array(0), 'view', false);
  assert(p instanceof Uint8Array && p.length > 0, 'sublevel prefix must be non-empty bytes');
  return new Uint8Array(p);
}

function levelOpenError(dir: string, err: unknown): Error {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (err as { code?: string }).code;
  if (code === 'LEVEL_CORRUPTION') return new StorageCorruptError(dir, 'LevelDB reports corruption', { cause: err });
  // CURRENT names the manifest to read; a damaged CURRENT names one that does not exist, which
  // LevelDB reports as an I/O error on that name. It is damage, not a failing disk.
  const missing = /^IO error: \S*\/([^/\s]+): No such file or directory$/.exec(cause?.message ?? '');
  if (code === 'LEVEL_IO_ERROR' && missing && !existsSync(join(dir, missing[1]!))) {
    return new StorageCorruptError(dir, `CURRENT names ${JSON.stringify(missing[1])}, which does not exist (CURRENT is damaged or the manifest was lost)`, { cause: err });
  }
  if (code === 'LEVEL_LOCKED') return new StorageIoError(dir, 'the database is locked by another process', { cause: err });
  return new StorageIoError(dir, `could not open the database (${code ?? 'unknown error'})`, { cause: err });
}

// ---------------------------------------------------------------------------------------------
// Memory

/** The "disk" of the memory twin: survives closing and reopening a store on it (a simulated restart). */
export class MemoryDisk {
  /** Per namespace: latin1 string of the key → [key, value]. latin1 string order = byte order. */
  data: Record<Namespace, Map<string, [Uint8Array, Uint8Array]>> = {
    log: new Map(),
    meta: new Map(),
    kv: new Map(),
    sessions: new Map(),
    history: new Map(),
  };
  /** The high-water-mark file. */
  mark: Uint8Array | undefined;
  /**
   * Power-loss simulation (tests): once `recordWrites()` was called, every batch is journaled, and
   * `powerLoss(lose)` rebuilds the data from the state at that call plus every journaled batch
   * except the unsynced ones `lose` picks — in any position, as LevelDB may lose an unsynced
   * batch from a journal file it switched away from while a later synced batch survives.
   */
  private journal: Array<{ ops: BatchOp[]; sync: boolean; label: string }> | undefined;
  private base: NsData | undefined;
  /** Where the last mark write went and the bytes it replaced (tearLastMarkWrite). */
  private lastMarkWrite: { offset: number; replaced: Uint8Array } | undefined;

  /** @internal Called by MemoryBackend for every mark write, before it changes the bytes. */
  noteMarkWrite(offset: number, length: number): void {
    const replaced = new Uint8Array(length);
    if (this.mark) replaced.set(this.mark.subarray(offset, offset + length));
    this.lastMarkWrite = { offset, replaced };
  }

  /**
   * Simulates a crash in the middle of the last mark write (tests): its second half still holds
   * the bytes it replaced, as when only the first sectors of a write reached the platter. Returns
   * false when there is no mark write to tear.
   */
  tearLastMarkWrite(): boolean {
    const w = this.lastMarkWrite;
    if (!w || !this.mark) return false;
    const half = Math.ceil(w.replaced.length / 2);
    this.mark.set(w.replaced.subarray(half), w.offset + half);
    this.lastMarkWrite = undefined;
    return true;
  }

  /** Starts journaling writes (see `powerLoss`). */
  recordWrites(): void {
    this.base = copyData(this.data);
    this.journal = [];
  }

  /** @internal Called by MemoryBackend for every batch. */
  journalWrite(ops: BatchOp[], sync: boolean, label: string): void {
    this.journal?.push({ ops, sync, label });
  }

  /** Simulates a power failure: unsynced batches `lose` picks never happened. Returns how many were lost. */
  powerLoss(lose: (batch: { sync: boolean; label: string }, position: number) => boolean): number {
    if (!this.journal || !this.base) throw new Error('powerLoss() needs recordWrites() first');
    let lost = 0;
    const data = copyData(this.base);
    this.journal.forEach((batch, i) => {
      if (!batch.sync && lose(batch, i)) lost++;
      else applyOps(data, batch.ops);
    });
    for (const ns of NAMESPACES) this.data[ns] = data[ns];
    this.recordWrites();
    return lost;
  }
}

function copyData(data: NsData): NsData {
  const copy = {} as NsData;
  for (const ns of NAMESPACES) copy[ns] = new Map(data[ns]);
  return copy;
}

function applyOps(data: NsData, ops: BatchOp[]): void {
  for (const op of ops) {
    const k = keyString(op.key);
    if (op.type === 'put') data[op.ns].set(k, [op.key.slice(), op.value.slice()]);
    else data[op.ns].delete(k);
  }
}

function keyString(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

function inRange(key: Uint8Array, range: { gte?: Uint8Array; lt?: Uint8Array }): boolean {
  if (range.gte && compareBytes(key, range.gte) < 0) return false;
  if (range.lt && compareBytes(key, range.lt) >= 0) return false;
  return true;
}

type NsData = Record<Namespace, Map<string, [Uint8Array, Uint8Array]>>;

async function* iterateMemory(
  data: NsData,
  ns: Namespace,
  range: KeyRange,
  batchSize: number,
): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> {
  // Sorting on every scan is fine for a test twin; the LevelDB backend is the production path.
  const keys = [...data[ns].keys()].sort();
  if (range.reverse) keys.reverse();
  let remaining = range.limit === undefined || range.limit < 0 ? Infinity : range.limit;
  let batch: Array<[Uint8Array, Uint8Array]> = [];
  for (const k of keys) {
    if (remaining === 0) break;
    const pair = data[ns].get(k);
    if (!pair || !inRange(pair[0], range)) continue;
    batch.push(pair);
    remaining--;
    if (batch.length >= batchSize) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/** The memory backend: same semantics as LevelBackend, on a MemoryDisk. */
export class MemoryBackend extends BaseBackend implements Backend {
  constructor(
    private readonly disk: MemoryDisk,
    hooks: TestHooks = {},
    location = 'memory',
  ) {
    super(location, hooks);
  }

  async get(ns: Namespace, key: Uint8Array): Promise<Uint8Array | undefined> {
    this.check();
    return this.disk.data[ns].get(keyString(key))?.[1];
  }

  async getMany(ns: Namespace, keys: Uint8Array[]): Promise<Array<Uint8Array | undefined>> {
    this.check();
    return keys.map((key) => this.disk.data[ns].get(keyString(key))?.[1]);
  }

  iterate(ns: Namespace, range: KeyRange, batchSize: number): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> {
    this.check();
    return iterateMemory(this.disk.data, ns, range, batchSize);
  }

  async write(ops: BatchOp[], options: { sync: boolean; label: string }): Promise<void> {
    if (ops.length === 0) return;
    await this.guardedWrite(options.label, async () => {
      applyOps(this.disk.data, ops);
      this.disk.journalWrite(ops, options.sync, options.label);
    });
  }

  async clear(ns: Namespace, range: { gte?: Uint8Array; lt?: Uint8Array }, label: string): Promise<void> {
    await this.guardedWrite(label, async () => {
      const ops: BatchOp[] = [];
      for (const [, pair] of this.disk.data[ns]) if (inRange(pair[0], range)) ops.push({ type: 'del', ns, key: pair[0] });
      applyOps(this.disk.data, ops);
      this.disk.journalWrite(ops, true, label); // deletes of unreachable data: kept in the simulation
    });
  }

  async readMarkFile(): Promise<Uint8Array | undefined> {
    this.check();
    return this.disk.mark?.slice();
  }

  async writeMarkFile(offset: number, bytes: Uint8Array): Promise<void> {
    await this.guardedWrite('mark', async () => {
      this.disk.noteMarkWrite(offset, bytes.length);
      const old = this.disk.mark ?? new Uint8Array(0);
      const next = new Uint8Array(Math.max(old.length, offset + bytes.length));
      next.set(old);
      next.set(bytes, offset);
      this.disk.mark = next;
    });
  }

  async snapshot(): Promise<SnapshotView> {
    this.check();
    const copy = copyData(this.disk.data);
    return {
      get: async (ns, key) => copy[ns].get(keyString(key))?.[1],
      getMany: async (ns, keys) => keys.map((key) => copy[ns].get(keyString(key))?.[1]),
      iterate: (ns, range, batchSize) => iterateMemory(copy, ns, range, batchSize),
      close: async () => {},
    };
  }

  async isEmpty(): Promise<boolean> {
    this.check();
    return NAMESPACES.every((ns) => this.disk.data[ns].size === 0);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Reads every pair of a range into memory (callers bound the range). */
export async function readAll(view: ReadView, ns: Namespace, range: KeyRange): Promise<Array<[Uint8Array, Uint8Array]>> {
  const out: Array<[Uint8Array, Uint8Array]> = [];
  for await (const batch of view.iterate(ns, range, ITERATE_BATCH_MAX)) out.push(...batch);
  assert(range.limit === undefined || range.limit < 0 || out.length <= range.limit, 'iterate exceeded its limit');
  return out;
}
