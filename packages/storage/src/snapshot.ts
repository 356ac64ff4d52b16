// State snapshots at the storage level: a reader that streams a consistent LevelDB snapshot of
// kv + sessions + history + applied meta as fixed-size chunks, and a writer that stages incoming chunks
// under a fresh generation and installs them with one synced batch that flips the generation
// pointer (and resets the log). A crash at any point leaves the old state or the new, never a mix.
//
// Stream format: a sequence of records  tag(1) ++ keyLen(4 BE) ++ key ++ valueLen(4 BE) ++ value
//   tag 1 header   key empty, value pack({format, applied, membership?})   — first record
//   tag 2 kv       key = user key,        value = stored kv record
//   tag 3 session  key = sessions key,    value = stored session record (generation prefix removed)
//   tag 4 trailer  key empty, value pack({records, sha256}) — sha256 of every byte before it; last
//   tag 5 history  key = history key,     value = a version or empty (tombstone) (generation prefix removed)
// Chunks cut this byte stream at fixed sizes; records may span chunks.
import { createHash, type Hash } from 'node:crypto';
import type { Backend, BatchOp, Namespace } from './backend.js';
import { bytesEqual, concat, concatAll, isIndex, isRecord, pack, u32be } from './codec.js';
import { SnapshotCorruptError, StorageArgumentError, assert } from './errors.js';
import { type KvStateMachineImpl } from './kv-state-machine.js';
import { type KvRecord, decodeKvRecord, decodeSessionHeader, genPrefix, genRange, historyKey, safeUnpack } from './kv-layout.js';
import type { LogStoreImpl } from './log-store.js';
import {
  type AppliedState,
  MetaKey,
  STORAGE_FORMAT_VERSION,
  decodeApplied,
  decodeIndexApplied,
  decodeGeneration,
  decodeMembership,
  initialApplied,
  metaPut,
  readMeta,
} from './meta.js';
import type { HardState, Membership } from './types.js';

/** Default snapshot chunk size. */
export const DEFAULT_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** Largest record (key + value) accepted in a snapshot stream; bounds the writer's buffer. */
export const SNAPSHOT_MAX_RECORD_BYTES = 64 * 1024 * 1024;
/** Pairs read per iterator step while streaming (keeps each synchronous slice of work short). */
const READ_BATCH_PAIRS = 128;

const Tag = { header: 1, kv: 2, session: 3, trailer: 4, history: 5 } as const;
const RECORD_OVERHEAD_BYTES = 9;
/** First byte of a session header key (after the generation prefix): 'h'. */
const SESSION_HEADER_TAG = 0x68;

/** What a snapshot holds: the applied position and the membership at it. */
export interface SnapshotInfo {
  index: number;
  term: number;
  /** The chained applied hash at `index` (compare with a replica that applied the log). */
  hash: Uint8Array;
  clockMs: number;
  membership?: Membership;
}

/** A consistent snapshot of the state, streamed as chunks. Always `close()` it (also after iterating). */
export interface SnapshotReader extends AsyncIterable<Uint8Array> {
  readonly info: SnapshotInfo;
  close(): Promise<void>;
}

/** Options of SnapshotWriter.install. */
export interface InstallOptions {
  /** Written with the flip (a follower's hard state). */
  hardState?: HardState;
  /**
   * Installs this membership instead of the stream's: restoring a backup into a new cluster,
   * whose members are not the source's (docs/server.md, "Backup and restore").
   */
  membership?: Membership;
}

/** Receives a snapshot stream, then installs it atomically or drops it. */
export interface SnapshotWriter {
  /** Index/term the snapshot was announced with; the stream's header must match. */
  readonly expected: { index: number; term: number };
  /** Bytes accepted so far (a resuming sender continues from here). */
  bytesReceived(): number;
  /** Parses and stages one chunk. A malformed stream throws QKV_SNAPSHOT_CORRUPT (then abort). */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Swaps in the staged state with one synced batch: generation pointer, applied state,
   * membership, `hardState` when given, and the log reset to start after the snapshot.
   * Throws QKV_SNAPSHOT_CORRUPT if the stream is incomplete or its checksum does not match.
   */
  install(options?: InstallOptions): Promise<SnapshotInfo>;
  /** Drops the staged data. Safe to call more than once and after a failure. */
  abort(): Promise<void>;
}

