// The ReadIndex batcher (Raft thesis §6.4): every linearizable read that arrives in one turn of
// the host loop shares one ReadIndex request; a read is answered once the state machine has
// applied up to the index the leader confirmed for its request. The host loop (node.ts) owns it:
// it submits the batch at the start of a turn, hands over the core's read states and the applied
// index, and sweeps deadlines once per tick. No I/O, no clock: times come in as arguments.
import { NoLeaderError, TimeoutError } from '@quorumkv/protocol';
import { NotLeaderError as RaftNotLeaderError } from '@quorumkv/raft';

/** A caller's deadline (a client request's context). */
export interface Deadline {
  deadlineMs: number;
  signal?: AbortSignal | undefined;
  /**
   * A context may say directly whether it was cancelled (the client endpoint's contexts create
   * their AbortSignal only when someone reads `signal`); the sweep then never touches `signal`.
   */
  readonly aborted?: boolean;
}

/** True when the caller's deadline passed or it gave up. */
export function deadlineOver(d: Deadline, nowMs: number): boolean {
  if (d.deadlineMs <= nowMs) return true;
  return ('aborted' in d ? d.aborted : d.signal?.aborted) === true;
}

interface PendingRead {
  deadline: Deadline;
  resolve(): void;
  reject(e: Error): void;
}

export class ReadIndexBatcher {
  /** Reads that arrived since the last submit. */
  private batch: PendingRead[] = [];
  /** Submitted batches by request context, with when they were (re)submitted. */
  private readonly byCtx = new Map<string, { reads: PendingRead[]; submittedAtMs: number }>();
  /** Batches whose read index is known, waiting for the state machine to apply up to it. */
  private awaitingApply: { index: number; reads: PendingRead[] }[] = [];
  private ctxSeq = 0;
  private pendingCount = 0;

  constructor(
    private readonly opts: {
      /** A submitted batch unanswered this long is submitted again (its request or answer may be lost). */
      resubmitAfterMs: number;
      /** Planted read-before-applied (simulation only): serve reads without waiting for the apply. */
      serveBeforeApplied?: boolean;
    },
  ) {}

  /** Reads waiting, in any stage. */
  get pending(): number {
    return this.pendingCount;
  }

  /** Queues a read for the next submit; resolves when it may be served. */
  add(deadline: Deadline): Promise<void> {
    this.pendingCount++;
    return new Promise<void>((resolve, reject) => this.batch.push({ deadline, resolve, reject }));
  }

  /** Submits the reads queued since the last call as one ReadIndex request (`readIndex` is the core's). */
  submit(readIndex: (ctx: Uint8Array) => void, nowMs: number): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    const ctx = new Uint8Array(8);
    new DataView(ctx.buffer).setFloat64(0, ++this.ctxSeq);
    try {
      readIndex(ctx);
    } catch (e) {
      if (!(e instanceof RaftNotLeaderError)) throw e;
      this.fail(batch, new NoLeaderError());
      return;
    }
    this.byCtx.set(ctxKey(ctx), { reads: batch, submittedAtMs: nowMs });
  }

  /** The core's read states of one Ready; `applied` is the state machine's applied index now. */
  onReadStates(states: readonly { index: number; requestCtx: Uint8Array }[], applied: number): void {
    for (const rs of states) {
      const key = ctxKey(rs.requestCtx);
      const pending = this.byCtx.get(key);
      if (!pending) continue;
      this.byCtx.delete(key);
      this.awaitingApply.push({ index: rs.index, reads: pending.reads });
    }
    this.servedUpTo(applied);
  }

  /** The state machine applied up to `applied`: serve the reads whose read index it reached. */
  servedUpTo(applied: number): void {
    if (this.awaitingApply.length === 0) return;
    const keep: { index: number; reads: PendingRead[] }[] = [];
    for (const w of this.awaitingApply) {
      if (w.index <= applied || this.opts.serveBeforeApplied === true) {
        this.pendingCount -= w.reads.length;
        for (const r of w.reads) r.resolve();
      } else keep.push(w);
    }
    this.awaitingApply = keep;
  }

  /** Fails the submitted batches (the leader changed: their answers will never come). */
  failSubmitted(err: Error): void {
    for (const { reads } of this.byCtx.values()) this.fail(reads, err);
    this.byCtx.clear();
  }

  /**
   * The per-tick sweep: reads past their deadline fail with TimeoutError, and batches unanswered
   * for `resubmitAfterMs` go back to the queue (submitted again under a new context; a late
   * answer to the old one is ignored).
   */
  expire(nowMs: number): void {
    const sweep = (reads: PendingRead[]): PendingRead[] => {
      const live: PendingRead[] = [];
      for (const r of reads) {
        if (deadlineOver(r.deadline, nowMs)) {
          this.pendingCount--;
          r.reject(new TimeoutError('the read did not complete before its deadline'));
        } else live.push(r);
      }
      return live;
    };
    this.batch = sweep(this.batch);
    for (const [k, pending] of this.byCtx) {
      const live = sweep(pending.reads);
      if (live.length === 0) this.byCtx.delete(k);
      else pending.reads = live;
    }
    for (const [key, pending] of this.byCtx) {
      if (nowMs - pending.submittedAtMs < this.opts.resubmitAfterMs) continue;
      this.byCtx.delete(key);
      for (const r of pending.reads) this.batch.push(r);
    }
    this.awaitingApply = this.awaitingApply.map((w) => ({ index: w.index, reads: sweep(w.reads) })).filter((w) => w.reads.length > 0);
  }

  /** Fails every read in every stage (the node is stopping). */
  failAll(err: Error): void {
    this.fail(this.batch, err);
    this.batch = [];
    this.failSubmitted(err);
    for (const w of this.awaitingApply) this.fail(w.reads, err);
    this.awaitingApply = [];
  }

  private fail(reads: PendingRead[], err: Error): void {
    this.pendingCount -= reads.length;
    for (const r of reads) r.reject(err);
  }
}

function ctxKey(ctx: Uint8Array): string {
  return Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).toString('latin1');
}
