// The Raft log on disk: write-mostly. The server loads it once at start-up into the core's
// in-memory storage, then appends, truncates and compacts through this store. Each append is
// stored as one record (a segment of entries, see log-segments.ts), not one record per entry.
import { type Backend, type BatchOp, ITERATE_BATCH_MAX } from './backend.js';
import { u64be } from './codec.js';
import { StorageCorruptError, assert } from './errors.js';
import {
  DEFAULT_SEGMENT_LIMITS,
  type SegmentBounds,
  type SegmentLimits,
  decodeSegment,
  mergeSegment,
  peekEntryCount,
  sealSegment,
  segmentKeyIndex,
  splitIntoRuns,
  unsealSegment,
} from './log-segments.js';
import { HighWater, type HighWaterMark, type MarkRecord } from './high-water.js';
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
  /**
   * Set when the stored hard state was behind the term or vote of the high-water mark (its batch
   * was lost from LevelDB's journal): `hardState` then carries the mark's term and vote instead.
   */
  hardStateFromMark?: { stored: HardState };
}

/** The log ends before the high-water mark: entries this node acknowledged are missing. */
export interface LogShortfall {
  /** The last index the log holds. */
  lastIndex: number;
  /** The last index this node made durable and may have acknowledged (the high-water mark). */
  markIndex: number;
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

/**
 * How long after a synced append completes, with no other append started, the store writes the
 * confirmation record of the high-water mark (durable-through = that append). Under load the next
 * append's record carries it at no cost; when the node goes idle this closes the window in which
 * the loss of the last acknowledged append would go undetected (docs/storage.md, "High-water mark").
 */
export const MARK_CONFIRM_DELAY_MS = 5;

/** Options of `LogStoreImpl.open`. */
export interface LogStoreOptions {
  /** See MARK_CONFIRM_DELAY_MS; 0 confirms right after each append; Infinity only on settleMark()/close (tests). */
  markConfirmDelayMs?: number;
  /** The timer of the confirmation; default the process's setTimeout (the whole-node simulation passes its clock). */
  markTimer?: MarkTimer;
}

/** A one-shot timer (the confirmation's): `set` returns what `clear` takes. */
export interface MarkTimer {
  set(fn: () => void, delayMs: number): unknown;
  clear(handle: unknown): void;
}

/** setTimeout, not keeping the process alive for a confirmation. */
const REAL_MARK_TIMER: MarkTimer = {
  set: (fn, delayMs) => {
    const t = setTimeout(fn, delayMs);
    t.unref?.();
    return t;
  },
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/** A log reset for a snapshot install: also moves the high-water mark around the batch. */
export interface PreparedReset extends PreparedWrite {
  /** Run before the batch: lowers the mark when the reset drops conflicting entries below it. */
  beforeWrite(): Promise<void>;
  /** Run after the batch landed (synced) and commit(): raises the mark to the new log. */
  afterWrite(): Promise<void>;
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
  /**
   * The high-water mark: the last index, term and vote this store made durable with a synced
   * append (so the node may have acknowledged them), kept outside the database (high-water.ts).
   */
  highWaterMark(): HighWaterMark;
  /** Set while the log ends before the high-water mark (entries the node acknowledged are lost). */
  shortfall(): LogShortfall | undefined;
  /**
   * Resolves once the mark file proves every completed append (writes the confirmation record now
   * if one is still owed). `close()` of the node store does it; so may a host before a planned stop.
   */
  settleMark(): Promise<void>;
}

const EMPTY_HARD_STATE: HardState = { term: 0, vote: null, commit: 0 };

/** Whether `b`'s term and vote are ahead of `a`'s (a later term, or a vote cast in the same term). */
function aheadOf(b: { term: number; vote: string | null }, a: { term: number; vote: string | null }): boolean {
  return b.term > a.term || (b.term === a.term && a.vote === null && b.vote !== null);
}

/** The record that proves `promise` whole: durable through its index, nothing pending beyond it. */
function confirmation(promise: HighWaterMark): MarkRecord {
  return { ...promise, pending: promise.index };
}

/**
 * The promise at open, from the mark file's last record and what the database holds. The log must
 * reach the record's durable-through index; its pending append counts only if the log holds it
 * (after a crash in the middle of that append nothing of it was acknowledged). Term and vote: the
 * record's (load() takes the higher of these and the stored hard state's). No record (a new
 * store, or one from before marks): what is on disk is the promise.
 */
function promiseAtOpen(record: MarkRecord | undefined, last: number, stored: HardState): HighWaterMark {
  if (!record) return { index: last, term: stored.term, vote: stored.vote };
  // A new store whose first append of entries (a founding member's, or the first a leader sent)
  // was cut by a crash: it holds nothing, and the record is still pending (not a confirmation), so
  // nothing of that append was sent. Without a vote to keep, it is still new (a term of its own
  // would stop a founding member from founding again).
  const cutFirstAppend = record.index === 0 && record.pending > 0 && last === 0 && stored.term === 0;
  if (cutFirstAppend && record.vote === null) return { index: 0, term: 0, vote: null };
  return { index: last >= record.pending ? record.pending : record.index, term: record.term, vote: record.vote };
}

/** Waits for every write, then throws the first failure (none is left running unobserved). */
async function allLanded(writes: Array<Promise<void>>): Promise<void> {
  for (const r of await Promise.allSettled(writes)) if (r.status === 'rejected') throw r.reason;
}

/**
 * Reads the bounds of every stored segment, in key order, from the records' first bytes, and
 * checks that they leave no gap after the log start (load() decodes and checks everything).
 */
async function scanSegments(backend: Backend, start: LogStart): Promise<SegmentBounds[]> {
  const where = backend.location;
  const segments: SegmentBounds[] = [];
  let end = start.index; // the log's last index given the records read so far (the segment rule applied)
  for await (const batch of backend.iterate('log', {}, ITERATE_BATCH_MAX)) {
    for (const [key, value] of batch) {
      const first = segmentKeyIndex(where, key);
      const count = peekEntryCount(unsealSegment(where, key, value));
      if (count === undefined) throw new StorageCorruptError(where, `the log record at index ${first} is neither a segment nor an entry`);
      const last = first + count - 1;
      if (last > Number.MAX_SAFE_INTEGER) throw new StorageCorruptError(where, `the log segment at index ${first} reaches past 2^53 - 1`);
      if (first > end + 1) throw new StorageCorruptError(where, `log has a gap: expected index ${end + 1}, found a segment starting at ${first}`);
      const prev = segments.at(-1);
      if (prev && prev.last >= first) prev.last = first - 1; // the segment rule
      segments.push({ first, last });
      end = Math.max(start.index, last);
    }
  }
  const last = segments.at(-1)?.last ?? start.index;
  if (last < start.index) throw new StorageCorruptError(where, `last log index ${last} is below the log start ${start.index}`);
  return segments;
}

/** The LogStore over any Backend. Construct with `LogStoreImpl.open`. */
export class LogStoreImpl implements LogStore {
  private readonly queue = new SerialQueue();

  /**
   * Every stored segment, in key order, with the range it still holds: ascending, and contiguous
   * from the first one that reaches past the log start to the last index. Segments wholly at or
   * below the log start may precede them (the next compaction deletes them).
   * Invariant: a segment's key is higher than the key of every segment it overlaps on disk.
   */
  private readonly segments: SegmentBounds[];
  /** The last stored index (the log start when the log is empty). */
  private last: number;
  /**
   * What this node has promised: the last index (and term, vote) of every synced append that
   * completed (its batch and its mark record both landed), kept while the log is short of it.
   * Invariant: the mark file proves it, or its last record names it as pending (the confirmation
   * is scheduled, unless confirmations wait for settleMark), or a mark write is in flight.
   */
  private promise: HighWaterMark;
  /** A synced append is writing its batch and its mark record. */
  private appending = false;
  private confirmTimer: unknown;
  private readonly confirmDelayMs: number;
  private readonly markTimer: MarkTimer;

  private constructor(
    private readonly backend: Backend,
    private start: LogStart,
    segments: SegmentBounds[],
    private readonly limits: SegmentLimits,
    private readonly mark: HighWater,
    hardState: HardState,
    options: LogStoreOptions,
  ) {
    this.segments = segments;
    this.last = segments.at(-1)?.last ?? start.index;
    this.promise = promiseAtOpen(mark.last(), this.last, hardState);
    this.confirmDelayMs = options.markConfirmDelayMs ?? MARK_CONFIRM_DELAY_MS;
    this.markTimer = options.markTimer ?? REAL_MARK_TIMER;
    assert(this.confirmDelayMs >= 0, 'markConfirmDelayMs must not be negative');
  }

  /** Reads the log start, the hard state (to refuse damage at open), the segment bounds (each record's first bytes) and the mark. */
  static async open(backend: Backend, limits: SegmentLimits = DEFAULT_SEGMENT_LIMITS, options: LogStoreOptions = {}): Promise<LogStoreImpl> {
    assert(limits.maxEntries >= 1 && limits.maxBytes >= 1, 'segment limits must be positive');
    const start = (await readMeta(backend, backend.location, 'logStart', decodeLogStart)) ?? { index: 0, term: 0 };
    // Read at open to refuse damage at open, not later.
    const hs = (await readMeta(backend, backend.location, 'hardState', decodeHardState)) ?? EMPTY_HARD_STATE;
    const mark = await HighWater.open(backend);
    const store = new LogStoreImpl(backend, start, await scanSegments(backend, start), limits, mark, hs, options);
    // The promise settled at open becomes the record later ones build on (a missing file is created).
    await mark.write(confirmation(store.promise));
    return store;
  }

  highWaterMark(): HighWaterMark {
    return { ...this.promise };
  }

  shortfall(): LogShortfall | undefined {
    const markIndex = this.promise.index;
    return this.last < markIndex ? { lastIndex: this.last, markIndex } : undefined;
  }

  settleMark(): Promise<void> {
    return this.queue.run(async () => {
      this.cancelConfirmation();
      await this.mark.write(confirmation(this.promise));
    });
  }

  /**
   * At open, when the state machine has applied past the end of the log (the log's tail was lost
   * from LevelDB's journal while a later apply batch survived): the applied state covers those
   * entries (they were committed), so the log restarts after it, as after a snapshot. One synced
   * batch. Returns whether it did anything.
   */
  async rebaseOnApplied(applied: LogStart): Promise<boolean> {
    return this.queue.run(async () => {
      if (applied.index <= this.last) return false;
      const ops: BatchOp[] = [metaPut(MetaKey.logStart, applied), ...this.deletesOfFirst(this.segments.length)];
      await this.backend.write(ops, { sync: true, label: 'log.rebase' });
      this.segments.length = 0;
      this.start = { ...applied };
      this.last = applied.index;
      return true;
    });
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

  /** The stored segments' bounds, in key order (for tests and diagnostics). */
  segmentBounds(): SegmentBounds[] {
    return this.segments.map((s) => ({ ...s }));
  }

  load(): Promise<LoadedLog> {
    return this.queue.run(async () => {
      const where = this.backend.location;
      const stored = (await readMeta(this.backend, where, 'hardState', decodeHardState)) ?? { ...EMPTY_HARD_STATE };
      const hardState = this.hardStateWithMark(stored);
      const log = { startIndex: this.start.index, startTerm: this.start.term, entries: [] as LogEntry[] };
      for await (const batch of this.backend.iterate('log', {}, ITERATE_BATCH_MAX)) {
        for (const [key, value] of batch) mergeSegment(where, log, decodeSegment(where, key, unsealSegment(where, key, value)));
      }
      if (this.start.index + log.entries.length !== this.last) {
        throw new StorageCorruptError(where, `the log holds entries up to ${this.start.index + log.entries.length}, its segment headers say ${this.last}`);
      }
      const loaded: LoadedLog = { hardState, entries: log.entries };
      if (this.start.index > 0) loaded.snapshotMeta = { ...this.start };
      if (hardState !== stored) loaded.hardStateFromMark = { stored };
      return loaded;
    });
  }

  /**
   * The stored hard state, or the mark's term and vote when they are ahead of it (the batch holding
   * them was lost, or never landed): a vote leaves only once the batch and the mark record holding
   * it both landed, so the higher of the two holds every vote sent, and a vote is never cast twice
   * in one term. Returns `stored` itself when it is not behind.
   */
  private hardStateWithMark(stored: HardState): HardState {
    const m = this.promise;
    return aheadOf(m, stored) ? { term: m.term, vote: m.vote, commit: stored.commit } : stored;
  }

  /**
   * The batch and the mark record are written at the same time; the append resolves (and the host
   * may acknowledge it) only once both landed. The record proves the promise of the appends
   * before this one and names this one as pending (docs/storage.md, "High-water mark").
   */
  append(request: AppendRequest): Promise<void> {
    return this.queue.run(async () => {
      const prepared = this.prepareAppend(request);
      const first = request.entries[0];
      // Overwriting stored entries (a conflicting suffix the leader replaces): none of them from
      // the first overwritten one on was committed (Log Matching), so the promise may come down —
      // durably BEFORE the batch, else a crash after the batch landed would leave a mark above
      // the shortened log. Rare (a leader change with an uncommitted suffix), so not concurrent.
      const overwrites = first !== undefined && first.index <= this.last;
      if (overwrites) await this.lowerMark(first.index - 1);
      const write = () => this.backend.write(prepared.ops, { sync: request.sync, label: 'log.append' });
      if (!request.sync) {
        await write(); // promises nothing
        prepared.commit();
        return;
      }
      const lastAfter = first ? first.index + request.entries.length - 1 : this.last;
      const next = this.promiseAfter(lastAfter, overwrites, request.hardState);
      this.cancelConfirmation(); // this append's record carries it
      this.appending = true;
      try {
        // Both at once; either may land alone before a crash (see promiseAtOpen).
        await allLanded([this.mark.write({ ...next, index: this.promise.index, pending: next.index }), write()]);
      } finally {
        this.appending = false;
      }
      prepared.commit();
      this.promise = next;
      this.scheduleConfirmation();
    });
  }

  /** Lowers the promise to `index` (when above it) and writes it, durably, before the caller goes on. */
  private async lowerMark(index: number): Promise<void> {
    if (index >= this.promise.index) return;
    this.cancelConfirmation();
    this.promise = { ...this.promise, index };
    await this.mark.write(confirmation(this.promise));
  }

  /**
   * The promise once a synced write ending at `lastAfter` landed: the log's last index (following
   * it down after an overwrite), with the hard state's term and vote when they are ahead. While
   * the log is short of the promise (entries lost), appending more does not lower it: the node
   * still owes the rest.
   */
  private promiseAfter(lastAfter: number, overwrote: boolean, hs: HardState | undefined): HighWaterMark {
    const m = this.promise;
    const index = overwrote ? lastAfter : Math.max(m.index, lastAfter);
    return hs !== undefined && aheadOf(hs, m) ? { index, term: hs.term, vote: hs.vote } : { index, term: m.term, vote: m.vote };
  }

  /**
   * After a synced append: the confirmation record (durable-through = this append) is written
   * MARK_CONFIRM_DELAY_MS later unless another append starts first (its record carries it).
   */
  private scheduleConfirmation(): void {
    if (this.confirmTimer !== undefined || !Number.isFinite(this.confirmDelayMs)) return;
    this.confirmTimer = this.markTimer.set(() => {
      this.confirmTimer = undefined;
      if (this.appending) return; // that append's record carries the promise and schedules the next
      // A failure poisoned the backend: the next append or close reports it.
      this.mark.write(confirmation(this.promise)).catch(() => undefined);
    }, this.confirmDelayMs);
  }

  private cancelConfirmation(): void {
    if (this.confirmTimer === undefined) return;
    this.markTimer.clear(this.confirmTimer);
    this.confirmTimer = undefined;
  }

  /**
   * One put per run of entries (usually one run: see SegmentLimits), and a delete of every stored
   * segment starting at or after the first new index (but the one the put overwrites). A segment
   * starting before it and reaching past it stays as it is: loading cuts it at the new segment.
   */
  private prepareAppend({ hardState, entries }: AppendRequest): PreparedWrite {
    const ops: BatchOp[] = [];
    if (hardState) ops.push(metaPut(MetaKey.hardState, hardState));
    const first = entries[0];
    if (!first) return { ops, commit: () => undefined };
    const k = first.index;
    assert(k > this.start.index, `append at ${k} is inside the compacted log (start ${this.start.index})`);
    assert(k <= this.last + 1, `append at ${k} leaves a gap after ${this.last}`);
    entries.forEach((e, i) => assert(e.index === k + i, 'appended entries must be contiguous'));
    const runs = splitIntoRuns(entries, this.limits);
    const cut = this.firstSegmentFrom(k);
    if (cut < this.segments.length) {
      const overwritten = new Set(runs.map((run) => (run[0] as LogEntry).index));
      for (const seg of this.segments.slice(cut)) {
        if (!overwritten.has(seg.first)) ops.push({ type: 'del', ns: 'log', key: u64be(seg.first) });
      }
    }
    for (const run of runs) ops.push({ type: 'put', ns: 'log', key: u64be((run[0] as LogEntry).index), value: sealSegment(run) });
    return {
      ops,
      commit: () => {
        this.segments.length = cut;
        const prev = this.segments.at(-1);
        // Invariant: every remaining segment starts before k, so the new ones have the highest keys.
        assert(prev === undefined || prev.first < k, 'a segment at or after the append point survived it');
        if (prev && prev.last >= k) prev.last = k - 1;
        for (const run of runs) this.segments.push({ first: (run[0] as LogEntry).index, last: (run.at(-1) as LogEntry).index });
        this.last = k + entries.length - 1;
      },
    };
  }

  compact(index: number): Promise<void> {
    return this.queue.run(async () => {
      if (index <= this.start.index) return;
      assert(index <= this.last, `compact(${index}) beyond the last index ${this.last}`);
      const term = await this.termAt(index);
      const covered = this.segmentsEndingBy(index);
      const ops: BatchOp[] = [metaPut(MetaKey.logStart, { index, term }), ...this.deletesOfFirst(covered)];
      await this.backend.write(ops, { sync: true, label: 'log.compact' });
      this.segments.splice(0, covered);
      this.start = { index, term };
    });
  }

  /**
   * For a snapshot install: ops that make the log start at `snap`. Entries after it are kept only
   * if the stored entry at `snap.index` has `snap.term` (Raft §7); otherwise the whole log goes.
   * Runs inside the caller's serial section; the caller writes the ops in its own batch.
   */
  async prepareReset(snap: LogStart, hardState?: HardState): Promise<PreparedReset> {
    const stored = snap.index <= this.last && snap.index > this.start.index;
    const keep = stored && (await this.termAt(snap.index)) === snap.term;
    const covered = keep ? this.segmentsEndingBy(snap.index) : this.segments.length;
    const ops: BatchOp[] = [metaPut(MetaKey.logStart, snap), ...this.deletesOfFirst(covered)];
    const newLast = keep ? this.last : snap.index;
    // A stored entry at the snapshot's index with another term: it and everything after it were
    // never committed, so the mark may follow the log down to the snapshot.
    const conflict = stored && !keep;
    return {
      ops,
      commit: () => {
        this.segments.splice(0, covered);
        this.start = { ...snap };
        this.last = newLast;
      },
      beforeWrite: async () => {
        if (conflict) await this.lowerMark(snap.index);
      },
      // After the synced batch (and commit()), so the record proves the new log at once.
      afterWrite: async () => {
        this.cancelConfirmation();
        this.promise = this.promiseAfter(this.last, conflict, hardState);
        await this.mark.write(confirmation(this.promise));
      },
    };
  }

  /** Runs `op` inside this store's serial section (used by snapshot install). */
  exclusive<T>(op: () => Promise<T>): Promise<T> {
    return this.queue.run(op);
  }

  /** The term of stored entry `index` (start < index <= last), read from its segment. */
  private async termAt(index: number): Promise<number> {
    const seg = this.segments[this.firstSegmentFrom(index + 1) - 1];
    assert(seg !== undefined && seg.first <= index && index <= seg.last, `no segment holds entry ${index}`);
    const where = this.backend.location;
    const value = await this.backend.get('log', u64be(seg.first));
    if (value === undefined) throw new StorageCorruptError(where, `the log segment at index ${seg.first} disappeared`);
    const key = u64be(seg.first);
    const entry = decodeSegment(where, key, unsealSegment(where, key, value)).entries[index - seg.first];
    if (entry === undefined) throw new StorageCorruptError(where, `the log segment at index ${seg.first} does not hold entry ${index}`);
    return entry.term;
  }

  /** Position of the first segment whose first index is >= `index` (segments.length if none). */
  private firstSegmentFrom(index: number): number {
    let lo = 0;
    let hi = this.segments.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.segments[mid] as SegmentBounds).first < index) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** How many leading segments hold nothing after `index` (a compaction to `index` deletes them). */
  private segmentsEndingBy(index: number): number {
    let n = 0;
    while (n < this.segments.length && (this.segments[n] as SegmentBounds).last <= index) n++;
    return n;
  }

  private deletesOfFirst(count: number): BatchOp[] {
    return this.segments.slice(0, count).map((seg) => ({ type: 'del', ns: 'log', key: u64be(seg.first) }));
  }
}