function record(tag: number, key: Uint8Array, value: Uint8Array): Uint8Array {
  return concat(new Uint8Array([tag]), u32be(key.length), key, u32be(value.length), value);
}

/** Opens a reader on a point-in-time view of the backend. */
export async function openSnapshotReader(backend: Backend, chunkBytes: number): Promise<SnapshotReader> {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new StorageArgumentError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
  const view = await backend.snapshot();
  try {
    const where = backend.location;
    const gen = (await readMeta(view, where, 'generation', decodeGeneration)) ?? 0;
    const applied = (await readMeta(view, where, 'applied', decodeApplied)) ?? initialApplied();
    const membership = await readMeta(view, where, 'membership', decodeMembership);
    const info: SnapshotInfo = { ...applied, ...(membership ? { membership } : {}) };
    const header = pack({ format: STORAGE_FORMAT_VERSION, applied, ...(membership ? { membership } : {}) });
    async function* records(): AsyncGenerator<Uint8Array> {
      yield record(Tag.header, new Uint8Array(0), header);
      for (const [ns, tag] of [['kv', Tag.kv], ['sessions', Tag.session], ['history', Tag.history]] as const) {
        for await (const batch of view.iterate(ns, genRange(gen), READ_BATCH_PAIRS)) {
          for (const [k, v] of batch) yield record(tag, k.subarray(genPrefix(gen).length), v);
        }
      }
    }
    return {
      info,
      close: () => view.close(),
      [Symbol.asyncIterator]: () => chunked(records(), chunkBytes),
    };
  } catch (err) {
    await view.close();
    throw err;
  }
}

/** Cuts a record stream into chunks of exactly `chunkBytes` (the last may be shorter), adding the trailer. */
async function* chunked(records: AsyncGenerator<Uint8Array>, chunkBytes: number): AsyncGenerator<Uint8Array> {
  const hash = createHash('sha256');
  let count = 0;
  let parts: Uint8Array[] = [];
  let size = 0;
  const push = (b: Uint8Array) => {
    parts.push(b);
    size += b.length;
  };
  function* drain(all: boolean): Generator<Uint8Array> {
    if (size === 0 || (!all && size < chunkBytes)) return;
    let buf = concatAll(parts);
    while (buf.length >= chunkBytes || (all && buf.length > 0)) {
      yield buf.slice(0, chunkBytes);
      buf = buf.subarray(Math.min(chunkBytes, buf.length));
    }
    parts = buf.length > 0 ? [buf] : [];
    size = buf.length;
  }
  for await (const r of records) {
    hash.update(r);
    count++;
    push(r);
    yield* drain(false);
  }
  push(record(Tag.trailer, new Uint8Array(0), pack({ records: count, sha256: new Uint8Array(hash.digest()) })));
  yield* drain(true);
}

/** The snapshot format of builds whose revisions were Raft indexes; still accepted (see decodeHeader). */
const INDEX_REVISION_SNAPSHOT_FORMAT = 2;
/** A format-3 stream (before idempotency entries): the same records, none of them idempotency entries. */
const PRE_IDEMPOTENCY_SNAPSHOT_FORMAT = 3;

/** A format-2 applied state as format 3 has it after migration (meta.ts, migrateToRevisions). */
function migratedApplied(x: unknown): AppliedState | undefined {
  const applied = decodeIndexApplied(x);
  return applied && { ...applied, compactedRevision: applied.revision };
}

interface HeaderRecord {
  applied: AppliedState;
  membership?: Membership;
  /** A format-2 stream: no history records; each kv record is given its version as it is staged. */
  indexRevisions?: true;
}

