// The replicated key-value state machine: applies committed entries in one batch per call
// (writes + applied index/term/hash + membership), with exactly-once client sessions.
//
// A thin composition of three pieces (docs/storage.md, "The state machine"):
//   - the replicated rules, a pure function (kv-rules.ts: applyBatch(view, items) → results, writes);
//   - the write-behind layer (write-behind.ts): pending writes, the record cache, batches landing in order;
//   - the backend (backend.ts: LevelDB or the memory twin).
// This file holds the computed state (session table, applied position after the last computed
// batch), the stored state (applied position of the last landed batch) and the reads.
import { createHash } from 'node:crypto';
import { type Backend, type BatchOp, ITERATE_BATCH_MAX, type ReadView, readAll } from './backend.js';
import { type Command, CommandDecodeError, type TxnCommand } from './commands.js';
import { bytesEqual, latin1, prefixUpperBound, u64be } from './codec.js';
import { type ScanPurpose, TXN_LIMITS, TXN_ROW_OVERHEAD_BYTES, type TxnRangeRead, txnPointKeys, txnRanges } from './txn.js';
import { type IdemEntry, decodeIdemEntry, idemEntryBytes, idemKeyOf, idemRange } from './idempotency.js';
import { FutureRevisionError, RevisionCompactedError, StorageArgumentError, StorageCorruptError, StorageIoError, assert } from './errors.js';
import {
  type KeyValue,
  type KvRecord,
  type SessionHeader,
  decodeKvRecord,
  decodeSessionHeader,
  genPrefix,
  genRange,
  historyRange,
  historyVersionsBelow,
  kvPrefixRange,
  parseHistoryKey,
  kvRange,
  sessionHeaderRange,
  sessionIdOfHeaderKey,
} from './kv-layout.js';
import {
  type ApplyItem,
  type ApplyResult,
  type BatchWrites,
  type IdemView,
  type KvView,
  type PreparedBatch,
  applyBatch,
  completeDeferred,
  prepareBatch,
  resultRef,
  storedResultsNeeded,
  toKeyValue,
} from './kv-rules.js';
import { type AppliedState, decodeApplied, decodeGeneration, decodeMembership, initialApplied, readMeta } from './meta.js';
import { SerialQueue } from './serial.js';
import type { Membership } from './types.js';
import { WriteBehind } from './write-behind.js';
import { type ChangesPage, type KeyChange, readChanges } from './watch-history.js';

export { chainHash } from './kv-rules.js';
export type { ApplyItem, ApplyErrorCode, ApplyResult } from './kv-rules.js';

/** Range query: by prefix, or [start, end) (end omitted = to the last key). */
export type RangeRequest = { prefix: Uint8Array } | { start: Uint8Array; end?: Uint8Array };

/** History deletes per backend write of a background compaction (bounds one batch). */
const COMPACT_DELETES_PER_WRITE = 1024;

/** Reads of changes() a snapshot install may cut short before it gives up. */
const CHANGES_READ_ATTEMPTS_MAX = 3;

/** Bytes a row is counted as besides its key and value (its revisions and the answer's field names). */
export const RANGE_ROW_OVERHEAD_BYTES = 64;

/** Options of a point read. */
export interface ReadOptions {
  /**
   * Read the store as it was at this revision (compactedRevision ..= the current revision).
   * Omitted: the current state. Below the compacted revision: QKV_COMPACTED; above the current one:
   * FutureRevisionError.
   */
  revision?: number;
}

/** What one page of a range may hold. */
export interface RangePageOptions extends ReadOptions {
  /** Most rows in the page (1..maxRangeLimit). */
  limit: number;
  /**
   * Most bytes in the page, each row counted as key + value + RANGE_ROW_OVERHEAD_BYTES. The first
   * row is always returned, whatever its size (a page always makes progress).
   */
  maxBytes: number;
  /**
   * Asked before each row after the first joins the page, with that row's size; `false` ends the
   * page there (more: true). A node-wide budget uses it to shorten pages instead of growing.
   */
  admitBytes?: (bytes: number) => boolean;
}

/** One page of a range. */
export interface RangePage {
  items: KeyValue[];
  /** True when rows beyond the page exist (resume strictly after the last item's key). */
  more: boolean;
  /** The page's size as counted against `maxBytes`. */
  bytes: number;
  /**
   * The revision the page was read at: the one asked for, or the current one of the state read.
   * The next page of the same range passes it as `revision`, so all pages show one state.
   */
  revision: number;
}

/**
 * Told about every change of the stored state, in order (watch feeds: packages/server watch-hub.ts).
 * Called synchronously where the stored state moves: it must be quick and must not throw.
 */
