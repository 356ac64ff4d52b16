// The replicated key-value state machine: applies committed entries in one batch per call
// (writes + applied index/term/hash + membership), with exactly-once client sessions.
import { createHash, hash } from 'node:crypto';
import { type Backend, type BatchOp, ITERATE_BATCH_MAX, type ReadView, readAll } from './backend.js';
import { type Command, CommandDecodeError, type SessionTag, decodeCommandOnce } from './commands.js';
import { bytesEqual, isRecord, latin1, u64be, writeU64be } from './codec.js';
import { encodeApplyResult } from './msgpack-writer.js';
import { StorageArgumentError, StorageCorruptError, StorageIoError, assert } from './errors.js';
import {
  type KeyValue,
  type KvRecord,
  type SessionHeader,
  decodeKvRecord,
  INLINE_RESULTS_MAX,
  INLINE_RESULT_BYTES_MAX,
  decodeSessionHeader,
  encodeKvRecord,
  encodeSessionHeader,
  genPrefix,
  genRange,
  kvKey,
  kvPrefixRange,
  kvRange,
  safeUnpack,
  sessionHeaderKey,
  sessionHeaderRange,
  sessionIdOfHeaderKey,
  sessionResultKey,
} from './kv-layout.js';
import {
  type AppliedState,
  MetaKey,
  decodeApplied,
  decodeGeneration,
  decodeMembership,
  initialApplied,
  metaPut,
  readMeta,
} from './meta.js';
import { SerialQueue } from './serial.js';
import type { Membership } from './types.js';

/** One committed entry to apply. */
export type ApplyItem =
  /** A normal entry: `data` is an encoded Command, or empty for the leader's no-op. */
  | { kind: 'entry'; index: number; term: number; data: Uint8Array }
  /** A membership change; the server computed the new membership from the conf change in `data`. */
  | { kind: 'membership'; index: number; term: number; data: Uint8Array; membership: Membership };

/** Error codes a command can end with (the entry is still applied, as a no-op). */
export type ApplyErrorCode = 'QKV_BAD_COMMAND' | 'QKV_SESSION_EXPIRED' | 'QKV_SESSIONS_FULL';

/** The result of one applied item. `revision` is the Raft index of the entry. */
export type ApplyResult =
  /**
   * `term` is the term of the entry that applied the write. A retried session write returns the
   * stored result of its first application, term included (the retry's entry may be newer).
   */
  | { op: 'put'; revision: number; term?: number }
  | { op: 'del'; deleted: boolean; revision: number; term?: number }
  | { op: 'cas'; succeeded: boolean; revision: number; current?: KeyValue; term?: number }
  /** No-op entries and membership changes. */
  | { op: 'none' }
  | { op: 'error'; code: ApplyErrorCode; message: string };

/** Range query: by prefix, or [start, end) (end omitted = to the last key). */
export type RangeRequest = { prefix: Uint8Array } | { start: Uint8Array; end?: Uint8Array };

/** Bytes a row is counted as besides its key and value (its revisions and the answer's field names). */
export const RANGE_ROW_OVERHEAD_BYTES = 64;

/** What one page of a range may hold. */
export interface RangePageOptions {
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
}

/** Tunables. Session settings must be identical on every replica (they shape replicated state). */
export interface KvOptions {
  /** A session idle longer than this (by command `timeMs`) is expired. Default 1 hour. */
  sessionTtlMs?: number;
  /** Results remembered per session; past it the lowest seq is forgotten. Default 1024. */
  maxResultsPerSession?: number;
  /** Sessions remembered; a new session beyond it gets QKV_SESSIONS_FULL. Default 100 000. */
  maxSessions?: number;
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
  /** The key's current value and metadata, or undefined. */
  get(key: Uint8Array): Promise<KeyValue | undefined>;
  /** Keys in byte order, at most `limit` (1..maxRangeLimit). */
  range(request: RangeRequest, limit: number): Promise<KeyValue[]>;
  /**
   * One page of a range, read row by row from the store: reading stops at `limit` rows, at
   * `maxBytes`, or when `admitBytes` says no, so a page never holds more than one row beyond what
   * it returns (the row that shows there is more).
   */
  rangePage(request: RangeRequest, options: RangePageOptions): Promise<RangePage>;
  /** True when the session table holds `id` (a write in it would not create a session). */
  hasSession(id: string): boolean;
  /** Index of the last applied entry (0 initially). */
  appliedIndex(): number;
  /** Index, term, chained hash and replicated clock of the applied position. */
  applied(): AppliedState;
  /** The current membership, once one was applied or installed. */
  membership(): Membership | undefined;
  /** sha256 (hex) over kv + sessions in key order: equal on replicas with equal state. */
  stateHash(): Promise<string>;
  /** stateHash() and the applied index of exactly the state it hashed (one consistent view). */
  stateHashAt(): Promise<{ appliedIndex: number; stateHash: string }>;
}

