// The write-behind layer between the state machine's pure rules (kv-rules.ts) and the backend.
//
// A batch's writes are computed before they land: the host answers writers from the results and
// computes the next batch while this one's write is still queued in LevelDB (often behind a log
// fsync). Until a batch lands, its kv records and result records are "pending" here, and the next
// batch's reads consult them first, then a byte-bounded cache of landed records, then the backend.
// Batches land in the order they were staged, one at a time (`landing` is a chain).
import type { Backend, BatchOp } from './backend.js';
import { CommandDecodeError, type Command, type KeyCommand } from './commands.js';
import { latin1 } from './codec.js';
import { assert } from './errors.js';
import {
  type KvRecord,
  decodeKvRecord,
  encodeKvRecord,
  encodeSessionHeader,
  HISTORY_TOMBSTONE,
  historyKey,
  kvKey,
  sessionHeaderKey,
  sessionResultKey,
} from './kv-layout.js';
import { type BatchWrites, resultRef } from './kv-rules.js';
import { MetaKey, metaPut } from './meta.js';
import { encodeIdemEntry, idemKey } from './idempotency.js';

/** A staged batch: its number (1, 2, … in staging order) and the applied index it ends at. */
export interface StagedBatch {
  seq: number;
  appliedIndex: number;
}

/** Pending writes, the record cache and the landing chain of one state machine. */
export class WriteBehind {
  /** Recent kv records of the current generation, exactly as stored (null = absent). */
  private readonly cache: RecordCache;
  /** Bumped whenever landed writes or a reset change what the cache may hold. */
  private cacheEpoch = 0;
  /** kv writes of staged batches not yet landed, by latin1 user key, with the batch that wrote them. */
  private readonly pendingKv = new Map<string, { record: KvRecord | null; batch: number }>();
  /** Result records of staged batches not yet landed, by resultRef. */
  private readonly pendingResults = new Map<string, { packed: Uint8Array | null; batch: number }>();
  /** Number of the last staged batch. */
  private stagedSeq = 0;
  /** Number of the last landed batch. Invariant: landedSeq <= stagedSeq. */
  private landedSeq = 0;
  /** The write chain: batches land in the order they were staged. */
  private landing: Promise<void> = Promise.resolve();

  constructor(
    private readonly backend: Backend,
    cacheBytes: number,
  ) {
    this.cache = new RecordCache(cacheBytes);
  }

  /** Batches staged and not landed yet. */
  inFlight(): number {
    return this.stagedSeq - this.landedSeq;
  }

  /** Forgets the cache (at open and after a snapshot install). Nothing may be in flight. */
  reset(): void {
    assert(this.inFlight() === 0 && this.pendingKv.size === 0 && this.pendingResults.size === 0, 'reset with writes not landed');
    this.cache.clear();
    this.cacheEpoch++;
  }

  /**
   * The records, as of before the batch, of the keys the batch's commands touch that are at hand
   * (pending writes, then the cache); the others go to `missing`, to be read with one getMany
   * (readInto) instead of a round trip per command.
   */
  lookup(commands: Array<Command | CommandDecodeError | undefined>, keys: Array<string | undefined>, missing: Map<string, Uint8Array>): Map<string, KvRecord | null> {
    const out = new Map<string, KvRecord | null>();
    for (let i = 0; i < commands.length; i++) {
      const k = keys[i];
      if (k === undefined || out.has(k) || missing.has(k)) continue;
      const pending = this.pendingKv.get(k);
      if (pending) {
        out.set(k, pending.record);
        continue;
      }
      const cached = this.cache.get(k);
      if (cached !== undefined) out.set(k, cached);
      else missing.set(k, (commands[i] as KeyCommand).key); // a command with a key (compact has none)
    }
    return out;
  }

  /** As lookup, for keys given directly (a transaction's keys), by latin1 key; keys already in `out` or `missing` are skipped. */
  lookupKeys(keys: Map<string, Uint8Array>, out: Map<string, KvRecord | null>, missing: Map<string, Uint8Array>): void {
    keys.forEach((key, k) => {
      if (out.has(k) || missing.has(k)) return;
      const pending = this.pendingKv.get(k);
      if (pending) return void out.set(k, pending.record);
      const cached = this.cache.get(k);
      if (cached !== undefined) out.set(k, cached);
      else missing.set(k, key);
    });
  }

  /** Reads the landed records of `keys` (by latin1 key) with one getMany into `out` (null = absent). */
  async readInto(gen: number, keys: Map<string, Uint8Array>, out: Map<string, KvRecord | null>): Promise<void> {
    const list = [...keys.values()];
    const values = await this.backend.getMany('kv', list.map((k) => kvKey(gen, k)));
    list.forEach((k, i) => {
      const bytes = values[i];
      out.set(latin1(k), bytes === undefined ? null : decodeKvRecord(this.backend.location, bytes));
    });
  }