export interface KvChangeListener {
  /** A batch landed: its key changes (one per key write, in revision order; none for a batch that wrote nothing) and the applied state now. */
  landed(changes: readonly KeyChange[], applied: AppliedState): void;
  /**
   * A batch's results were computed (its writers are being answered), before it lands: the same
   * changes `landed` will report, and the computed state. Optional: a listener without it learns
   * of the batch when it lands. Batches are computed and land in the same order.
   */
  computed?(changes: readonly KeyChange[], applied: AppliedState): void;
  /** The whole state was replaced (snapshot install, reopen): changes before `applied` were not reported. */
  reset(applied: AppliedState): void;
}

/** Tunables. Session settings must be identical on every replica (they shape replicated state). */
export interface KvOptions {
  /** A session idle longer than this (by command `timeMs`) is expired. Default 1 hour. */
  sessionTtlMs?: number;
  /** Results remembered per session; past it the lowest seq is forgotten. Default 1024. */
  maxResultsPerSession?: number;
  /** Sessions remembered; a new session beyond it gets QKV_SESSIONS_FULL. Default 100 000. */
  maxSessions?: number;
  /** An HTTP idempotency key is remembered this long (by command `timeMs`). Default 10 minutes. */
  idempotencyTtlMs?: number;
  /** Idempotency keys remembered at once; a new key beyond it is refused. Default 50 000. */
  maxIdempotencyKeys?: number;
  /** Bytes of idempotency entries (key + hash + stored result + 64 each) before new keys are refused. Default 32 MiB. */
  maxIdempotencyBytes?: number;
  /** Largest `limit` accepted by range(). Default 10 000. */
  maxRangeLimit?: number;
  /**
   * Bytes of recently written or read kv records kept in memory (keys + values + ~64 B each),
   * so applies and reads of hot keys skip LevelDB. 0 disables it. Default 64 MiB.
   */
  recordCacheBytes?: number;
}

/** Defaults of KvOptions. */
export const DEFAULT_KV_OPTIONS: Required<KvOptions> = {
  sessionTtlMs: 60 * 60 * 1000,
  maxResultsPerSession: 1024,
  maxSessions: 100_000,
  idempotencyTtlMs: 10 * 60 * 1000,
  maxIdempotencyKeys: 50_000,
  maxIdempotencyBytes: 32 * 1024 * 1024,
  maxRangeLimit: 10_000,
  recordCacheBytes: 64 * 1024 * 1024,
};

/** The key-value state machine interface (LevelDB via `openNodeStore`, memory via `createMemoryKvStateMachine`). */
export interface KvStateMachine {
  /**
   * Applies committed entries in order, in ONE batch with the applied index/term/hash and the
   * membership. Returns one result per item. `sync` defaults to true: a synced write does NOT
   * make earlier unsynced ones durable when LevelDB switched journal files in between (it does
   * not sync the old file), so an unsynced batch could be lost after a power failure while a later
   * applied index survives — a state missing a middle batch, which re-applying from the log
   * cannot repair (session results and versions depend on the state). `sync: false` is for
   * benchmarks and tests only.
   *
   * `onResults` is called with the results once they are computed, before the batch is written:
   * the entries are committed and applying is deterministic, so a writer may be answered then (a
   * crash before the write re-applies them from the log with the same results). Reads must wait
   * for the returned promise: only then do get() and appliedIndex() reflect the batch.
   */
  apply(items: ApplyItem[], options?: { sync?: boolean; onResults?: (results: ApplyResult[]) => void }): Promise<ApplyResult[]>;
  /** The key's value and metadata, now or at `options.revision`; undefined when absent. */
  get(key: Uint8Array, options?: ReadOptions): Promise<KeyValue | undefined>;
  /** Keys in byte order, at most `limit` (1..maxRangeLimit). */
  range(request: RangeRequest, limit: number, options?: ReadOptions): Promise<KeyValue[]>;
  /**
   * One page of a range, read row by row from the store: reading stops at `limit` rows, at
   * `maxBytes`, or when `admitBytes` says no, so a page never holds more than one row beyond what
   * it returns (the row that shows there is more).
   */
  rangePage(request: RangeRequest, options: RangePageOptions): Promise<RangePage>;
  /**
   * True when the session table of the computed state holds `id` (a write in it would not create
   * a session): it includes batches whose results were computed and that have not landed yet.
   */
  hasSession(id: string): boolean;
  /**
   * The stored applied index: the last entry whose batch landed in the backend (0 initially). Reads
   * and restarts see this state; results may have been computed beyond it (docs/storage.md, "The
   * applied index").
   */
  appliedIndex(): number;
  /** Index, term, chained hash and replicated clock of the stored applied position. */
  applied(): AppliedState;
  /** The membership of the stored state, once one was applied or installed. */
  membership(): Membership | undefined;
  /** sha256 (hex) over kv + sessions in key order: equal on replicas with equal state. */
  stateHash(): Promise<string>;
  /** stateHash() and the applied index of exactly the state it hashed (one consistent view). */
  stateHashAt(): Promise<{ appliedIndex: number; stateHash: string }>;
  /** Registers a listener of stored-state changes (watch feeds); returns its removal. */
  listen(listener: KvChangeListener): () => void;
  /** The changes of a key range after a revision, from history, a bounded page (see KvStateMachineImpl.changes). */
  changes(request: RangeRequest, afterRevision: number, maxChanges: number): Promise<ChangesPage>;
}

