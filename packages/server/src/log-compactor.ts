// Log compaction carried out by the host loop (docs/server.md, "Snapshots and compaction"): the
// policy (compaction.ts) says when; this runs it at the loop's one compaction point, between two
// Readys — a snapshot point recorded in the core's log at once, the log compacted on disk (synced)
// behind the loop, and the entries dropped from the core's in-memory log only once the disk part
// landed. Nothing else changes the core's log for compaction.
import type { ConfState, MemoryStorage } from '@quorumkv/raft';
import { CompactionPolicy, type CompactionLimits } from './compaction.js';
import type { Logger } from './logger.js';

/** What the compactor needs from the node. */
export interface LogCompactorDeps {
  /** The core's in-memory log. */
  mem: Pick<MemoryStorage, 'firstIndex' | 'lastIndex' | 'snapshot' | 'entries' | 'createSnapshot' | 'compact'>;
  /** Compacts the stored log through `compactTo`, synced (it also makes every earlier apply durable). */
  compactOnDisk(compactTo: number): Promise<void>;
  /** The lowest snapshot index being sent to a follower (kept), or null. */
  heldIndex(): number | null;
  /** The membership recorded with a snapshot point. */
  confState(): ConfState;
  elapsedMs(): number;
  log: Logger;
  /** Runs the loop soon (the disk part landed). */
  schedule(): void;
}

interface Running {
  compactTo: number;
  snapshotIndex: number;
  startedMs: number;
  landed: Promise<boolean>;
  done: boolean;
  ok: boolean;
}

/** One compaction at a time, decided by the policy, finished by the loop. */
export class LogCompactor {
  private readonly policy: CompactionPolicy;
  /** A compaction whose disk part is running behind the loop. */
  private running: Running | undefined;

  constructor(
    private readonly deps: LogCompactorDeps,
    limits: CompactionLimits,
    start: { snapshotIndex: number; appliedIndex: number },
  ) {
    this.policy = new CompactionPolicy(limits, start);
  }

  /** An apply batch up to `appliedIndex` landed. True when compaction is due (run the loop). */
  noteWritten(appliedIndex: number, bytes: number): boolean {
    return this.policy.noteWritten(appliedIndex, bytes);
  }

  /**
   * The loop's compaction point (no Ready outstanding): finishes a compaction whose disk part
   * landed by dropping the entries from the in-memory log, or starts one the policy asks for.
   */
  step(): void {
    const c = this.running;
    if (c) {
      if (!c.done) return;
      this.running = undefined;
      this.finish(c);
    }
    const { mem } = this.deps;
    const d = this.policy.decide(mem, this.deps.heldIndex());
    if (!d) return;
    mem.createSnapshot(d.snapshotIndex, this.deps.confState(), new Uint8Array(0));
    if (d.compactTo <= mem.firstIndex() - 1) return;
    const started: Running = { ...d, startedMs: this.deps.elapsedMs(), done: false, ok: false, landed: Promise.resolve(false) };
    started.landed = this.deps.compactOnDisk(d.compactTo).then(
      () => true,
      (e: unknown) => {
        this.deps.log.error({ err: e }, 'log compaction failed');
        return false;
      },
    );
    void started.landed.then((ok) => {
      started.done = true;
      started.ok = ok;
      this.deps.schedule();
    });
    this.running = started;
  }

  /** The disk part landed: the in-memory log drops the same entries (if still in range). */
  private finish(c: Running): void {
    if (!c.ok) return;
    const { mem } = this.deps;
    if (c.compactTo > mem.firstIndex() - 1 && c.compactTo <= mem.snapshot().metadata.index) mem.compact(c.compactTo);
    this.deps.log.info({ snapshotIndex: c.snapshotIndex, compactedTo: c.compactTo, ms: Math.round(this.deps.elapsedMs() - c.startedMs) }, 'log compacted');
  }

  /** Resolves once no disk compaction runs (the store may close). */
  async settled(): Promise<void> {
    await this.running?.landed;
  }

  /**
   * A snapshot is about to replace the log: waits for a running disk compaction and forgets it
   * (its in-memory part no longer applies).
   */
  async resetForSnapshot(): Promise<void> {
    await this.running?.landed; // the install resets the log: no compaction of it may be running
    this.running = undefined;
  }

  /** After the snapshot at `index` is installed: the policy counts from it. */
  snapshotInstalled(index: number): void {
    this.policy.reset(index);
  }
}
