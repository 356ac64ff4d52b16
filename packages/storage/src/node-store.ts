// A node's storage: one database (LevelDB, or the memory twin) holding the Raft log, the
// key-value state machine and snapshots.
import { type Backend, LevelBackend, MemoryBackend, MemoryDisk, type TestHooks } from './backend.js';
import { StorageArgumentError } from './errors.js';
import { type KvOptions, type KvStateMachine, KvStateMachineImpl } from './kv-state-machine.js';
import { type LogStore, LogStoreImpl, type MarkTimer } from './log-store.js';
import { checkFormat } from './meta.js';
import {
  DEFAULT_SNAPSHOT_CHUNK_BYTES,
  type SnapshotReader,
  type SnapshotWriter,
  SnapshotWriterImpl,
  dropGenerationsExcept,
  openSnapshotReader,
} from './snapshot.js';

/** Options of openNodeStore / openMemoryNodeStore. */
export interface NodeStoreOptions {
  /** Create the database when the directory holds none. Default true. */
  createIfMissing?: boolean;
  /** State-machine tunables (identical on every replica). */
  kv?: KvOptions;
  /** Snapshot chunk size in bytes. Default 1 MiB. */
  snapshotChunkBytes?: number;
  /** Delay before the high-water mark's confirmation record; default MARK_CONFIRM_DELAY_MS (see log-store.ts). */
  markConfirmDelayMs?: number;
  /** The confirmation's timer; default setTimeout (see LogStoreOptions.markTimer). */
  markTimer?: MarkTimer;
  /** Test-only fault injection. Never set in production. */
  testHooks?: TestHooks;
}

/** Everything a node keeps on disk. */
export interface NodeStore {
  /** Where the data lives (directory, or "memory"). */
  readonly location: string;
  readonly log: LogStore;
  readonly kv: KvStateMachine;
  /** Captures a consistent snapshot of kv + sessions + applied meta; iterate it for chunks. */
  openSnapshotReader(options?: { chunkBytes?: number }): Promise<SnapshotReader>;
  /**
   * Starts receiving a snapshot announced as `meta` (index/term). At most one writer is open:
   * opening another aborts the previous one.
   */
  openSnapshotWriter(meta: { index: number; term: number }): Promise<SnapshotWriter>;
  /** What opening found inconsistent and set right (the host logs it). */
  readonly openReport: OpenReport;
  close(): Promise<void>;
}

/** Inconsistencies `openNodeStore` found and repaired from the store's own records. */
export interface OpenReport {
  /**
   * The state machine had applied past the end of the log (the log's tail was lost from LevelDB's
   * journal, a later apply batch was not): the log now starts after the applied index, as after
   * a snapshot. `lastIndex` is where the log ended.
   */
  logRebasedOnApplied?: { lastIndex: number; appliedIndex: number };
}

class NodeStoreImpl implements NodeStore {
  private writer: SnapshotWriterImpl | undefined;

  constructor(
    private readonly backend: Backend,
    readonly log: LogStoreImpl,
    readonly kv: KvStateMachineImpl,
    private readonly chunkBytes: number,
    readonly openReport: OpenReport,
  ) {}

  get location(): string {
    return this.backend.location;
  }

  openSnapshotReader(options: { chunkBytes?: number } = {}): Promise<SnapshotReader> {
    return openSnapshotReader(this.backend, options.chunkBytes ?? this.chunkBytes);
  }

  async openSnapshotWriter(meta: { index: number; term: number }): Promise<SnapshotWriter> {
    if (!Number.isSafeInteger(meta.index) || meta.index < 1 || !Number.isSafeInteger(meta.term) || meta.term < 0) {
      throw new StorageArgumentError(`invalid snapshot meta ${JSON.stringify(meta)}`);
    }
    await this.writer?.abort();
    const stagingGen = this.kv.generation() + 1;
    const writer = new SnapshotWriterImpl(this.backend, this.kv, this.log, { ...meta }, stagingGen, (w) => {
      if (this.writer === w) this.writer = undefined;
    });
    this.writer = writer;
    return writer;
  }

  async close(): Promise<void> {
    await this.writer?.abort().catch(() => undefined);
    try {
      await this.kv.flush(); // computed apply batches land first (a failed one poisoned the store)
      await this.kv.settleCompaction();
      // A clean stop leaves the mark proving every completed append. If it cannot (a poisoned
      // store), the mark proves less, which is safe: close still succeeds, as it did before.
      await this.log.settleMark().catch(() => undefined);
    } finally {
      await this.backend.close();
    }
  }
}

async function openOn(backend: Backend, options: NodeStoreOptions): Promise<NodeStore> {
  try {
    await checkFormat(backend);
    const kv = await KvStateMachineImpl.open(backend, options.kv);
    // Leftovers of an interrupted stage or of a cleanup cut short by a crash: unreachable, drop them.
    await dropGenerationsExcept(backend, kv.generation(), 'open.cleanup');
    const log = await LogStoreImpl.open(backend, undefined, {
      ...(options.markConfirmDelayMs === undefined ? {} : { markConfirmDelayMs: options.markConfirmDelayMs }),
      ...(options.markTimer === undefined ? {} : { markTimer: options.markTimer }),
    });
    const report: OpenReport = {};
    const applied = kv.applied();
    const lastIndex = log.lastIndex();
    if (await log.rebaseOnApplied({ index: applied.index, term: applied.term })) {
      report.logRebasedOnApplied = { lastIndex, appliedIndex: applied.index };
    }
    return new NodeStoreImpl(backend, log, kv, options.snapshotChunkBytes ?? DEFAULT_SNAPSHOT_CHUNK_BYTES, report);
  } catch (err) {
    await backend.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Opens the LevelDB store of a node in `dir`. On first open it writes the format record; later
 * opens refuse a newer format (QKV_STORAGE_FORMAT) or damaged metadata (QKV_STORAGE_CORRUPT).
 *
 * @example
 * const store = await openNodeStore('/var/lib/quorumkv/n1');
 * const { hardState, entries } = await store.log.load();
 */
export async function openNodeStore(dir: string, options: NodeStoreOptions = {}): Promise<NodeStore> {
  const backend = await LevelBackend.open(dir, { createIfMissing: options.createIfMissing ?? true, hooks: options.testHooks ?? {} });
  return openOn(backend, options);
}

/**
 * Opens the in-memory twin on `disk`. Closing and reopening on the same disk simulates a restart
 * (everything written survives; `sync` has no effect).
 */
export async function openMemoryNodeStore(disk: MemoryDisk = new MemoryDisk(), options: NodeStoreOptions = {}): Promise<NodeStore> {
  return openOn(new MemoryBackend(disk, options.testHooks ?? {}), options);
}

/** A fresh in-memory LogStore (the twin of the LevelDB log store). */
export async function createMemoryLogStore(): Promise<LogStore> {
  return (await openMemoryNodeStore()).log;
}

/** A fresh in-memory KvStateMachine (the twin of the LevelDB state machine). */
export async function createMemoryKvStateMachine(options: KvOptions = {}): Promise<KvStateMachine> {
  return (await openMemoryNodeStore(new MemoryDisk(), { kv: options })).kv;
}

export { MemoryDisk };