function decodeHeader(value: Uint8Array): HeaderRecord {
  const raw = safeUnpackSnapshot(value, 'header');
  const format = isRecord(raw) ? raw['format'] : undefined;
  const current = format === STORAGE_FORMAT_VERSION || format === PRE_IDEMPOTENCY_SNAPSHOT_FORMAT;
  if (!isRecord(raw) || (!current && format !== INDEX_REVISION_SNAPSHOT_FORMAT)) {
    throw new SnapshotCorruptError(`unsupported snapshot format ${String(format ?? '?')}`);
  }
  // A format-2 sender (an older build) has no revisions: its revision is its index, with no history below.
  const applied = current ? decodeApplied(raw['applied']) : migratedApplied(raw['applied']);
  if (!applied) throw new SnapshotCorruptError('header has an invalid applied state');
  const old = current ? {} : ({ indexRevisions: true } as const);
  if (raw['membership'] === undefined) return { applied, ...old };
  const membership = decodeMembership(raw['membership']);
  if (!membership) throw new SnapshotCorruptError('header has an invalid membership');
  return { applied, membership, ...old };
}

function safeUnpackSnapshot(value: Uint8Array, what: string): unknown {
  try {
    return safeUnpack('snapshot stream', what, value);
  } catch {
    throw new SnapshotCorruptError(`the ${what} record is not decodable`);
  }
}

/** One record of a snapshot stream, located in a buffer: the raw record spans start..end. */
interface StreamRecord {
  tag: number;
  key: Uint8Array;
  value: Uint8Array;
  start: number;
  end: number;
}

/** The record starting at `at` in `buf`, or undefined while it is incomplete. Throws on an oversized record. */
function nextRecordAt(buf: Uint8Array, at: number): StreamRecord | undefined {
  if (buf.length - at < 5) return undefined;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const keyLen = dv.getUint32(at + 1);
  if (keyLen > SNAPSHOT_MAX_RECORD_BYTES) throw new SnapshotCorruptError(`a key of ${keyLen} bytes exceeds the record limit`);
  if (buf.length - at < 9 + keyLen) return undefined;
  const valueLen = dv.getUint32(at + 5 + keyLen);
  if (keyLen + valueLen > SNAPSHOT_MAX_RECORD_BYTES) throw new SnapshotCorruptError(`a record of ${keyLen + valueLen} bytes exceeds the limit`);
  const end = at + RECORD_OVERHEAD_BYTES + keyLen + valueLen;
  if (buf.length < end) return undefined;
  return { tag: buf[at] as number, key: buf.subarray(at + 5, at + 5 + keyLen), value: buf.subarray(at + 9 + keyLen, end), start: at, end };
}

/** What a complete, verified snapshot stream holds (see inspectSnapshotStream). */
export interface SnapshotStreamSummary {
  info: SnapshotInfo;
  /** kv records (keys) and session records. */
  kvRecords: number;
  sessionRecords: number;
  /** Versions of the retained history (tombstones included). */
  historyRecords: number;
  /** Bytes of the stream, trailer included. */
  bytes: number;
}

/**
 * Reads a whole snapshot stream without storing it and verifies it as an install would: header
 * first, every record decodable, the trailer's record count and SHA-256. Throws
 * QKV_SNAPSHOT_CORRUPT naming what is wrong (damaged, truncated, data after the trailer).
 * Memory: one chunk plus at most one record (SNAPSHOT_MAX_RECORD_BYTES).
 */