/** The KvStateMachine over any Backend: the pure rules, the write-behind layer and the backend. */
export class KvStateMachineImpl implements KvStateMachine {
  readonly options: Required<KvOptions>;
  /** Serializes computing batches and snapshot install. */
  readonly queue = new SerialQueue();
  private readonly writeBehind: WriteBehind;
  /** The generation holding the live kv/sessions data. */
  private gen = 0;
  /** Set when an apply failed; nothing is computed or answered after it until the store is reopened. */
  private failure: unknown;
  /** The chain of background history compactions (scheduleCompaction). */
  private compacting: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<KvChangeListener>();

  // The computed state: as of the last batch whose results were computed (docs/storage.md, "The
  // applied index"). Ahead of the stored state while batches are in flight.
  /** Session headers of the computed state, in ascending lastActiveMs order. Headers are never changed in place. */
  private sessions = new Map<string, SessionHeader>();
  /** The idempotency table of the computed state (entries in ascending createdMs order). */
  private idempotency = new IdemTable();
  private computedState: AppliedState = initialApplied();
  /** Applied indexes of the batches computed and not landed yet, oldest first. */
  private readonly inFlight: number[] = [];

  // The stored state: as of the last batch that landed in the backend (synced, unless sync: false).
  private storedState: AppliedState = initialApplied();
  private storedMembership: Membership | undefined;

  private constructor(
    readonly backend: Backend,
    options: KvOptions,
  ) {
    this.options = { ...DEFAULT_KV_OPTIONS, ...options };
    const o = this.options;
    const idemOk = o.idempotencyTtlMs > 0 && o.maxIdempotencyKeys >= 1 && o.maxIdempotencyBytes >= 1;
    if (!(idemOk && o.sessionTtlMs > 0 && o.maxResultsPerSession >= 1 && o.maxSessions >= 1 && o.maxRangeLimit >= 1 && o.recordCacheBytes >= 0)) {
      throw new StorageArgumentError(`invalid KvOptions ${JSON.stringify(o)}: every limit must be positive`);
    }
    this.writeBehind = new WriteBehind(backend, o.recordCacheBytes);
  }

  /** Loads applied state, membership, generation and session headers. */
  static async open(backend: Backend, options: KvOptions = {}): Promise<KvStateMachineImpl> {
    const sm = new KvStateMachineImpl(backend, options);
    await sm.reload();
    return sm;
  }

  /** The generation holding the live kv/sessions data. */
  generation(): number {
    return this.gen;
  }

  /** Re-reads everything from the backend (at open and after a snapshot install): computed = stored. */
  async reload(): Promise<void> {
    const b = this.backend;
    assert(this.inFlight.length === 0, 'reload with apply batches not landed');
    this.writeBehind.reset();
    const gen = (await readMeta(b, b.location, 'generation', decodeGeneration)) ?? 0;
    const applied = (await readMeta(b, b.location, 'applied', decodeApplied)) ?? initialApplied();
    const membership = await readMeta(b, b.location, 'membership', decodeMembership);
    const headers: Array<[string, SessionHeader]> = [];
    for (const [key, value] of await readAll(b, 'sessions', sessionHeaderRange(gen))) {
      headers.push([sessionIdOfHeaderKey(key), decodeSessionHeader(b.location, value)]);
    }
    // Invariant: map order is ascending lastActiveMs (ties in any order: expiry takes a whole tie).
    headers.sort((a, b2) => a[1].lastActiveMs - b2[1].lastActiveMs);
    const idem = new IdemTable();
    const entries: Array<[string, IdemEntry]> = [];
    for (const [key, value] of await readAll(b, 'sessions', idemRange(gen))) entries.push([idemKeyOf(key), decodeIdemEntry(b.location, value)]);
    entries.sort((a, b2) => a[1].createdMs - b2[1].createdMs);
    for (const [key, entry] of entries) idem.set(key, entry);
    // Read back what landed (or what an install wrote): the stored state never goes back.
    assert(applied.index >= this.storedState.index, `reload read applied index ${applied.index}, behind the stored ${this.storedState.index}`);
    // All at once, after the reads: a read running meanwhile sees the old state or the new one.
    this.gen = gen;
    this.storedState = applied;
    this.computedState = applied;
    this.storedMembership = membership;
    this.sessions = new Map(headers);
    this.idempotency = idem;
    this.writeBehind.reset(); // again: a get() that ran during the reload may have cached old data
    for (const l of this.listeners) l.reset(applied);
    if (applied.compactedRevision > 0) this.scheduleCompaction(applied.compactedRevision); // finishes one a crash cut short
  }

  /** The stored applied index: the last entry whose batch landed in the backend. */
  appliedIndex(): number {
    return this.storedState.index;
  }

  /** The computed applied index: the last entry whose result was computed (≥ appliedIndex()). */
  computedIndex(): number {
    return this.computedState.index;
  }

