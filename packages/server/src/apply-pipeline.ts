// The apply pipeline: committed entries to the state machine, in order, behind the log write
// (docs/server.md, "The applied index on the host"). Applying runs behind persisting, as in etcd: a
// Ready's committed entries are queued (queue) and the loop goes on to the next Ready while they
// apply, so the fsync of new entries overlaps the apply of committed ones. At most
// `maxBatchesInFlight` batches wait before queue() makes the loop wait.
//
// Three positions, each checked where it is written and where it is read back:
//   queued   — the last entry handed to the state machine (= the core's applied after advance());
//   computed — the last entry whose results are computed (its writers are answered);
//   stored   — kv.appliedIndex(): the last entry whose batch landed (reads and restarts see this).
// Invariant: stored ≤ computed ≤ queued ≤ committed, and batches are queued with no gap.
import { EntryType, type Entry } from '@quorumkv/raft';
import type { ApplyItem, ApplyResult, KvStateMachine } from '@quorumkv/storage';
import { hostAssert } from './host-assert.js';

/** Apply batches queued behind the log write before the loop waits for them. */
export const MAX_APPLY_BATCHES_IN_FLIGHT = 4;

/** What the pipeline needs from the node. */
export interface ApplyPipelineDeps {
  kv: Pick<KvStateMachine, 'apply' | 'appliedIndex'>;
  /** The stopwatch for the apply metric (world.elapsedMs). */
  elapsedMs(): number;
  /**
   * A conf-change entry is queued: the change takes effect in the core and the host now, in log
   * order (before any later entry is queued). Returns the item the state machine stores.
   */
  confChange(e: Entry): ApplyItem;
  /** A batch's results are computed (before it lands): answer its writers. */
  onComputed(entries: Entry[], results: ApplyResult[]): void;
  /** A batch landed: the stored applied index reached `appliedIndex`. */
  onWritten(batch: { appliedIndex: number; bytes: number; seconds: number }): void;
  /** A batch failed to apply or land: the node must stop (its entries are committed). */
  onFatal(e: Error): void;
}

/** Committed entries to the state machine, in order, at most MAX_APPLY_BATCHES_IN_FLIGHT batches deep. */
export class ApplyPipeline {
  /** Apply batches, chained: each link resolves when the batch's results are computed. */
  private applyChain: Promise<void> = Promise.resolve();
  /** Resolves when the last started apply batch is written (batches are written in order). */
  private landedChain: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private queuedUpTo: number;
  private computedUpTo: number;

  constructor(
    private readonly deps: ApplyPipelineDeps,
    private readonly maxBatchesInFlight = MAX_APPLY_BATCHES_IN_FLIGHT,
  ) {
    this.queuedUpTo = deps.kv.appliedIndex();
    this.computedUpTo = this.queuedUpTo;
  }

  /** The last entry queued (what the core counts as applied once the Ready is advanced). */
  queued(): number {
    return this.queuedUpTo;
  }

  /** Queues committed entries; waits only when too many batches are queued. */
  async queue(entries: Entry[]): Promise<void> {
    hostAssert(entries.length > 0, 'an empty apply batch');
    const first = entries[0]!.index;
    hostAssert(first === this.queuedUpTo + 1, () => `apply batch starts at ${first}, the last one queued ended at ${this.queuedUpTo}`);
    this.queuedUpTo = entries[entries.length - 1]!.index;
    const items = entries.map((e) => this.item(e)); // conf changes take effect in the core now, in order
    this.inFlight++;
    this.applyChain = this.applyChain.then(() => this.apply(entries, items));
    this.applyChain.catch((e: unknown) => this.deps.onFatal(e as Error));
    if (this.inFlight >= this.maxBatchesInFlight) await this.appliedAndWritten();
  }

  /** Resolves once every queued batch is applied and written. */
  async appliedAndWritten(): Promise<void> {
    await this.applyChain;
    await this.landedChain;
  }

  /**
   * A snapshot replaced the state at `index` (call after appliedAndWritten and the install): the
   * next batch starts after it.
   */
  restartAt(index: number): void {
    hostAssert(this.inFlight === 0, () => `a snapshot installed with ${this.inFlight} apply batches in flight`);
    const stored = this.deps.kv.appliedIndex();
    hostAssert(stored === index, () => `the snapshot at ${index} installed, but the stored applied index is ${stored}`);
    this.queuedUpTo = index;
    this.computedUpTo = index;
  }

  private item(e: Entry): ApplyItem {
    if (e.type === EntryType.ConfChange) return this.deps.confChange(e);
    return { kind: 'entry', index: e.index, term: e.term, data: e.data };
  }

  /** Applies one batch; resolves when its results are computed (and its writers answered). */
  private apply(entries: Entry[], items: ApplyItem[]): Promise<void> {
    const t0 = this.deps.elapsedMs();
    const last = entries[entries.length - 1]!.index;
    let computed!: () => void;
    const whenComputed = new Promise<void>((resolve) => (computed = resolve));
    // Writers are answered as soon as the results are computed, before the batch reaches LevelDB
    // (which often queues it behind a log fsync). Reads wait for the write (onWritten).
    const written = this.deps.kv
      .apply(items, {
        onResults: (results) => {
          hostAssert(results.length === entries.length, () => `${results.length} results for ${entries.length} entries`);
          hostAssert(entries[0]!.index === this.computedUpTo + 1, () => `batch ${entries[0]!.index}..${last} computed after ${this.computedUpTo}`);
          this.computedUpTo = last; // computed ≤ queued: queue() moved queuedUpTo past `last` already
          this.deps.onComputed(entries, results);
          computed();
        },
      })
      .then(() => {
        // Paired with onResults: a batch lands only after it was computed, and the store says so.
        const stored = this.deps.kv.appliedIndex();
        hostAssert(stored >= last && stored <= this.computedUpTo, () => `batch ending at ${last} landed; stored ${stored}, computed ${this.computedUpTo}`);
        let bytes = 0;
        for (const e of entries) bytes += e.data.byteLength;
        this.deps.onWritten({ appliedIndex: last, bytes, seconds: (this.deps.elapsedMs() - t0) / 1e3 });
      })
      .finally(() => this.inFlight--);
    written.catch((e: unknown) => this.deps.onFatal(e as Error));
    this.landedChain = written.catch(() => undefined);
    return Promise.race([whenComputed, written]);
  }
}
