// The leader's view of each follower (etcd's tracker package, simplified to one configuration
// with single-server membership changes).
import { assert } from './errors.js';
import type { ConfState, NodeId, ProgressState, ProgressStatus } from './types.js';

/**
 * Append messages in flight to one follower, bounded both in count and in bytes. A follower that
 * is slow to acknowledge stops receiving new appends instead of piling up memory on the leader.
 */
export class Inflights {
  private readonly indexes: number[] = [];
  private readonly sizes: number[] = [];
  private start = 0;
  private bytes = 0;

  constructor(
    readonly maxMessages: number,
    /** 0 = no byte limit. */
    readonly maxBytes: number,
  ) {}

  get count(): number {
    return this.indexes.length - this.start;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  add(lastIndex: number, bytes: number): void {
    assert(!this.full(), 'inflights.add on a full window');
    this.indexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Frees every message whose last index is <= to (the follower acknowledged them). */
  freeLE(to: number): void {
    while (this.start < this.indexes.length && this.indexes[this.start]! <= to) {
      this.bytes -= this.sizes[this.start]!;
      this.start++;
    }
    if (this.start > 64 && this.start * 2 > this.indexes.length) {
      this.indexes.splice(0, this.start);
      this.sizes.splice(0, this.start);
      this.start = 0;
    }
  }

  /** Frees the oldest in-flight message (its acknowledgement was probably lost). */
  freeFirstOne(): void {
    if (this.count === 0) return;
    this.freeLE(this.indexes[this.start]!);
  }

  full(): boolean {
    return this.count >= this.maxMessages || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  reset(): void {
    this.indexes.length = 0;
    this.sizes.length = 0;
    this.start = 0;
    this.bytes = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** In probe state: one append is outstanding; wait for its answer or a heartbeat response. */
  probeSent = false;
  readonly inflights: Inflights;
  learner: boolean;

  constructor(next: number, inflights: Inflights, learner: boolean) {
    this.next = next;
    this.inflights = inflights;
    this.learner = learner;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** The follower acknowledged up to n. Returns false when the ack is stale. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** The leader sent entries ending at lastIndex (bytes in total). */
  sentEntries(lastIndex: number, count: number, bytes: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    } else {
      assert(false, `sending entries in state ${this.state}`);
    }
  }

  /**
   * The follower rejected an append at `rejected`; `matchHint` is where its log may match.
   * Returns false when the rejection is stale (out of order).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  toStatus(): ProgressStatus {
    return {
      match: this.match,
      next: this.next,
      state: this.state,
      learner: this.learner,
      recentActive: this.recentActive,
      inflightMessages: this.inflights.count,
      inflightBytes: this.inflights.totalBytes,
      pendingSnapshot: this.pendingSnapshot,
    };
  }
}

export type VoteResult = 'won' | 'lost' | 'pending';

/** Membership, per-node progress and votes. */
export class ProgressTracker {
  voters = new Set<NodeId>();
  learners = new Set<NodeId>();
  progress = new Map<NodeId, Progress>();
  votes = new Map<NodeId, boolean>();

  constructor(
    private readonly maxInflightMessages: number,
    private readonly maxInflightBytes: number,
  ) {}

  newProgress(next: number, learner: boolean): Progress {
    return new Progress(next, new Inflights(this.maxInflightMessages, this.maxInflightBytes), learner);
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() };
  }

  /** Replaces membership and progress with `cs`; every node starts probing at `next`. */
  reset(cs: ConfState, next: number): void {
    this.voters = new Set(cs.voters);
    this.learners = new Set(cs.learners);
    this.progress = new Map();
    for (const id of cs.voters) this.progress.set(id, this.newProgress(next, false));
    for (const id of cs.learners) this.progress.set(id, this.newProgress(next, true));
  }

  quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  isSingleton(): boolean {
    return this.voters.size === 1;
  }

  /** The largest index replicated on a quorum of voters. */
  committed(): number {
    if (this.voters.size === 0) return 0;
    // Runs on every proposal and every ack: an insertion sort into a reused array, no allocation.
    // (Not `length = 0` and push: that drops the array's backing store and allocates a new one.)
    const matches = this.matchScratch;
    let n = 0;
    for (const id of this.voters) {
      const match = this.progress.get(id)?.match ?? 0;
      let i = n++;
      while (i > 0 && matches[i - 1]! < match) {
        matches[i] = matches[i - 1]!;
        i--;
      }
      matches[i] = match;
    }
    return matches[this.quorum() - 1]!;
  }

  /** committed()'s work array (descending match indexes). */
  private readonly matchScratch: number[] = [];

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  resetVotes(): void {
    this.votes.clear();
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    const q = this.quorum();
    const missing = this.voters.size - granted - rejected;
    const result: VoteResult = granted >= q ? 'won' : granted + missing >= q ? 'pending' : 'lost';
    return { granted, rejected, result };
  }

  /** True when a quorum of voters was heard from recently (the leader counts itself). */
  quorumActive(self: NodeId): boolean {
    let active = 0;
    for (const id of this.voters) {
      if (id === self || this.progress.get(id)?.recentActive) active++;
    }
    return active >= this.quorum();
  }
}
