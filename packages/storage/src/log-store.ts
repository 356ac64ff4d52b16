// The Raft log on disk: write-mostly. The server loads it once at start-up into the core's
// in-memory storage, then appends, truncates and compacts through this store.
import { EntryType } from '@quorumkv/raft';
import { type Backend, type BatchOp, ITERATE_BATCH_MAX, readAll } from './backend.js';
import { isIndex, pack, plainBytes, readU64be, u64be, unpack } from './codec.js';
import { StorageCorruptError, assert } from './errors.js';
import { MetaKey, decodeHardState, decodeLogStart, metaPut, readMeta } from './meta.js';
import { SerialQueue } from './serial.js';
import type { HardState, LogEntry, LogStart } from './types.js';

/** What `load()` returns: everything the core needs to rebuild its in-memory log. */
export interface LoadedLog {
  /** The last persisted hard state ({0, null, 0} on a fresh store). */
  hardState: HardState;
  /** Every stored entry, ascending and contiguous, starting at `snapshotMeta.index + 1`. */
  entries: LogEntry[];
  /** Index/term of the last compaction or installed snapshot; absent on a never-compacted log. */
  snapshotMeta?: LogStart;
}

/** One append: the host's persist step of a Ready. */
export interface AppendRequest {
  hardState?: HardState;
  /** Contiguous ascending entries; the first may overwrite stored entries (conflicting suffix). */
  entries: LogEntry[];
  /** fsync before resolving (Ready.mustSync). */
  sync: boolean;
}

/** Work to include in another store's batch, and what to do to the in-memory view once it landed. */
export interface PreparedWrite {
  ops: BatchOp[];
  commit(): void;
}

/** The log store interface, implemented over LevelDB (`openNodeStore`) or memory (`createMemoryLogStore`). */
export interface LogStore {
  /** Reads the hard state and every stored entry. Validates contiguity; damage throws QKV_STORAGE_CORRUPT. */
  load(): Promise<LoadedLog>;
  /**
   * Writes `hardState` and `entries` in ONE batch. Stored entries with an index greater than the
   * last new entry are deleted in the same batch (the new entries replace a conflicting suffix).
   */
  append(request: AppendRequest): Promise<void>;
  /** Deletes entries <= index (a snapshot covers them) and records index/term as the log start. Synced. */
  compact(index: number): Promise<void>;
  /** First stored index (log start + 1); equals lastIndex() + 1 when the log is empty. */
  firstIndex(): number;
  /** Last stored index, or the log start index when no entry is stored. */
  lastIndex(): number;
  /** The index/term covered by the last compaction or snapshot ({0, 0} initially). */
  logStart(): LogStart;
}

const EMPTY_HARD_STATE: HardState = { term: 0, vote: null, commit: 0 };

/** Encodes an entry's value (the index is the key). */
function encodeEntryValue(e: LogEntry): Uint8Array {
  return pack([e.term, e.type, e.data]);
}

const ENTRY_TYPES: readonly number[] = Object.values(EntryType);
function isEntryType(x: unknown): x is EntryType {
  return typeof x === 'number' && ENTRY_TYPES.includes(x);
}

function decodeEntry(location: string, key: Uint8Array, value: Uint8Array): LogEntry {
  const index = key.length === 8 ? readU64be(key) : undefined;
  let raw: unknown;
  try {
    raw = unpack(value);
  } catch (err) {
    throw new StorageCorruptError(location, `log entry ${index ?? '?'} is not decodable`, { cause: err });
  }
  if (index === undefined || !Array.isArray(raw) || raw.length !== 3) {
    throw new StorageCorruptError(location, `log entry ${index ?? '(bad key)'} has an invalid shape`);
  }
  const [term, type, data] = raw as unknown[];
  if (!isIndex(term) || !isEntryType(type) || !(data instanceof Uint8Array)) {
    throw new StorageCorruptError(location, `log entry ${index} has invalid fields`);
  }
  return { index, term, type, data: plainBytes(data) };
}

/** The LogStore over any Backend. Construct with `LogStoreImpl.open`. */
export class LogStoreImpl implements LogStore {
  private readonly queue = new SerialQueue();

  private constructor(
    private readonly backend: Backend,
    private start: LogStart,
    private last: number,
  ) {}

  /** Reads the log bounds (cheap: two one-key scans). */
  static async open(backend: Backend): Promise<LogStoreImpl> {
    const start = (await readMeta(backend, backend.location, 'logStart', decodeLogStart)) ?? { index: 0, term: 0 };
    await readMeta(backend, backend.location, 'hardState', decodeHardState); // refuse damage at open, not later
    const lastPair = await readAll(backend, 'log', { reverse: true, limit: 1 });
    const lastKey = lastPair[0]?.[0];
    const last = lastKey === undefined ? start.index : readU64be(lastKey);
    if (last === undefined || (lastKey !== undefined && lastKey.length !== 8)) {
      throw new StorageCorruptError(backend.location, 'the last log key is not an 8-byte index');
    }
    if (last < start.index) throw new StorageCorruptError(backend.location, `last log index ${last} is below the log start ${start.index}`);
    return new LogStoreImpl(backend, start, last);
  }