  applied(): AppliedState {
    return { ...this.storedState, hash: this.storedState.hash.slice() };
  }

  membership(): Membership | undefined {
    return this.storedMembership && structuredClone(this.storedMembership);
  }

  async get(key: Uint8Array, options: ReadOptions = {}): Promise<KeyValue | undefined> {
    if (this.checkRevision(options.revision)) return this.getAt(key, options.revision);
    const r = await this.writeBehind.landedRecord(this.gen, key);
    return r ? { key: new Uint8Array(key), value: r.value.slice(), createRevision: r.createRevision, modRevision: r.modRevision, version: r.version } : undefined;
  }

  async range(request: RangeRequest, limit: number, options: ReadOptions = {}): Promise<KeyValue[]> {
    return (await this.rangePage(request, { ...options, limit, maxBytes: Number.POSITIVE_INFINITY })).items;
  }

  async rangePage(request: RangeRequest, options: RangePageOptions): Promise<RangePage> {
    const { limit } = options;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > this.options.maxRangeLimit) {
      throw new StorageArgumentError(`range limit must be an integer in 1..${this.options.maxRangeLimit}, got ${limit}`);
    }
    if (this.checkRevision(options.revision)) return this.rangePageAt(request, options, options.revision);
    // The current state, from one point-in-time view: the page and the revision it reports agree
    // even while batches land (later pages of the range then read at that revision, from history).
    const view = await this.backend.snapshot();
    try {
      const where = this.backend.location;
      const gen = (await readMeta(view, where, 'generation', decodeGeneration)) ?? 0;
      const applied = (await readMeta(view, where, 'applied', decodeApplied)) ?? initialApplied();
      const bounds = 'prefix' in request ? kvPrefixRange(gen, request.prefix) : kvRange(gen, request.start, request.end);
      const page = new PageBuilder(options, applied.revision);
      // One row past the limit shows whether there is more. Batches are small (LevelDB's iterator
      // stops a batch at 16 KiB, so a large value comes alone), and the loop stops at the first row
      // that does not fit: only rows that join the page, plus that one, are ever read.
      for await (const batch of view.iterate('kv', { ...bounds, limit: limit + 1 }, Math.min(limit + 1, ITERATE_BATCH_MAX))) {
        for (const [k, v] of batch) {
          // Empty means "deleted" only in history; a kv record is never empty (a delete removes it).
          if (v.length === 0) throw new StorageCorruptError(where, 'a kv record is empty (damaged on disk)');
          if (!page.offer(new Uint8Array(k.subarray(4)), v, where)) return page.result(true);
        }
      }
      return page.result(false);
    } finally {
      await view.close();
    }
  }

  hasSession(id: string): boolean {
    return this.sessions.has(id);
  }

  /**
   * Whether a read names a revision (then it reads history: exact whatever lands meanwhile, the
   * current revision included). Refuses a revision below the compacted one (QKV_COMPACTED) or
   * above the current one, both of the stored state.
   */
  private checkRevision(revision: number | undefined): revision is number {
    if (revision === undefined) return false;
    const { revision: current, compactedRevision } = this.storedState;
    if (!Number.isSafeInteger(revision) || revision < 0) throw new StorageArgumentError(`revision must be a non-negative integer, got ${revision}`);
    if (revision > current) throw new FutureRevisionError(revision, current);
    if (revision < compactedRevision) throw new RevisionCompactedError(revision, compactedRevision);
    return true;
  }

  /** The version of `key` at `revision` (≥ the compacted revision): the last one written at or before it. */
  private async getAt(key: Uint8Array, revision: number): Promise<KeyValue | undefined> {
    const range = { ...historyVersionsBelow(this.gen, key, revision + 1), reverse: true, limit: 1 };
    for await (const batch of this.backend.iterate('history', range, 1)) {
      for (const [, v] of batch) return v.length === 0 ? undefined : toKeyValue(new Uint8Array(key), decodeKvRecord(this.backend.location, v));
    }
    return undefined;
  }

  /**
   * A page of a range at a past revision, from history: every version of the keys in range is
   * walked in (key, revision) order and each key's last version at or before `revision` joins the
   * page unless it is a tombstone. Costs the versions kept (bounded by compaction), not the keys.
   */
  private async rangePageAt(request: RangeRequest, options: RangePageOptions, revision: number): Promise<RangePage> {
    const start = 'prefix' in request ? request.prefix : request.start;
    const end = 'prefix' in request ? prefixUpperBound(request.prefix) : request.end;
    const page = new PageBuilder(options, revision);
    let key: Uint8Array | undefined;
    let best: Uint8Array | undefined; // the current key's last version at or before `revision`
    for await (const batch of this.backend.iterate('history', historyRange(this.gen, start, end), ITERATE_BATCH_MAX)) {
      for (const [k, v] of batch) {
        const parsed = parseHistoryKey(this.backend.location, k);
        if (key && !bytesEqual(key, parsed.key)) {
          if (best && !page.offer(key, best, this.backend.location)) return page.result(true);
          best = undefined;
        }
        key = parsed.key;
        if (parsed.revision <= revision) best = v;
      }
    }
    if (key && best && !page.offer(key, best, this.backend.location)) return page.result(true);
    return page.result(false);
  }

  async stateHash(): Promise<string> {
    return (await this.stateHashAt()).stateHash;
  }

  async stateHashAt(): Promise<{ appliedIndex: number; stateHash: string }> {
    // One point-in-time view for the applied index and every record: a batch landing while the
    // scan runs (they land in the background) must not put a later state under an earlier index.
    const view = await this.backend.snapshot();
    try {
      const where = this.backend.location;
      const gen = (await readMeta(view, where, 'generation', decodeGeneration)) ?? 0;
      const applied = (await readMeta(view, where, 'applied', decodeApplied)) ?? initialApplied();
      // Paired with land(): what landed was computed first (a batch may have landed whose adoptStored has not run yet).
      assert(applied.index <= this.computedState.index || gen !== this.gen, `stored applied index ${applied.index} is past the computed ${this.computedState.index}`);
      return { appliedIndex: applied.index, stateHash: await hashState(view, gen) };
    } finally {
      await view.close();
    }
  }

  apply(items: ApplyItem[], options: { sync?: boolean; onResults?: (results: ApplyResult[]) => void } = {}): Promise<ApplyResult[]> {
    // Two stages. Computing a batch (reads, results, writes) is serialized in `queue`; landing is
    // serialized in the write-behind layer, in the same order. A batch is computed while the
    // previous one's write is still queued in LevelDB (often behind a log fsync): its reads
    // consult the writes not yet landed first.
    const computed = this.queue.run(async () => {
      this.checkNotFailed();
      try {
        return await this.compute(items, options);
      } catch (err) {
        // Refuse to go on: the batch's entries are committed, so no later batch may skip them.
        this.failure ??= err;
        throw err;
      }
    });
    return computed.then(async ({ results, landed }) => {
      await landed;
      return results;
    });
  }

  /** Registers a listener of stored-state changes; returns its removal. */
  listen(listener: KvChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The changes of `request`'s keys after `afterRevision`, up to the stored revision, the lowest
   * `maxChanges` of them (whole revisions: see watch-history.ts). QKV_COMPACTED when
   * `afterRevision` is below the compacted revision, before or during the read (the versions
   * needed may be gone).
   */
  async changes(request: RangeRequest, afterRevision: number, maxChanges: number): Promise<ChangesPage> {
    const check = () => {
      const compacted = this.storedState.compactedRevision;
      if (afterRevision < compacted) throw new RevisionCompactedError(afterRevision, compacted);
    };
    check();
    const start = 'prefix' in request ? request.prefix : request.start;
    const end = 'prefix' in request ? prefixUpperBound(request.prefix) : request.end;
    // A snapshot install replaces history (a new generation): a read it overlapped is read again.
    for (let attempt = 1; ; attempt++) {
      const gen = this.gen;
      const page = await readChanges(this.backend, { gen, location: this.backend.location, start, end, afterRevision, upToRevision: this.storedState.revision, maxChanges });
      check();
      if (this.gen === gen) return page;
      if (attempt >= CHANGES_READ_ATTEMPTS_MAX) throw new StorageIoError(this.backend.location, 'the state kept being replaced during a history read');
    }
  }

  /** Resolves once every computed batch has been written (or one failed). */
  flush(): Promise<void> {
    return this.writeBehind.flush();
  }

  /** Resolves once the history compactions started so far are done (they never reject). */
  settleCompaction(): Promise<void> {
    return this.compacting;
  }

  /**
   * Drops, in the background, the history no read at `revision` or later can see: of each key's
   * versions at or below it, all but the last, and the last too when it is a tombstone. Reads
   * below `revision` are already refused (the applied state says so), and reads at or above it
   * never need what is dropped, so readers never see a half-done compaction. Idempotent: run again
   * at open (a crash may have cut it short). Stops when a snapshot install changes the generation.
   */
  private scheduleCompaction(revision: number): void {
    const gen = this.gen;
    this.compacting = this.compacting
      .then(() => this.dropHistory(gen, revision))
      .catch((err: unknown) => {
        // A failed write poisoned the backend: the next apply fails with it. Nothing else to do.
        this.failure ??= err;
      });
  }

  private async dropHistory(gen: number, revision: number): Promise<void> {
    let ops: BatchOp[] = [];
    let key: Uint8Array | undefined;
    let last: [Uint8Array, Uint8Array] | undefined; // the current key's last version at or below `revision`
    const settle = () => {
      if (last && last[1].length === 0) ops.push({ type: 'del', ns: 'history', key: last[0] });
      last = undefined;
    };
    for await (const batch of this.backend.iterate('history', genRange(gen), ITERATE_BATCH_MAX)) {
      if (this.gen !== gen) return;
      for (const [k, v] of batch) {
        const parsed = parseHistoryKey(this.backend.location, k);
        if (!key || !bytesEqual(key, parsed.key)) {
          settle();
          key = parsed.key;
        }
        if (parsed.revision > revision) continue;
        if (last) ops.push({ type: 'del', ns: 'history', key: last[0] });
        last = [k, v];
      }
      if (ops.length >= COMPACT_DELETES_PER_WRITE) {
        await this.backend.write(ops, { sync: false, label: 'kv.compact' });
        ops = [];
      }
    }
    settle();
    if (ops.length > 0 && this.gen === gen) await this.backend.write(ops, { sync: false, label: 'kv.compact' });
  }

  /**
   * Computes one batch and starts its landing. A transaction that reads key ranges (range or
   * deleteRange ops) needs the whole range as it was before it: such a transaction starts a
   * segment of its own, computed once every earlier segment and batch has landed, so the range is
   * read from the backend alone (no pending writes to merge). Results are answered once, for the
   * whole batch, after its last segment is computed.
   */
  private async compute(
    items: ApplyItem[],
    options: { sync?: boolean; onResults?: (results: ApplyResult[]) => void },
  ): Promise<{ results: ApplyResult[]; landed: Promise<void> }> {
    const batch = prepareBatch(items);
    const cuts = rangeTxnStarts(batch);
    if (cuts.length === 0) return this.computeSegment(batch, options, false);
    const results: ApplyResult[] = [];
    let landed: Promise<void> = Promise.resolve();
    const bounds = [0, ...cuts.filter((c) => c > 0), items.length];
    for (let i = 0; i + 1 < bounds.length; i++) {
      const from = bounds[i] as number;
      const to = bounds[i + 1] as number;
      const segment: PreparedBatch = { items: batch.items.slice(from, to), commands: batch.commands.slice(from, to), keys: batch.keys.slice(from, to) };
      const out = await this.computeSegment(segment, { sync: options.sync }, cuts.includes(from));
      results.push(...out.results);
      landed = out.landed;
    }
    options.onResults?.(results);
    return { results, landed };
  }

  /** Computes one segment (gathering its reads, then the pure rules), adopts it as the computed state and starts its landing. */
  private async computeSegment(
    batch: PreparedBatch,
    options: { sync?: boolean; onResults?: (results: ApplyResult[]) => void },
    readsRanges: boolean,
  ): Promise<{ results: ApplyResult[]; landed: Promise<void> }> {
    const items = batch.items;
    const missing = new Map<string, Uint8Array>();
    const before = this.writeBehind.lookup(batch.commands, batch.keys, missing);
    const hasTxn = batch.commands.some((c) => c !== undefined && !(c instanceof CommandDecodeError) && c.op === 'txn');
    if (hasTxn) this.writeBehind.lookupKeys(txnKeysOf(batch), before, missing);
    // A put's answer (revision, term) does not depend on the key's earlier record; only the new
    // record's createRevision and version do. When every command on a key that is not at hand is
    // a put, the batch is computed and answered first, and completeDeferred fixes those two fields
    // once the read is back: the read is off the writers' path (new keys). Any other command on
    // such a key (del, cas, txn) needs the record: read first.
    const deferred = missing.size > 0 && !hasTxn && onlyPutsOn(missing, batch.commands, batch.keys) ? missing : undefined;
    if (missing.size > 0 && !deferred) await this.writeBehind.readInto(this.gen, missing, before);
    const ranges = readsRanges ? await this.readTxnRanges(batch.commands[0] as TxnCommand) : undefined;
    const needed = storedResultsNeeded(batch, (id) => this.sessions.get(id));
    const stored = needed.length === 0 ? undefined : await this.readStoredResults(needed); // usually none: no wait
    const view = new ComputedView(this.backend.location, this.computedState, before, this.sessions, stored, ranges, this.idempotency);
    const { results, writes } = applyBatch(view, batch, this.options);
    this.adoptComputed(writes, items.length);
    if (deferred) {
      options.onResults?.(results);
      const prior = new Map<string, KvRecord | null>();
      await this.writeBehind.readInto(this.gen, deferred, prior);
      completeDeferred(writes, prior);
    } else {
      assert(writes.deferred.size === 0, 'the rules deferred a key that was read');
    }
    const staged = this.writeBehind.stage(writes);
    if (!deferred) options.onResults?.(results);
    const landed = this.writeBehind.land(staged, writes, this.gen, options.sync ?? true, () => this.adoptStored(writes));
    landed.catch((err: unknown) => {
      this.failure ??= err;
    });
    return { results, landed };
  }

  /**
   * Reads the key ranges a transaction may need (txnRanges) from the backend, once every batch
   * computed before has landed: the backend then holds exactly the state before the transaction.
   */
  private async readTxnRanges(cmd: TxnCommand): Promise<Map<string, TxnRangeRows>> {
    await this.writeBehind.flush();
    this.checkNotFailed();
    assert(this.storedState.index === this.computedState.index, 'a range transaction computed with batches not landed');
    const out = new Map<string, TxnRangeRows>();
    for (const read of txnRanges(cmd)) {
      const id = rangeId(latin1(read.start), read.end && latin1(read.end), read.purpose);
      const known = out.get(id);
      if (known && (known.complete || known.rows.length >= read.need)) continue;
      out.set(id, await this.scanRange(read));
    }
    return out;
  }

  /**
   * Reads up to `need` rows of a range from the backend, stopping early once the rows hold
   * TXN_LIMITS.maxScanBytes (a range op) or maxDeleteScanBytes (a range delete) — the row that
   * crosses it included, so at least one row: a node's memory per range transaction is bounded.
   */
  private async scanRange(read: TxnRangeRead): Promise<TxnRangeRows> {
    const where = this.backend.location;
    const maxBytes = read.purpose === 'range' ? TXN_LIMITS.maxScanBytes : TXN_LIMITS.maxDeleteScanBytes;
    const rows: Array<[string, Uint8Array, KvRecord]> = [];
    let bytes = 0;
    for await (const batch of this.backend.iterate('kv', { ...kvRange(this.gen, read.start, read.end), limit: read.need }, ITERATE_BATCH_MAX)) {
      for (const [k, v] of batch) {
        const key = new Uint8Array(k.subarray(4));
        const record = decodeKvRecord(where, v);
        rows.push([latin1(key), key, record]);
        bytes += key.length + record.value.length + TXN_ROW_OVERHEAD_BYTES;
        if (bytes >= maxBytes) return { rows, complete: false };
      }
    }
    return { rows, complete: rows.length < read.need };
  }

  /** Reads the stored results a batch's retries need (storedResultsNeeded), by resultRef. */
  private async readStoredResults(needed: Array<[string, number]>): Promise<Map<string, Uint8Array | null>> {
    const out = new Map<string, Uint8Array | null>();
    for (const [id, seq] of needed) out.set(resultRef(id, seq), await this.writeBehind.storedResult(this.gen, id, seq));
    return out;
  }

  /** The computed state moves to the batch's: its session headers and applied position. */
  private adoptComputed(writes: BatchWrites, itemCount: number): void {
    // Invariant: every committed entry is computed exactly once, in order (kv-rules checks each item).
    assert(writes.applied.index === this.computedState.index + itemCount, `batch ends at ${writes.applied.index}, computed ${this.computedState.index} + ${itemCount}`);
    // Deletes, then re-inserts at the end: the table stays in ascending lastActiveMs order.
    writes.expiredSessions.forEach((id) => this.sessions.delete(id));
    writes.sessions.forEach((header, id) => {
      this.sessions.delete(id);
      this.sessions.set(id, header);
    });
    writes.idempotency.forEach((entry, key) => {
      this.idempotency.delete(key);
      if (entry) this.idempotency.set(key, entry); // at the end: entries are created in clock order
    });
    this.computedState = writes.applied;
    this.inFlight.push(writes.applied.index);
    for (const l of this.listeners) l.computed?.(writes.history, writes.applied);
  }

  /** The stored state moves to a batch that landed (called by the write-behind layer, in order). */
  private adoptStored(writes: BatchWrites): void {
    // Paired with the push in adoptComputed: batches land in the order they were computed.
    const expected = this.inFlight.shift();
    assert(expected === writes.applied.index, `batch ending at ${writes.applied.index} landed, expected ${String(expected)}`);
    assert(writes.applied.index >= this.storedState.index, 'the stored applied index went back');
    const compactedBefore = this.storedState.compactedRevision;
    this.storedState = writes.applied;
    if (writes.membership) this.storedMembership = writes.membership;
    if (writes.applied.compactedRevision > compactedBefore) this.scheduleCompaction(writes.applied.compactedRevision);
    for (const l of this.listeners) l.landed(writes.history, writes.applied);
    // Invariant: stored <= computed (the computed state never trails what landed).
    assert(this.storedState.index <= this.computedState.index, `stored applied index ${this.storedState.index} is past the computed ${this.computedState.index}`);
  }

  private checkNotFailed(): void {
    if (this.failure !== undefined) {
      throw new StorageIoError(this.backend.location, 'an earlier apply failed; close and reopen the store', { cause: this.failure });
    }
  }
}