  /** A result record as of the last staged batch: pending, else landed (null = none). */
  async storedResult(gen: number, id: string, seq: number): Promise<Uint8Array | null> {
    const pending = this.pendingResults.get(resultRef(id, seq));
    if (pending) return pending.packed;
    return (await this.backend.get('sessions', sessionResultKey(gen, id, seq))) ?? null;
  }

  /**
   * A key's LANDED record (null = absent), through the cache: reads see the stored state, never a
   * batch still pending (a read must not see a write that may yet be lost to a crash).
   */
  async landedRecord(gen: number, key: Uint8Array): Promise<KvRecord | null> {
    const k = latin1(key);
    const cached = this.cache.get(k);
    if (cached !== undefined) return cached;
    const epoch = this.cacheEpoch;
    const bytes = await this.backend.get('kv', kvKey(gen, key));
    const record = bytes === undefined ? null : decodeKvRecord(this.backend.location, bytes);
    // Only if no batch landed and no reset happened meanwhile: the read may predate their writes.
    if (epoch === this.cacheEpoch) this.cache.set(k, record);
    return record;
  }

  /** Makes a computed batch's writes visible to the next batches' reads; returns its number. */
  stage(writes: BatchWrites): StagedBatch {
    const seq = ++this.stagedSeq;
    // forEach, not for-of with destructuring: no entry array per key (this runs per write).
    writes.kv.forEach((w, k) => this.pendingKv.set(k, { record: w[1], batch: seq }));
    writes.results.forEach((w, ref) => this.pendingResults.set(ref, { packed: w.packed, batch: seq }));
    return { seq, appliedIndex: writes.applied.index };
  }

  /**
   * Writes a staged batch after every batch staged before it; `landed` runs once it is in the
   * backend (before the next batch lands). A failure rejects this and every later landing.
   */
  land(batch: StagedBatch, writes: BatchWrites, gen: number, sync: boolean, landed: () => void): Promise<void> {
    const ops = batchOps(writes, gen);
    const done = this.landing.then(async () => {
      // Paired with stage(): batches land one at a time, in the order they were staged.
      assert(batch.seq === this.landedSeq + 1, `batch ${batch.seq} lands after batch ${this.landedSeq}`);
      await this.backend.write(ops, { sync, label: 'kv.apply' });
      this.landedSeq = batch.seq;
      writes.kv.forEach((w, k) => {
        this.cache.set(k, w[1]);
        if (this.pendingKv.get(k)?.batch === batch.seq) this.pendingKv.delete(k);
      });
      writes.results.forEach((_w, ref) => {
        if (this.pendingResults.get(ref)?.batch === batch.seq) this.pendingResults.delete(ref);
      });
      this.cacheEpoch++;
      landed();
    });
    this.landing = done.catch(() => undefined);
    return done;
  }

  /** Resolves once every staged batch has landed (or one failed). */
  flush(): Promise<void> {
    return this.landing;
  }
}

/** Every write of a batch as backend ops under generation `gen`, plus the applied state and membership. */
export function batchOps(writes: BatchWrites, gen: number): BatchOp[] {
  const ops: BatchOp[] = [];
  // Each version is encoded once: a key's last version is the same record object as its kv write,
  // whose op takes the same bytes (a copy of the value per put stays: the price of reading at a
  // revision; docs/storage.md, "History").
  let latest: Map<KvRecord, Uint8Array> | undefined;
  for (const h of writes.history) {
    const value = h.record ? encodeKvRecord(h.record) : HISTORY_TOMBSTONE;
    if (h.record && writes.kv.get(h.k)?.[1] === h.record) (latest ??= new Map()).set(h.record, value);
    ops.push({ type: 'put', ns: 'history', key: historyKey(gen, h.key, h.revision), value });
  }
  writes.kv.forEach((w) => {
    const k = kvKey(gen, w[0]);
    const rec = w[1];
    ops.push(rec ? { type: 'put', ns: 'kv', key: k, value: latest?.get(rec) ?? encodeKvRecord(rec) } : { type: 'del', ns: 'kv', key: k });
  });
  writes.results.forEach((w) => {
    const key = sessionResultKey(gen, w.id, w.seq);
    ops.push(w.packed ? { type: 'put', ns: 'sessions', key, value: w.packed } : { type: 'del', ns: 'sessions', key });
  });
  writes.expiredSessions.forEach((id) => ops.push({ type: 'del', ns: 'sessions', key: sessionHeaderKey(gen, id) }));
  writes.idempotency.forEach((entry, key) => {
    const k = idemKey(gen, key);
    ops.push(entry ? { type: 'put', ns: 'sessions', key: k, value: encodeIdemEntry(entry) } : { type: 'del', ns: 'sessions', key: k });
  });
  writes.sessions.forEach((header, id) => ops.push({ type: 'put', ns: 'sessions', key: sessionHeaderKey(gen, id), value: encodeSessionHeader(header) }));
  ops.push(metaPut(MetaKey.applied, writes.applied));
  if (writes.membership) ops.push(metaPut(MetaKey.membership, writes.membership));
  return ops;
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