/** chainHash's input buffer, reused (hashing is synchronous); grows to the largest entry seen. */
let chainScratch = Buffer.allocUnsafe(1024);
/** Entries larger than this get a buffer of their own rather than growing the scratch buffer. */
const CHAIN_SCRATCH_MAX_BYTES = 64 * 1024;

/** Chains the applied hash over one entry: sha256(prev ++ index ++ term ++ data). */
export function chainHash(prev: Uint8Array, index: number, term: number, data: Uint8Array): Uint8Array {
  return latin1Bytes(chainHashLatin1(latin1(prev), index, term, data));
}

/**
 * chainHash with the hashes as latin1 strings (one character per byte). A digest returned as a
 * string stays on the V8 heap; as a Buffer it cost an ArrayBuffer per entry (two mallocs and GC
 * tracking), two thirds of the hashing time. ApplyTx chains strings and makes bytes once per batch.
 */
function chainHashLatin1(prev: string, index: number, term: number, data: Uint8Array): string {
  // One reused buffer and a one-shot digest: a Hash object per entry cost a third more.
  const size = prev.length + 16 + data.length;
  if (chainScratch.length < size && size <= CHAIN_SCRATCH_MAX_BYTES) chainScratch = Buffer.allocUnsafe(Math.max(size, 2 * chainScratch.length));
  const input = size <= chainScratch.length ? chainScratch.subarray(0, size) : Buffer.allocUnsafe(size);
  input.write(prev, 0, 'latin1');
  writeU64be(input, prev.length, index);
  writeU64be(input, prev.length + 8, term);
  input.set(data, prev.length + 16);
  return hash('sha256', input, 'binary'); // 'binary' is latin1
}

/** A latin1 string's bytes, as a plain Uint8Array. */
function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function toKeyValue(key: Uint8Array, r: KvRecord): KeyValue {
  return { key, value: r.value, createRevision: r.createRevision, modRevision: r.modRevision, version: r.version };
}

/** The KvStateMachine over any Backend. */
export class KvStateMachineImpl implements KvStateMachine {
  readonly options: Required<KvOptions>;
  /** Serializes apply and snapshot install. */
  readonly queue = new SerialQueue();
  /** In-memory copy of the session headers, ordered by lastActiveMs (ascending). */
  private sessions = new Map<string, SessionHeader>();
  private appliedState: AppliedState = initialApplied();
  private currentMembership: Membership | undefined;
  private gen = 0;
  /** Set when an apply failed midway; the in-memory session map can no longer be trusted. */
  private failure: unknown;
  /** Recent kv records of the current generation, exactly as stored (null = absent). */
  private readonly cache: RecordCache;
  /** Bumped whenever applied writes or an install change what the cache may hold. */
  private cacheEpoch = 0;
  /** State after the last computed batch (ahead of appliedState while its write is pending). */
  private computedState: AppliedState = initialApplied();
  /** Writes of computed batches not yet in LevelDB, by latin1 key, with the batch that wrote them. */
  private readonly pendingKv = new Map<string, { record: KvRecord | null; batch: number }>();
  private readonly pendingResults = new Map<string, { packed: Uint8Array | null; batch: number }>();
  private batchSeq = 0;
  /** The write chain: batches land in the order they were computed. */
  private landing: Promise<void> = Promise.resolve();