/** A range page filling up under RangePageOptions' limits (tombstones are never offered). */
class PageBuilder {
  private readonly items: KeyValue[] = [];
  private bytes = 0;
  constructor(
    private readonly options: RangePageOptions,
    /** The revision the page is read at. */
    private readonly revision: number,
  ) {}

  /** Adds a row (an encoded, non-empty kv record); false when it does not fit: the page ends before it. */
  offer(key: Uint8Array, value: Uint8Array, location: string): boolean {
    if (value.length === 0) return true;
    const { limit, maxBytes, admitBytes } = this.options;
    const size = key.length + value.length + RANGE_ROW_OVERHEAD_BYTES;
    const fits = this.items.length === 0 || (this.items.length < limit && this.bytes + size <= maxBytes && (admitBytes?.(size) ?? true));
    if (!fits) return false;
    this.items.push(toKeyValue(key, decodeKvRecord(location, value)));
    this.bytes += size;
    return true;
  }

  result(more: boolean): RangePage {
    return { items: this.items, more, bytes: this.bytes, revision: this.revision };
  }
}

/** The view the rules read a batch through: records gathered for the batch, the computed session table. */
class ComputedView implements KvView {
  constructor(
    readonly location: string,
    readonly applied: AppliedState,
    /** The batch's keys as before the batch (null = absent; missing = deferred). */
    private readonly records: Map<string, KvRecord | null>,
    private readonly sessions: Map<string, SessionHeader>,
    /** Stored results of their own the batch's retries need, by resultRef. */
    private readonly results: Map<string, Uint8Array | null> | undefined,
    /** The ranges the batch's first transaction may read, by rangeId (readTxnRanges). */
    private readonly ranges: Map<string, TxnRangeRows> | undefined,
    readonly idempotency: IdemView,
  ) {}

