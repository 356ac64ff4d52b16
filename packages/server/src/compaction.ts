// Log compaction as a decision the host loop asks for at one defined point (between two Readys,
// see log-compactor.ts `LogCompactor.step`) and carries out itself; nothing here touches the core or the disk.
//
// After `snapshotEntries` applied entries (or `snapshotLogBytes` of them) the loop records a
// snapshot point at the applied index in the core's log and drops entries older than
// `snapshotKeepEntries` behind it, on disk and then in memory — fewer when those entries hold
// more than `snapshotKeepBytes` (the core keeps the log in memory: large values must not
// multiply it) — but never past a snapshot still being sent (see `decide`).
import type { ConfState } from '@quorumkv/raft';
import type { Membership } from '@quorumkv/storage';

export interface CompactionLimits {
  snapshotEntries: number;
  snapshotLogBytes: number;
  snapshotKeepEntries: number;
  snapshotKeepBytes: number;
}

/** The in-memory log the decision reads (the core's MemoryStorage). */
export interface CompactionLog {
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): { metadata: { index: number } };
  entries(lo: number, hi: number, maxBytes: number): Array<{ data: Uint8Array }>;
}

/** What the loop must do: record a snapshot point at `snapshotIndex`, then drop the log through `compactTo`. */
export interface CompactionDecision {
  snapshotIndex: number;
  /** Entries up to here go (on disk first, then in memory); 0 or below the log's start: none. */
  compactTo: number;
}

/** Counts applied entries and bytes since the last snapshot point and decides when to compact. */
export class CompactionPolicy {
  private snapshotIndex: number;
  /** Invariant: every entry up to here is applied AND written (the store's applied state holds it). */
  private writtenIndex: number;
  private bytesSinceSnapshot = 0;

  constructor(
    private readonly limits: CompactionLimits,
    start: {
      /** The snapshot point the log starts from (after a restart). */
      snapshotIndex: number;
      /** The applied index the store holds. */
      appliedIndex: number;
    },
  ) {
    this.snapshotIndex = start.snapshotIndex;
    this.writtenIndex = start.appliedIndex;
  }

  /**
   * An apply batch up to `appliedIndex`, holding `bytes` of entry data, is written. True when
   * compaction is due (the loop should run soon).
   */
  noteWritten(appliedIndex: number, bytes: number): boolean {
    this.writtenIndex = Math.max(this.writtenIndex, appliedIndex);
    this.bytesSinceSnapshot += bytes;
    return this.isDue();
  }

  /** A snapshot was installed at `index` (the applied state is now exactly it): count from there. */
  reset(index: number): void {
    this.snapshotIndex = index;
    this.writtenIndex = index;
    this.bytesSinceSnapshot = 0;
  }

  isDue(): boolean {
    return this.writtenIndex - this.snapshotIndex >= this.limits.snapshotEntries || this.bytesSinceSnapshot >= this.limits.snapshotLogBytes;
  }

  /**
   * Whether to compact now, given `heldIndex`, the lowest snapshot index being sent to a follower
   * (null: none). Returns null when it is not due or there is nothing to record; else counts from
   * the new snapshot point, as the loop records it at once.
   */
  decide(log: CompactionLog, heldIndex: number | null): CompactionDecision | null {
    if (!this.isDue()) return null;
    const appliedIndex = this.writtenIndex;
    const recorded = log.snapshot().metadata.index;
    if (appliedIndex <= recorded) {
      this.snapshotIndex = recorded; // a snapshot point at or past the applied index exists (installed meanwhile)
      this.bytesSinceSnapshot = 0;
      return null;
    }
    if (appliedIndex > log.lastIndex()) return null;
    this.snapshotIndex = appliedIndex;
    this.bytesSinceSnapshot = 0;
    const l = this.limits;
    let compactTo = Math.max(appliedIndex - l.snapshotKeepEntries, keptByBytesFrom(log, appliedIndex, l.snapshotKeepBytes));
    // Never past a snapshot still being sent: the follower must catch up from the log after
    // installing it, or it would need another snapshot at once (and could chase the log forever
    // on a fast-moving cluster). Transfers are bounded in attempts, so the hold is too.
    if (heldIndex !== null) compactTo = Math.min(compactTo, heldIndex);
    return { snapshotIndex: appliedIndex, compactTo };
  }
}

/**
 * The lowest index a compaction must reach so that the entries kept behind `applied` hold at most
 * `maxBytes` of data: the entries (index, applied] it keeps fit in `maxBytes`.
 */
export function keptByBytesFrom(mem: Pick<CompactionLog, 'firstIndex' | 'entries'>, applied: number, maxBytes: number): number {
  const first = mem.firstIndex();
  if (applied < first) return 0;
  const ents = mem.entries(first, applied + 1, Number.POSITIVE_INFINITY);
  let bytes = 0;
  for (let i = ents.length - 1; i >= 0; i--) {
    bytes += (ents[i] as { data: Uint8Array }).data.length;
    if (bytes > maxBytes) return first + i; // entry first+i does not fit: compact through it
  }
  return 0;
}

/** The core's view of a membership (ids only). */
export function confStateOf(m: Membership): ConfState {
  return { voters: m.voters.map((v) => v.id), learners: m.learners.map((v) => v.id) };
}