  private constructor(
    readonly backend: Backend,
    options: KvOptions,
  ) {
    this.options = { ...DEFAULT_KV_OPTIONS, ...options };
    const o = this.options;
    if (!(o.sessionTtlMs > 0 && o.maxResultsPerSession >= 1 && o.maxSessions >= 1 && o.maxRangeLimit >= 1 && o.recordCacheBytes >= 0)) {
      throw new StorageArgumentError(`invalid KvOptions ${JSON.stringify(o)}: every limit must be positive`);
    }
    this.cache = new RecordCache(o.recordCacheBytes);
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

  /** Re-reads everything cached from the backend (at open and after a snapshot install). */
  async reload(): Promise<void> {
    const b = this.backend;
    this.cache.clear();
    this.cacheEpoch++;
    this.gen = (await readMeta(b, b.location, 'generation', decodeGeneration)) ?? 0;
    this.appliedState = (await readMeta(b, b.location, 'applied', decodeApplied)) ?? initialApplied();
    this.computedState = this.appliedState;
    assert(this.pendingKv.size === 0 && this.pendingResults.size === 0, 'reload with writes not landed');
    this.currentMembership = await readMeta(b, b.location, 'membership', decodeMembership);
    const headers: Array<[string, SessionHeader]> = [];
    for (const [key, value] of await readAll(b, 'sessions', sessionHeaderRange(this.gen))) {
      headers.push([sessionIdOfHeaderKey(key), decodeSessionHeader(b.location, value)]);
    }
    // Invariant: map order is ascending lastActiveMs (ties in any order: expiry takes a whole tie).
    headers.sort((a, b2) => a[1].lastActiveMs - b2[1].lastActiveMs);
    this.sessions = new Map(headers);
    this.cache.clear(); // again: a get() that ran during the reload may have cached old data
    this.cacheEpoch++;
  }

  appliedIndex(): number {
    return this.appliedState.index;
  }

  applied(): AppliedState {
    return { ...this.appliedState, hash: this.appliedState.hash.slice() };
  }

  membership(): Membership | undefined {
    return this.currentMembership && structuredClone(this.currentMembership);
  }

  async get(key: Uint8Array): Promise<KeyValue | undefined> {
    const k = latin1(key);
    let record = this.cache.get(k);
    if (record === undefined) {
      const epoch = this.cacheEpoch;
      const bytes = await this.backend.get('kv', kvKey(this.gen, key));
      record = bytes === undefined ? null : decodeKvRecord(this.backend.location, bytes);
      // Only if no apply or install finished meanwhile: the read may predate its writes.
      if (epoch === this.cacheEpoch) this.cache.set(k, record);
    }
    return record ? toKeyValue(new Uint8Array(key), { ...record, value: record.value.slice() }) : undefined;
  }

  async range(request: RangeRequest, limit: number): Promise<KeyValue[]> {
    return (await this.rangePage(request, { limit, maxBytes: Number.POSITIVE_INFINITY })).items;
  }

  async rangePage(request: RangeRequest, options: RangePageOptions): Promise<RangePage> {
    const { limit, maxBytes, admitBytes } = options;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > this.options.maxRangeLimit) {
      throw new StorageArgumentError(`range limit must be an integer in 1..${this.options.maxRangeLimit}, got ${limit}`);
    }
    const bounds = 'prefix' in request ? kvPrefixRange(this.gen, request.prefix) : kvRange(this.gen, request.start, request.end);
    const items: KeyValue[] = [];
    let bytes = 0;
    // One row past the limit shows whether there is more. Batches are small (LevelDB's iterator
    // stops a batch at 16 KiB, so a large value comes alone), and the loop stops at the first row
    // that does not fit: only rows that join the page, plus that one, are ever read.
    for await (const batch of this.backend.iterate('kv', { ...bounds, limit: limit + 1 }, Math.min(limit + 1, ITERATE_BATCH_MAX))) {
      for (const [k, v] of batch) {
        const key = k.subarray(4);
        const size = key.length + v.length + RANGE_ROW_OVERHEAD_BYTES;
        const fits = items.length === 0 || (items.length < limit && bytes + size <= maxBytes && (admitBytes?.(size) ?? true));
        if (!fits) return { items, more: true, bytes };
        items.push(toKeyValue(new Uint8Array(key), decodeKvRecord(this.backend.location, v)));
        bytes += size;
      }
    }
    return { items, more: false, bytes };
  }