export async function inspectSnapshotStream(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<SnapshotStreamSummary> {
  const hash = createHash('sha256');
  let pending: Uint8Array = new Uint8Array(0);
  let header: HeaderRecord | undefined;
  let records = 0;
  let bytes = 0;
  let trailerOk = false;
  const counts = { kv: 0, session: 0, history: 0 };
  for await (const chunk of chunks) {
    bytes += chunk.length;
    pending = pending.length === 0 ? chunk : concat(pending, chunk);
    let at = 0;
    for (let rec = nextRecordAt(pending, at); rec; rec = nextRecordAt(pending, at)) {
      at = rec.end;
      if (trailerOk) throw new SnapshotCorruptError('data after the trailer');
      if (rec.tag === Tag.trailer) {
        checkTrailerRecord(rec.value, records, new Uint8Array(hash.copy().digest()));
        trailerOk = true;
        continue;
      }
      hash.update(pending.subarray(rec.start, rec.end));
      records++;
      if (rec.tag === Tag.header) {
        if (header) throw new SnapshotCorruptError('a second header record');
        header = decodeHeader(rec.value);
      } else if (!header) throw new SnapshotCorruptError('the first record is not the header');
      else if (rec.tag === Tag.kv) {
        decodeKvRecordForSnapshot(rec.value);
        counts.kv++;
      } else if (rec.tag === Tag.session) {
        decodeSessionRecordForSnapshot(rec.key, rec.value);
        counts.session++;
      } else if (rec.tag === Tag.history) {
        if (rec.value.length > 0) decodeKvRecordForSnapshot(rec.value); // empty: a tombstone
        counts.history++;
      } else throw new SnapshotCorruptError(`unknown record tag ${rec.tag}`);
    }
    pending = pending.slice(at);
  }
  if (!trailerOk || !header || pending.length > 0) throw new SnapshotCorruptError('the stream is incomplete (truncated: no valid trailer)');
  const info: SnapshotInfo = { ...header.applied, ...(header.membership ? { membership: header.membership } : {}) };
  return { info, kvRecords: counts.kv, sessionRecords: counts.session, historyRecords: counts.history, bytes };
}

/** Checks a trailer record against the count and digest of the records before it. */
function checkTrailerRecord(value: Uint8Array, records: number, digest: Uint8Array): void {
  const raw = safeUnpackSnapshot(value, 'trailer');
  if (!isRecord(raw) || !isIndex(raw['records']) || !(raw['sha256'] instanceof Uint8Array)) throw new SnapshotCorruptError('invalid trailer');
  if (raw['records'] !== records || !bytesEqual(raw['sha256'], digest)) {
    throw new SnapshotCorruptError('checksum or record count mismatch (stream damaged or incomplete)');
  }
}

/** Parses a chunked record stream incrementally and stages records under a new generation. */
export class SnapshotWriterImpl implements SnapshotWriter {
  private pending: Uint8Array = new Uint8Array(0);
  private received = 0;
  private records = 0;
  private readonly hash: Hash = createHash('sha256');
  private header: HeaderRecord | undefined;
  private trailerOk = false;
  private state: 'open' | 'installed' | 'aborted' = 'open';

  constructor(
    private readonly backend: Backend,
    private readonly kv: KvStateMachineImpl,
    private readonly log: LogStoreImpl,
    readonly expected: { index: number; term: number },
    private readonly stagingGen: number,
    private readonly onDone: (w: SnapshotWriterImpl) => void,
  ) {}

  bytesReceived(): number {
    return this.received;
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.checkOpen();
    this.received += chunk.length;
    this.pending = this.pending.length === 0 ? chunk.slice() : concat(this.pending, chunk);
    const ops: BatchOp[] = [];
    let at = 0;
    for (;;) {
      const rec = nextRecordAt(this.pending, at);
      if (!rec) break;
      at = rec.end;
      this.handleRecord(rec.tag, rec.key, rec.value, this.pending.subarray(rec.start, rec.end), ops);
    }
    this.pending = this.pending.slice(at);
    // Synced: a later synced write does NOT make this one durable when LevelDB switched journal
    // files in between (it does not sync the old one), and the flip must never name lost records.
    await this.backend.write(ops, { sync: true, label: 'snapshot.stage' });
  }

  private handleRecord(tag: number, key: Uint8Array, value: Uint8Array, raw: Uint8Array, ops: BatchOp[]): void {
    if (this.trailerOk) throw new SnapshotCorruptError('data after the trailer');
    if (tag === Tag.trailer) return this.checkTrailer(value);
    this.hash.update(raw);
    this.records++;
    if (tag === Tag.header) {
      if (this.header) throw new SnapshotCorruptError('a second header record');
      this.header = decodeHeader(value);
      const a = this.header.applied;
      if (a.index !== this.expected.index || a.term !== this.expected.term) {
        throw new SnapshotCorruptError(`stream is for ${a.index}/${a.term}, expected ${this.expected.index}/${this.expected.term}`);
      }
      return;
    }
    if (!this.header) throw new SnapshotCorruptError('the first record is not the header');
    let ns: Namespace;
    if (tag === Tag.kv) {
      const record = decodeKvRecordForSnapshot(value);
      ns = 'kv';
      if (this.header.indexRevisions) ops.push({ type: 'put', ns: 'history', key: historyKey(this.stagingGen, key, record.modRevision), value: value.slice() });
    } else if (tag === Tag.session) {
      decodeSessionRecordForSnapshot(key, value);
      ns = 'sessions';
    } else if (tag === Tag.history) {
      if (value.length > 0) decodeKvRecordForSnapshot(value); // empty: a tombstone
      ns = 'history';
    } else throw new SnapshotCorruptError(`unknown record tag ${tag}`);
    ops.push({ type: 'put', ns, key: concat(genPrefix(this.stagingGen), key), value: value.slice() });
  }

  private checkTrailer(value: Uint8Array): void {
    checkTrailerRecord(value, this.records, new Uint8Array(this.hash.copy().digest()));
    this.trailerOk = true;
  }

  install(options: InstallOptions = {}): Promise<SnapshotInfo> {
    this.checkOpen();
    if (!this.trailerOk || !this.header || this.pending.length > 0) {
      return Promise.reject(new SnapshotCorruptError('the stream is incomplete (no valid trailer yet)'));
    }
    const header: HeaderRecord = options.membership ? { ...this.header, membership: options.membership } : this.header;
    return this.kv.queue.run(() =>
      this.log.exclusive(async () => {
        await this.kv.flush(); // every computed apply batch lands before the state is replaced
        const oldGen = this.kv.generation();
        if (header.applied.index <= this.kv.appliedIndex()) {
          // Installing it would roll the state machine back; the core never asks for that.
          throw new StorageArgumentError(`snapshot at index ${header.applied.index} is not newer than the applied index ${this.kv.appliedIndex()}`);
        }
        const logReset = await this.log.prepareReset({ index: header.applied.index, term: header.applied.term }, options.hardState);
        await logReset.beforeWrite();
        const ops: BatchOp[] = [
          metaPut(MetaKey.generation, this.stagingGen),
          metaPut(MetaKey.applied, header.applied),
          header.membership ? metaPut(MetaKey.membership, header.membership) : { type: 'del', ns: 'meta', key: MetaKey.membership },
          ...logReset.ops,
        ];
        if (options.hardState) ops.push(metaPut(MetaKey.hardState, options.hardState));
        // The flip: synced. The staged chunks were synced as they were written (see write()).
        await this.backend.write(ops, { sync: true, label: 'snapshot.flip' });
        this.state = 'installed';
        this.onDone(this);
        logReset.commit();
        await logReset.afterWrite();
        await this.kv.reload();
        await dropGenerationsExcept(this.backend, this.kv.generation(), 'snapshot.cleanup');
        assert(this.kv.generation() === this.stagingGen && oldGen !== this.stagingGen, 'generation flip did not take');
        return { ...header.applied, ...(header.membership ? { membership: header.membership } : {}) };
      }),
    );
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.onDone(this);
    for (const ns of GENERATION_NAMESPACES) await this.backend.clear(ns, genRange(this.stagingGen), 'snapshot.abort');
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new StorageArgumentError(`snapshot writer is already ${this.state}`);
  }
}

function decodeKvRecordForSnapshot(value: Uint8Array): KvRecord {
  try {
    return decodeKvRecord('snapshot stream', value);
  } catch {
    throw new SnapshotCorruptError('a kv record is not decodable');
  }
}

/** Session records are decoded again after install: refuse undecodable ones before the flip. */
function decodeSessionRecordForSnapshot(key: Uint8Array, value: Uint8Array): void {
  try {
    if (key[0] === SESSION_HEADER_TAG) decodeSessionHeader('snapshot stream', value);
    else safeUnpack('snapshot stream', 'session result', value);
  } catch {
    throw new SnapshotCorruptError('a session record is not decodable');
  }
}

/** The namespaces whose keys start with a generation (the state a snapshot carries). */
const GENERATION_NAMESPACES = ['kv', 'sessions', 'history'] as const;

/** Deletes every generation of kv/sessions/history but `gen` (leftovers of an install or an interrupted stage). */
export async function dropGenerationsExcept(backend: Backend, gen: number, label: string): Promise<void> {
  for (const ns of GENERATION_NAMESPACES) {
    if (gen > 0) await backend.clear(ns, { lt: genPrefix(gen) }, label);
    await backend.clear(ns, { gte: genPrefix(gen + 1) }, label);
  }
}
