// The writers waiting for their entry to apply, keyed by the entry's index (docs/server.md, "The
// host loop"). One owner: the node registers a writer after proposing, the apply pipeline settles
// it when the result of its index is computed, the tick sweeps deadlines, and a snapshot install
// or shutdown answers the rest indeterminate. Pure: no clock (the sweep is handed `nowMs`).
import type { ApplyResult } from '@quorumkv/storage';
import { IndeterminateError, UnavailableError } from '@quorumkv/protocol';
import { deadlineOver, type Deadline } from './read-index.js';
import { hostAssert } from './host-assert.js';

/** An apply result plus the term of the entry (the term of the leader that committed it). */
export type WriteResult = ApplyResult & { term: number };

/** One writer: the entry it proposed (index is the table's key, term here) and its answer. */
export interface PendingWrite {
  deadline: Deadline;
  /** The term of the proposed entry: the entry applied at the index must carry it. */
  term: number;
  /** The encoded command's size, held against maxPendingProposalBytes until answered. */
  bytes: number;
  resolve(r: WriteResult): void;
  reject(e: Error): void;
}

/** The waiting room for proposed writes. The caller enforces the limits (size, bytes) before adding. */
export class WriteWaiters {
  private readonly byIndex = new Map<number, PendingWrite>();
  private bytesHeld = 0;

  /** Writers waiting. */
  get size(): number {
    return this.byIndex.size;
  }

  /** Bytes of the waiting writers' commands. */
  get bytes(): number {
    return this.bytesHeld;
  }

  /**
   * Waits for the entry just proposed at `at`: resolves with its result once applied, or rejects
   * (see settle, failIndeterminate, expire).
   */
  wait(at: { index: number; term: number }, bytes: number, deadline: Deadline): Promise<WriteResult> {
    return new Promise<WriteResult>((resolve, reject) => this.adopt(at.index, { term: at.term, bytes, deadline, resolve, reject }));
  }

  /**
   * Registers the writer of the entry just proposed at `index`. A writer still waiting there is
   * from an earlier term of this node's leadership whose entry was truncated from this log; that
   * does not prove it will never commit (another node may still hold it and win an election), so
   * it is answered indeterminate — its outcome can no longer be observed from here.
   */
  adopt(index: number, w: PendingWrite): void {
    const earlier = this.byIndex.get(index);
    if (earlier) {
      hostAssert(earlier.term < w.term, () => `a writer at index ${index} of term ${earlier.term} is replaced by one of term ${w.term}`);
      this.forget(index, earlier);
      earlier.reject(new IndeterminateError(`the write's log entry ${index} was replaced after a leader change; it may still be applied`));
    }
    this.byIndex.set(index, w);
    this.bytesHeld += w.bytes;
  }

  /**
   * The result of the committed entry at `index` (of term `entryTerm`) was computed: answers its
   * writer, if one waits here.
   */
  settle(index: number, entryTerm: number, result: ApplyResult): void {
    const w = this.byIndex.get(index);
    if (!w) return;
    this.forget(index, w);
    // Another leader's entry took this index and is COMMITTED (it is being applied), and committed
    // entries never change: our entry (index, w.term) is in no future leader's log, so the write
    // never applies — "not applied" is the truth here (Log Matching). Only the applied entry at
    // the index can tell this; a mere truncation of our own log cannot (see adopt).
    if (w.term !== entryTerm) w.reject(new UnavailableError('the write was lost in a leader change; it was not applied'));
    // A retried session write carries the term of its first application; others the entry's.
    else if ('term' in result && result.term !== undefined) w.resolve(result as WriteResult); // the usual case: no copy
    else w.resolve({ ...result, term: entryTerm });
  }

  /**
   * Answers every waiting writer with `err`: each one's entry was accepted into a log and its
   * outcome is unknown here. `upTo` limits it to entries at or below an index (those a snapshot
   * covered: they will never be applied one by one on this node).
   */
  failIndeterminate(err: IndeterminateError, upTo = Number.POSITIVE_INFINITY): void {
    for (const [index, w] of this.byIndex) {
      if (index > upTo) continue;
      this.forget(index, w);
      w.reject(err);
    }
  }

  /** Answers the writers whose deadline passed at `nowMs` (one sweep per tick, no timer per request). */
  expire(nowMs: number): void {
    for (const [index, w] of this.byIndex) {
      if (!deadlineOver(w.deadline, nowMs)) continue;
      this.forget(index, w);
      // Proposed, not yet applied: it may still commit (or already has, elsewhere).
      w.reject(new IndeterminateError('the write was proposed but not applied before its deadline; it may still be applied'));
    }
  }

  private forget(index: number, w: PendingWrite): void {
    this.byIndex.delete(index);
    this.bytesHeld -= w.bytes;
    // Paired with adopt: every byte added there is taken back exactly once here.
    hostAssert(this.bytesHeld >= 0 && (this.byIndex.size > 0 || this.bytesHeld === 0), () => `write waiters hold ${this.bytesHeld} bytes for ${this.byIndex.size} writers`);
  }
}