  hasSession(id: string): boolean {
    return this.sessions.has(id);
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
      return { appliedIndex: applied.index, stateHash: await hashState(view, gen) };
    } finally {
      await view.close();
    }
  }

  apply(items: ApplyItem[], options: { sync?: boolean; onResults?: (results: ApplyResult[]) => void } = {}): Promise<ApplyResult[]> {
    // Two stages. Computing a batch (reads, results, ops) is serialized in `queue`; writing is
    // serialized in `landing`, in the same order. A batch is computed while the previous one's
    // write is still queued in LevelDB (often behind a log fsync): its reads consult the writes
    // not yet landed first (`pendingKv`, `pendingResults`).
    const computed = this.queue.run(async () => {
      this.checkNotFailed();
      try {
        const decoded = items.map(decodeItem);
        const keys = new Array<string | undefined>(items.length);
        const missing = new Map<string, Uint8Array>();
        const before = this.lookup(decoded, keys, missing);
        // A put's answer (revision, term) does not depend on the key's earlier record; only the
        // new record's createRevision and version do. When every command on a key that is not at
        // hand is a put, the batch is computed and answered first, and ApplyTx completes those
        // two fields once the read is back: the read is off the writers' path (new keys). Any
        // other command on such a key (del, cas) needs the record: read first.
        const deferred = missing.size > 0 && onlyPutsOn(missing, decoded, keys) ? missing : undefined;
        if (missing.size > 0 && !deferred) await this.readInto(missing, before);
        const tx = new ApplyTx(this, this.sessions, this.computedState, before, deferred);
        const results: ApplyResult[] = [];
        for (let i = 0; i < items.length; i++) {
          // Synchronous unless a command needs a read the lookup could not do (rare).
          const r = tx.applyItem(items[i] as ApplyItem, decoded[i], keys[i]);
          results.push(r instanceof Promise ? await r : r);
        }
        if (deferred) {
          options.onResults?.(results);
          const prior = new Map<string, KvRecord | null>();
          await this.readInto(deferred, prior);
          tx.completeDeferred(prior);
        }
        const ops = tx.ops();
        const batch = ++this.batchSeq;
        // forEach, not for-of with destructuring: no entry array per key (this runs per write).
        tx.kvWrites().forEach((w, k) => this.pendingKv.set(k, { record: w[1], batch }));
        tx.resultWrites().forEach((w, k) => this.pendingResults.set(k, { packed: w[1], batch }));
        this.computedState = tx.applied;
        if (!deferred) options.onResults?.(results);
        const landed = this.landing.then(async () => {
          this.checkNotFailed();
          await this.backend.write(ops, { sync: options.sync ?? true, label: 'kv.apply' });
          tx.kvWrites().forEach((w, k) => {
            this.cache.set(k, w[1]);
            if (this.pendingKv.get(k)?.batch === batch) this.pendingKv.delete(k);
          });
          tx.resultWrites().forEach((_w, k) => {
            if (this.pendingResults.get(k)?.batch === batch) this.pendingResults.delete(k);
          });
          this.cacheEpoch++;
          this.appliedState = tx.applied;
          if (tx.membership) this.currentMembership = tx.membership;
        });
        landed.catch((err: unknown) => {
          this.failure ??= err;
        });
        this.landing = landed.catch(() => undefined);
        return { results, landed };
      } catch (err) {
        // The session map may hold changes that never reached the disk: refuse to go on from it.
        this.failure ??= err;
        throw err;
      }
    });
    return computed.then(async ({ results, landed }) => {
      await landed;
      return results;
    });
  }

  /** Resolves once every computed batch has been written (or one failed). */
  flush(): Promise<void> {
    return this.landing;
  }

  private checkNotFailed(): void {
    if (this.failure !== undefined) {
      throw new StorageIoError(this.backend.location, 'an earlier apply failed; close and reopen the store', { cause: this.failure });
    }
  }

  /**
   * The records, as of before the batch, of the keys the batch's commands touch that are at hand
   * (earlier batches' unlanded writes, then the cache); the others go to `missing`, to be read
   * with one getMany (readInto) instead of a round trip per command.
   */
  private lookup(
    decoded: Array<Command | CommandDecodeError | undefined>,
    /** Filled with each command's key as a latin1 string (computed once per command). */
    keys: Array<string | undefined>,
    missing: Map<string, Uint8Array>,
  ): Map<string, KvRecord | null> {
    const out = new Map<string, KvRecord | null>();
    for (let i = 0; i < decoded.length; i++) {
      const cmd = decoded[i];
      if (!cmd || cmd instanceof CommandDecodeError) continue;
      const k = latin1(cmd.key);
      keys[i] = k;
      if (out.has(k) || missing.has(k)) continue;
      const pending = this.pendingKv.get(k);
      if (pending) {
        out.set(k, pending.record);
        continue;
      }
      const cached = this.cache.get(k);
      if (cached !== undefined) out.set(k, cached);
      else missing.set(k, cmd.key);
    }
    return out;
  }

  /** Reads the records of `keys` (by latin1 key) with one getMany into `out` (null = absent). */
  private async readInto(keys: Map<string, Uint8Array>, out: Map<string, KvRecord | null>): Promise<void> {
    const list = [...keys.values()];
    const values = await this.backend.getMany('kv', list.map((k) => kvKey(this.gen, k)));
    list.forEach((k, i) => {
      const bytes = values[i];
      out.set(latin1(k), bytes === undefined ? null : decodeKvRecord(this.backend.location, bytes));
    });
  }

  /** Reads a kv record (for ApplyTx). */
  async readRecord(key: Uint8Array): Promise<KvRecord | undefined> {
    const pending = this.pendingKv.get(latin1(key));
    if (pending) return pending.record ?? undefined;
    const bytes = await this.backend.get('kv', kvKey(this.gen, key));
    return bytes && decodeKvRecord(this.backend.location, bytes);
  }

  /** Reads a stored session result (for ApplyTx). */
  async readResult(id: string, seq: number): Promise<ApplyResult | undefined> {
    const key = sessionResultKey(this.gen, id, seq);
    const pending = this.pendingResults.get(latin1(key));
    if (pending) return pending.packed ? decodeStoredResult(this.backend.location, pending.packed) : undefined;
    const bytes = await this.backend.get('sessions', key);
    return bytes && decodeStoredResult(this.backend.location, bytes);
  }
}