  rangeRows(startK: string, endK: string | undefined, purpose: ScanPurpose): TxnRangeRows {
    const r = this.ranges?.get(rangeId(startK, endK, purpose));
    assert(r !== undefined, 'a transaction read a range that was not gathered before the batch');
    return r;
  }

  record(k: string): KvRecord | null | undefined {
    return this.records.get(k);
  }

  session(id: string): SessionHeader | undefined {
    return this.sessions.get(id);
  }

  sessionCount(): number {
    return this.sessions.size;
  }

  sessionsByActivity(): Iterator<[string, SessionHeader]> {
    return this.sessions.entries();
  }

  storedResult(id: string, seq: number): Uint8Array | null | undefined {
    return this.results?.get(resultRef(id, seq));
  }
}

/** Hashes kv + sessions of a generation in key order (generation prefix excluded). */
export async function hashState(view: ReadView, gen: number): Promise<string> {
  const h = createHash('sha256');
  for (const ns of ['kv', 'sessions'] as const) {
    h.update(ns);
    for await (const batch of view.iterate(ns, genRange(gen), ITERATE_BATCH_MAX)) {
      for (const [k, v] of batch) {
        const key = k.subarray(genPrefix(gen).length);
        h.update(u64be(key.length)).update(key).update(u64be(v.length)).update(v);
      }
    }
  }
  return h.digest('hex');
}