  firstIndex(): number {
    return this.start.index + 1;
  }

  lastIndex(): number {
    return this.last;
  }

  logStart(): LogStart {
    return { ...this.start };
  }

  load(): Promise<LoadedLog> {
    return this.queue.run(async () => {
      const where = this.backend.location;
      const hardState = (await readMeta(this.backend, where, 'hardState', decodeHardState)) ?? { ...EMPTY_HARD_STATE };
      const entries: LogEntry[] = [];
      let expected = this.start.index + 1;
      let prevTerm = this.start.term;
      for await (const batch of this.backend.iterate('log', {}, ITERATE_BATCH_MAX)) {
        for (const [key, value] of batch) {
          const e = decodeEntry(where, key, value);
          if (e.index !== expected) throw new StorageCorruptError(where, `log has a gap: expected index ${expected}, found ${e.index}`);
          if (e.term < prevTerm) throw new StorageCorruptError(where, `log term goes backwards at index ${e.index}`);
          entries.push(e);
          expected++;
          prevTerm = e.term;
        }
      }
      const loaded: LoadedLog = { hardState, entries };
      if (this.start.index > 0) loaded.snapshotMeta = { ...this.start };
      return loaded;
    });
  }

  append(request: AppendRequest): Promise<void> {
    return this.queue.run(async () => {
      const prepared = this.prepareAppend(request);
      await this.backend.write(prepared.ops, { sync: request.sync, label: 'log.append' });
      prepared.commit();
    });
  }

  private prepareAppend({ hardState, entries }: AppendRequest): PreparedWrite {
    const ops: BatchOp[] = [];
    if (hardState) ops.push(metaPut(MetaKey.hardState, hardState));
    let newLast = this.last;
    const first = entries[0];
    if (first) {
      assert(first.index > this.start.index, `append at ${first.index} is inside the compacted log (start ${this.start.index})`);
      assert(first.index <= this.last + 1, `append at ${first.index} leaves a gap after ${this.last}`);
      entries.forEach((e, i) => {
        assert(e.index === first.index + i, 'appended entries must be contiguous');
        ops.push({ type: 'put', ns: 'log', key: u64be(e.index), value: encodeEntryValue(e) });
      });
      newLast = first.index + entries.length - 1;
      for (let i = newLast + 1; i <= this.last; i++) ops.push({ type: 'del', ns: 'log', key: u64be(i) });
    }
    return { ops, commit: () => void (this.last = newLast) };
  }

  compact(index: number): Promise<void> {
    return this.queue.run(async () => {
      if (index <= this.start.index) return;
      assert(index <= this.last, `compact(${index}) beyond the last index ${this.last}`);
      const value = await this.backend.get('log', u64be(index));
      assert(value !== undefined, `entry ${index} missing inside the log`);
      const term = decodeEntry(this.backend.location, u64be(index), value).term;
      const ops: BatchOp[] = [metaPut(MetaKey.logStart, { index, term })];
      for (let i = this.start.index + 1; i <= index; i++) ops.push({ type: 'del', ns: 'log', key: u64be(i) });
      await this.backend.write(ops, { sync: true, label: 'log.compact' });
      this.start = { index, term };
    });
  }

  /**
   * For a snapshot install: ops that make the log start at `snap`. Entries after it are kept only
   * if the stored entry at `snap.index` has `snap.term` (Raft §7); otherwise the whole log goes.
   * Runs inside the caller's serial section; the caller writes the ops in its own batch.
   */
  async prepareReset(snap: LogStart): Promise<PreparedWrite> {
    const ops: BatchOp[] = [metaPut(MetaKey.logStart, snap)];
    const stored = snap.index <= this.last && snap.index > this.start.index ? await this.backend.get('log', u64be(snap.index)) : undefined;
    const keep = stored !== undefined && decodeEntry(this.backend.location, u64be(snap.index), stored).term === snap.term;
    const deleteUpTo = keep ? snap.index : this.last;
    for (let i = this.start.index + 1; i <= deleteUpTo; i++) ops.push({ type: 'del', ns: 'log', key: u64be(i) });
    const newLast = keep ? this.last : snap.index;
    return {
      ops,
      commit: () => {
        this.start = { ...snap };
        this.last = newLast;
      },
    };
  }

  /** Runs `op` inside this store's serial section (used by snapshot install). */
  exclusive<T>(op: () => Promise<T>): Promise<T> {
    return this.queue.run(op);
  }
}