/** Decodes the command of an item up front: undefined for no-ops and membership changes. */
function decodeItem(item: ApplyItem): Command | CommandDecodeError | undefined {
  if (item.kind !== 'entry' || item.data.length === 0) return undefined;
  try {
    return decodeCommandOnce(item.data);
  } catch (err) {
    assert(err instanceof CommandDecodeError, `unexpected decode failure: ${String(err)}`);
    return err;
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

/** Whether every command on a key of `missing` is a put (the condition for answering before the read). */
function onlyPutsOn(missing: Map<string, Uint8Array>, decoded: Array<Command | CommandDecodeError | undefined>, keys: Array<string | undefined>): boolean {
  for (let i = 0; i < decoded.length; i++) {
    const k = keys[i];
    if (k !== undefined && missing.has(k) && (decoded[i] as Command).op !== 'put') return false;
  }
  return true;
}

function decodeStoredResult(location: string, bytes: Uint8Array): ApplyResult {
  const raw = safeUnpack(location, 'session result', bytes);
  if (!isRecord(raw) || typeof raw['op'] !== 'string') throw new StorageCorruptError(location, 'a session result has an invalid shape');
  const r = raw as unknown as ApplyResult;
  if (r.op === 'cas' && r.current) {
    const c = r.current;
    r.current = { ...c, key: new Uint8Array(c.key), value: new Uint8Array(c.value) };
  }
  return r;
}

/**
 * One apply batch: an overlay of the writes so far (reads see earlier writes of the same batch),
 * turned into one list of ops at the end. Session headers are updated in the shared in-memory
 * map directly; if the batch write then fails, the backend is poisoned and the store must be
 * reopened, which reloads the map from disk.
 */
class ApplyTx {
  private readonly kv = new Map<string, [Uint8Array, KvRecord | null]>();
  /** Result records written (packed) or deleted (null) by the batch. */
  private readonly results = new Map<string, [Uint8Array, Uint8Array | null]>();
  private readonly touchedSessions = new Set<string>();
  membership: Membership | undefined;

  // The applied position as items apply: fields rather than an object per entry, and the chained
  // hash as a latin1 string (see chainHashLatin1); `applied` builds the AppliedState when read.
  private index: number;
  private term: number;
  private clockMs: number;
  private hashLatin1: string;
  private appliedState: AppliedState | undefined;

  constructor(
    private readonly sm: KvStateMachineImpl,
    private readonly sessions: Map<string, SessionHeader>,
    start: AppliedState,
    /** Records of the batch's keys as they were before the batch (null = absent). */
    private readonly before: Map<string, KvRecord | null>,
    /** Keys whose earlier record is read after the batch is computed; only puts touch them. */
    private readonly deferred?: Map<string, Uint8Array>,
  ) {
    this.index = start.index;
    this.term = start.term;
    this.clockMs = start.clockMs;
    this.hashLatin1 = latin1(start.hash);
    this.appliedState = start;
  }

  /** The applied position after the items so far. */
  get applied(): AppliedState {
    return (this.appliedState ??= { index: this.index, term: this.term, hash: latin1Bytes(this.hashLatin1), clockMs: this.clockMs });
  }

  private advance(index: number, term: number, hashLatin1: string, clockMs: number): void {
    this.index = index;
    this.term = term;
    this.hashLatin1 = hashLatin1;
    this.clockMs = clockMs;
    this.appliedState = undefined;
  }

  /**
   * Applies one item; `decoded` is decodeItem(item), `k` its key as latin1. Returns the result at
   * once when every read it needs is at hand (the batch lookup makes that the rule), else a promise;
   * the caller awaits it before the next item.
   */
  applyItem(item: ApplyItem, decoded: Command | CommandDecodeError | undefined, k: string | undefined): ApplyResult | Promise<ApplyResult> {
    // Invariant: entries are applied exactly once, in index order.
    assert(item.index === this.index + 1, `apply of index ${item.index} after applied index ${this.index}`);
    const hash = chainHashLatin1(this.hashLatin1, item.index, item.term, item.data);
    let result: ApplyResult = { op: 'none' };
    let clockMs = this.clockMs;
    if (item.kind === 'membership') {
      const m = decodeMembership(item.membership);
      assert(m !== undefined, 'membership item with an invalid membership');
      this.membership = m;
    } else if (decoded instanceof CommandDecodeError) {
      result = { op: 'error', code: 'QKV_BAD_COMMAND', message: decoded.message };
    } else if (decoded) {
      if (decoded.timeMs !== undefined && decoded.timeMs > clockMs) {
        clockMs = decoded.timeMs;
        this.expireSessions(clockMs);
      }
      const r = this.applySessionCommand(decoded, k ?? latin1(decoded.key), item.index, item.term, clockMs);
      if (r instanceof Promise) {
        return r.then((res) => {
          this.advance(item.index, item.term, hash, clockMs);
          return res;
        });
      }
      result = r;
    }
    this.advance(item.index, item.term, hash, clockMs);
    return result;
  }

  /** Expires every session idle longer than the TTL. Deterministic: depends only on replicated state. */
  private expireSessions(clockMs: number): void {
    const cutoffMs = clockMs - this.sm.options.sessionTtlMs;
    for (const [id, header] of this.sessions) {
      if (header.lastActiveMs >= cutoffMs) break; // map is ordered by lastActiveMs
      for (const seq of header.seqs) this.forgetResult(id, header, seq);
      this.sessions.delete(id);
      this.touchedSessions.add(id);
    }
  }

  private applySessionCommand(cmd: Command, k: string, index: number, term: number, clockMs: number): ApplyResult | Promise<ApplyResult> {
    const tag = cmd.session;
    if (!tag) return thenMap(this.executeCommand(cmd, k, index), (r) => withTerm(r, term));
    let header = this.sessions.get(tag.id);
    if (!header) {
      // Seqs count from 1 (protocol convention): a client that already had an answer has
      // ackedBelow > 1, so an unknown session with it must have expired (or been discarded).
      if (tag.ackedBelow > 1) return sessionError('QKV_SESSION_EXPIRED', `session ${tag.id} is unknown or expired`);
      if (this.sessions.size >= this.sm.options.maxSessions) {
        return sessionError('QKV_SESSIONS_FULL', `the session table is full (${this.sm.options.maxSessions} sessions)`);
      }
      header = { lastActiveMs: clockMs, discardedBelow: 0, seqs: [], inline: new Map() };
    }
    // Touch: re-insert at the end keeps the map ordered by lastActiveMs (the clock never goes back).
    this.sessions.delete(tag.id);
    this.sessions.set(tag.id, header);
    header.lastActiveMs = clockMs;
    this.touchedSessions.add(tag.id);
    this.discardBelow(tag.id, header, tag.ackedBelow);
    if (header.seqs.includes(tag.seq)) {
      return thenMap(this.readResult(tag.id, header, tag.seq), (stored) => {
        assert(stored !== undefined, `session ${tag.id} lists seq ${tag.seq} without a stored result`);
        return stored;
      });
    }
    if (tag.seq < header.discardedBelow) {
      return sessionError('QKV_SESSION_EXPIRED', `session ${tag.id}: the result of seq ${tag.seq} was already discarded`);
    }
    const r = this.executeCommand(cmd, k, index);
    if (r instanceof Promise) return r.then((res) => this.keepResult(tag, header, withTerm(res, term)));
    return this.keepResult(tag, header, withTerm(r, term));
  }

  /** Records a new result in its session (exactly-once bookkeeping) and returns it. */
  private keepResult(tag: SessionTag, header: SessionHeader, result: ApplyResult): ApplyResult {
    insertSorted(header.seqs, tag.seq);
    this.storeResult(tag.id, header, tag.seq, result);
    while (header.seqs.length > this.sm.options.maxResultsPerSession) {
      this.discardBelow(tag.id, header, (header.seqs[0] as number) + 1);
    }
    return result;
  }

  /** Forgets results of seqs below `seq`. */
  private discardBelow(id: string, header: SessionHeader, seq: number): void {
    if (seq <= header.discardedBelow) return;
    header.discardedBelow = seq;
    while (header.seqs.length > 0 && (header.seqs[0] as number) < seq) this.forgetResult(id, header, header.seqs.shift() as number);
  }

  /** Executes a command against the key's current record: at once when it is known, else after a read. */
  private executeCommand(cmd: Command, k: string, index: number): ApplyResult | Promise<ApplyResult> {
    if (this.deferred?.has(k)) {
      assert(cmd.op === 'put', `a ${cmd.op} on a key whose record is read after the batch`);
      return this.putDeferred(k, cmd.key, cmd.value, index);
    }
    const known = this.known(k);
    if (known !== undefined) return this.execute(cmd, k, index, known ?? undefined);
    return this.sm.readRecord(cmd.key).then((record) => this.execute(cmd, k, index, record));
  }

  private execute(cmd: Command, k: string, index: number, current: KvRecord | undefined): ApplyResult {
    switch (cmd.op) {
      case 'put':
        this.put(k, cmd.key, current, cmd.value, index);
        return { op: 'put', revision: index };
      case 'del':
        if (current) this.write(k, cmd.key, null);
        return { op: 'del', deleted: current !== undefined, revision: index };
      case 'cas': {
        const c = cmd.cond;
        const ok =
          'modRevision' in c
            ? (current?.modRevision ?? 0) === c.modRevision
            : 'value' in c
              ? current !== undefined && bytesEqual(current.value, c.value)
              : current === undefined;
        if (!ok) return current ? { op: 'cas', succeeded: false, revision: index, current: toKeyValue(cmd.key, current) } : { op: 'cas', succeeded: false, revision: index };
        if (cmd.then.op === 'put') this.put(k, cmd.key, current, cmd.then.value, index);
        else if (current) this.write(k, cmd.key, null);
        return { op: 'cas', succeeded: true, revision: index };
      }
    }
  }

  private put(k: string, key: Uint8Array, current: KvRecord | undefined, value: Uint8Array, index: number): void {
    this.write(k, key, {
      // Copied: a command's value is a view into a network frame, which the cache must not keep alive.
      value: value.slice(),
      createRevision: current ? current.createRevision : index,
      modRevision: index,
      version: current ? current.version + 1 : 1,
    });
  }

  /** Puts of one deferred key in this batch: the first one's index and how many. */
  private readonly deferredPuts = new Map<string, { firstIndex: number; count: number }>();

  /**
   * A put on a deferred key. createRevision and version are provisional — right if the key was
   * absent before the batch — until completeDeferred sees the record it had.
   */
  private putDeferred(k: string, key: Uint8Array, value: Uint8Array, index: number): ApplyResult {
    let d = this.deferredPuts.get(k);
    if (!d) this.deferredPuts.set(k, (d = { firstIndex: index, count: 0 }));
    d.count++;
    this.write(k, key, { value: value.slice(), createRevision: d.firstIndex, modRevision: index, version: d.count });
    return { op: 'put', revision: index };
  }

  /** Completes the deferred keys' records from what they were before the batch (`prior`, null = absent). */
  completeDeferred(prior: Map<string, KvRecord | null>): void {
    this.deferredPuts.forEach((d, k) => {
      const was = prior.get(k);
      if (!was) return; // absent: the provisional fields stand
      const record = this.kv.get(k)?.[1];
      assert(record, `deferred key without a record in the batch`);
      record.createRevision = was.createRevision;
      record.version = was.version + d.count;
    });
  }

  /** The key's record as of this point of the batch (null = absent), or undefined when not known without a read. */
  private known(k: string): KvRecord | null | undefined {
    const pending = this.kv.get(k);
    if (pending) return pending[1];
    return this.before.get(k);
  }

  private write(k: string, key: Uint8Array, record: KvRecord | null): void {
    this.kv.set(k, [key, record]);
  }

  /** The kv writes of the batch, by latin1 key. */
  kvWrites(): Map<string, [Uint8Array, KvRecord | null]> {
    return this.kv;
  }

  /** The session result records written (packed) or deleted (null) by the batch, by latin1 key. */
  resultWrites(): Map<string, [Uint8Array, Uint8Array | null]> {
    return this.results;
  }

  private readResult(id: string, header: SessionHeader, seq: number): ApplyResult | undefined | Promise<ApplyResult | undefined> {
    const inline = header.inline.get(seq);
    if (inline) return decodeStoredResult(this.sm.backend.location, inline);
    const key = sessionResultKey(this.sm.generation(), id, seq);
    const pending = this.results.get(latin1(key));
    if (pending) return pending[1] ? decodeStoredResult(this.sm.backend.location, pending[1]) : undefined;
    return this.sm.readResult(id, seq);
  }

  /** Keeps a result: small ones inline in the session header, the rest in their own record. */
  private storeResult(id: string, header: SessionHeader, seq: number, result: ApplyResult): void {
    const packed = encodeApplyResult(result);
    if (packed.length <= INLINE_RESULT_BYTES_MAX && header.inline.size < INLINE_RESULTS_MAX) {
      header.inline.set(seq, packed);
      return;
    }
    this.setRecord(id, seq, packed);
  }

  /** Drops a stored result (inline: just from the header; else its record is deleted). */
  private forgetResult(id: string, header: SessionHeader, seq: number): void {
    if (header.inline.delete(seq)) return;
    this.setRecord(id, seq, null);
  }

  private setRecord(id: string, seq: number, packed: Uint8Array | null): void {
    const key = sessionResultKey(this.sm.generation(), id, seq);
    this.results.set(latin1(key), [key, packed]);
  }

  /** Every write of the batch, plus the applied state and membership. */
  ops(): BatchOp[] {
    const gen = this.sm.generation();
    const ops: BatchOp[] = [];
    this.kv.forEach((w) => {
      const k = kvKey(gen, w[0]);
      const rec = w[1];
      ops.push(rec ? { type: 'put', ns: 'kv', key: k, value: encodeKvRecord(rec) } : { type: 'del', ns: 'kv', key: k });
    });
    this.results.forEach((w) => {
      const key = w[0];
      const result = w[1];
      ops.push(result ? { type: 'put', ns: 'sessions', key, value: result } : { type: 'del', ns: 'sessions', key });
    });
    for (const id of this.touchedSessions) {
      const header = this.sessions.get(id);
      const key = sessionHeaderKey(gen, id);
      ops.push(header ? { type: 'put', ns: 'sessions', key, value: encodeSessionHeader(header) } : { type: 'del', ns: 'sessions', key });
    }
    ops.push(metaPut(MetaKey.applied, this.applied));
    if (this.membership) ops.push(metaPut(MetaKey.membership, this.membership));
    return ops;
  }
}

/** Inserts `seq` into the ascending list (clients number upwards: usually an append; no sort). */
function insertSorted(seqs: number[], seq: number): void {
  let i = seqs.length;
  while (i > 0 && (seqs[i - 1] as number) > seq) i--;
  seqs.splice(i, 0, seq);
}

/** f(x) now when x is a value, after it resolves when it is a promise. */
function thenMap<T, U>(x: T | Promise<T>, f: (v: T) => U): U | Promise<U> {
  return x instanceof Promise ? x.then(f) : f(x);
}

/**
 * `r` with the entry's term, as `{ ...r, term }` would give it (same keys, same order: stored
 * result bytes depend on it), but built as literals: on Node 20 that spread takes V8's slow path
 * (about 0.5 µs, more than encoding the result), and this runs for every write.
 */
function withTerm(r: ApplyResult, term: number): ApplyResult {
  switch (r.op) {
    case 'put':
      return { op: 'put', revision: r.revision, term };
    case 'del':
      return { op: 'del', deleted: r.deleted, revision: r.revision, term };
    case 'cas':
      return 'current' in r
        ? { op: 'cas', succeeded: r.succeeded, revision: r.revision, current: r.current, term }
        : { op: 'cas', succeeded: r.succeeded, revision: r.revision, term };
    default:
      return r;
  }
}

function sessionError(code: ApplyErrorCode, message: string): ApplyResult {
  return { op: 'error', code, message };
}

/**
 * A byte-bounded cache of kv records by latin1 key; `null` records a known-absent key. Records are
 * shared, never mutated (every write makes a new one).
 *
 * Two generations instead of a strict LRU: entries go into `young`; when `young` holds half the
 * capacity it becomes `old` and the previous `old` is dropped whole; a hit in `old` moves the entry
 * back to `young`. A hit in `young` — the common case under load — touches nothing, where an LRU
 * refresh (delete + re-insert into a 10,000-entry Map) on every read cost a visible share of each
 * apply. At most the capacity is held (each generation ≤ half, plus one entry).
 */
class RecordCache {
  private young = new Map<string, KvRecord | null>();
  private youngBytes = 0;
  private old = new Map<string, KvRecord | null>();
  private oldBytes = 0;
  constructor(private readonly capacityBytes: number) {}

  get(k: string): KvRecord | null | undefined {
    const r = this.young.get(k);
    if (r !== undefined) return r;
    const o = this.old.get(k);
    if (o === undefined) return undefined;
    this.old.delete(k);
    this.oldBytes -= sizeOf(k, o);
    this.addYoung(k, o);
    return o;
  }

  set(k: string, r: KvRecord | null): void {
    if (this.capacityBytes === 0) return;
    const y = this.young.get(k);
    if (y !== undefined) {
      this.young.delete(k);
      this.youngBytes -= sizeOf(k, y);
    }
    const o = this.old.get(k);
    if (o !== undefined) {
      this.old.delete(k);
      this.oldBytes -= sizeOf(k, o);
    }
    if (sizeOf(k, r) > this.capacityBytes / 8) return; // one huge value must not flush the cache
    this.addYoung(k, r);
  }

  private addYoung(k: string, r: KvRecord | null): void {
    this.young.set(k, r);
    this.youngBytes += sizeOf(k, r);
    if (this.youngBytes > this.capacityBytes / 2) {
      this.old = this.young;
      this.oldBytes = this.youngBytes;
      this.young = new Map();
      this.youngBytes = 0;
    }
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
    this.youngBytes = 0;
    this.oldBytes = 0;
  }
}

function sizeOf(k: string, r: KvRecord | null): number {
  return 64 + k.length + (r ? r.value.length : 0);
}