/** The idempotency table in memory: entries by key in ascending createdMs order, with their byte total. */
class IdemTable implements IdemView {
  private readonly entries = new Map<string, IdemEntry>();
  private total = 0;

  get(key: string): IdemEntry | undefined {
    return this.entries.get(key);
  }
  count(): number {
    return this.entries.size;
  }
  bytes(): number {
    return this.total;
  }
  byAge(): Iterator<[string, IdemEntry]> {
    return this.entries.entries();
  }
  set(key: string, entry: IdemEntry): void {
    this.delete(key);
    this.entries.set(key, entry);
    this.total += idemEntryBytes(key, entry);
  }
  delete(key: string): void {
    const old = this.entries.get(key);
    if (!old) return;
    this.entries.delete(key);
    this.total -= idemEntryBytes(key, old);
  }
}

/** Rows of a range read for a transaction: every live row when `complete`, else the first ones. */
interface TxnRangeRows {
  rows: Array<[string, Uint8Array, KvRecord]>;
  complete: boolean;
}

/** The map key of a range [startK, endK) read for `purpose` (latin1; any character may occur, so JSON). */
function rangeId(startK: string, endK: string | undefined, purpose: ScanPurpose): string {
  return JSON.stringify([startK, endK ?? null, purpose]);
}

/** Positions of the transactions of a batch that read key ranges (each starts a segment of its own). */
function rangeTxnStarts(batch: PreparedBatch): number[] {
  const out: number[] = [];
  batch.commands.forEach((c, i) => {
    if (c && !(c instanceof CommandDecodeError) && c.op === 'txn' && txnRanges(c).length > 0) out.push(i);
  });
  return out;
}

/** The point keys of every transaction of a batch (compares and single-key ops), by latin1 key. */
function txnKeysOf(batch: PreparedBatch): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const c of batch.commands) {
    if (c && !(c instanceof CommandDecodeError) && c.op === 'txn') for (const key of txnPointKeys(c)) out.set(latin1(key), key);
  }
  return out;
}

/** Whether every command on a key of `missing` is a put (the condition for answering before the read). */
function onlyPutsOn(missing: Map<string, Uint8Array>, decoded: Array<Command | CommandDecodeError | undefined>, keys: Array<string | undefined>): boolean {
  for (let i = 0; i < decoded.length; i++) {
    const k = keys[i];
    if (k !== undefined && missing.has(k) && (decoded[i] as Command).op !== 'put') return false;
  }
  return true;
}