// The node's watch hub: answers "the changes of these keys after revision R" (next()) from the
// node's applied state, on any node, leader or follower. Watch streams (watch-stream.ts: the
// `/client` push stream and the HTTP event stream) are loops of next() calls, one at a time each.
//
// Two ways to answer, after etcd's synced and unsynced watcher groups:
//   - in step (synced): the hub keeps a window of the most recent key changes in memory, fed by
//     every batch that lands (KvChangeListener), bounded in changes and bytes. A watcher whose
//     revision is inside the window is answered from it, and waits for the next batch when it has
//     seen everything;
//   - behind (unsynced): a watcher whose revision fell out of the window (it was slow, it resumes
//     after a reconnect, or a snapshot install replaced the state) reads history from the store,
//     a bounded page at a time (KvStateMachineImpl.changes), until it is back in the window.
// A watcher is a cursor, not a queue: the only per-watcher state is its position and its one
// pending next(), so memory stays flat however many watchers there are and however far behind
// they are. One that falls below the compacted revision is answered QKV_COMPACTED. Limits on open
// watches per connection and per node (acquire) answer QKV_BUSY. A node with no leader for longer than an election
// timeout answers QKV_NO_LEADER (etcd's WithRequireLeader): the client asks another node, so a
// partitioned follower never stalls its watchers silently.
import { BusyError, CompactedError, NoLeaderError, type CallContext, type WatchResult, type WireWatchEvent } from '@quorumkv/protocol';
import type { AppliedState, ChangesPage, KeyChange, KvChangeListener, KvRecord, RangeRequest } from '@quorumkv/storage';
import type { Clock } from './world.js';

/** The hub's limits (named, validated once: validateWatchLimits). */
export interface WatchLimits {
  /** Key changes kept in memory for watchers in step. */
  windowChangesMax: number;
  /** Bytes of those changes (keys + values + previous values + WATCH_CHANGE_OVERHEAD_BYTES each). */
  windowBytesMax: number;
  /** Watches open at once on the node. */
  watchersPerNodeMax: number;
  /** Watches open at once on one connection (or one HTTP event stream). */
  watchersPerConnectionMax: number;
  /** Bytes of keys and values in one answer (always at least one revision's changes). */
  answerBytesMax: number;
}

/** Default limits: 10 000 changes / 32 MiB in the window, 20 000 watchers a node, 1 000 a connection. */
export const DEFAULT_WATCH_LIMITS: Readonly<WatchLimits> = Object.freeze({
  windowChangesMax: 10_000,
  windowBytesMax: 32 * 1024 * 1024,
  watchersPerNodeMax: 20_000,
  watchersPerConnectionMax: 1_000,
  answerBytesMax: 1024 * 1024,
});

/** Most window answers remembered between two batches (see WatchHub.fromWindow). */
export const WATCH_ANSWER_MEMO_MAX = 1024;

/** Bytes a change is counted as besides its key and values. */
export const WATCH_CHANGE_OVERHEAD_BYTES = 64;
/** `retryAfterMs` of a watch refused for a full node or connection. */
export const WATCH_BUSY_RETRY_AFTER_MS = 200;
/** An answer is sent this long before the request's deadline, so it arrives in time. */
export const WATCH_DEADLINE_MARGIN_MS = 100;

/** Throws when a limit is not a positive integer. */
export function validateWatchLimits(l: WatchLimits): WatchLimits {
  for (const [name, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`watch limit ${name} must be a positive integer, got ${String(v)}`);
  }
  return l;
}

/** What the hub reads: the store's stored state and its history (KvStateMachineImpl has all three). */
export interface WatchSource {
  applied(): AppliedState;
  changes(request: RangeRequest, afterRevision: number, maxChanges: number): Promise<ChangesPage>;
  listen(listener: KvChangeListener): () => void;
}

/** What the hub knows of the node besides its store. */
export interface WatchNodeView {
  clock: Pick<Clock, 'nowMs' | 'setTimer' | 'clearTimer'>;
  /** How long the node has had no leader (0 while it has one). */
  leaderlessForMs(): number;
  /** Longer than this without a leader ends watches with QKV_NO_LEADER. */
  electionTimeoutMs: number;
}

/** The hub's counters, for metrics and tests. */
export interface WatchHubStats {
  waiting: number;
  windowChanges: number;
  windowBytes: number;
  /** Answers read from history (the catch-up path) since start. */
  historyReads: number;
  /** Answers from the in-memory window since start. */
  windowAnswers: number;
}

type Filter = { key: Uint8Array } | { prefix: Uint8Array };

/** One next() call: the changes of `key` or of `prefix` after `afterRevision`. */
export interface WatchQuery {
  key?: Uint8Array;
  prefix?: Uint8Array;
  /** Absent: after the node's current revision. */
  afterRevision?: number;
  /** Most events (a revision's events are never split). */
  limit: number;
  /** Longest wait for a first event before answering with progress (no events). */
  waitMs: number;
  prevValue?: boolean;
}

/** See the top of the file. */
export class WatchHub implements KvChangeListener {
  private readonly limits: WatchLimits;
  /** The window: changes with revision > floorRevision, in revision order, from `head` on. */
  private window: KeyChange[] = [];
  private head = 0;
  private windowBytes = 0;
  private floorRevision: number;
  /** The revision the window reaches (the computed state's, once computed() is heard). */
  private revision: number;
  /** The revision of the stored state: history reads reach it, and the window keeps what is above it. */
  private storedRevision: number;
  /** True once the store reports computed batches: the window is fed then, not at landing. */
  private feedsOnCompute = false;
  private compactedRevision: number;
  private readonly waiters = new Set<() => void>();
  private waiting = 0;
  private readonly perOwner = new Map<object, number>();
  private historyReads = 0;
  private windowAnswers = 0;
  private readonly unlisten: () => void;
  private closed = false;
  /**
   * Window answers since the last batch, by question (filter, cursor, limit, prevValue): the
   * watchers a batch wakes mostly ask the same one (same prefix, same cursor), and share the answer
   * and its events array (whose encoding the connection then reuses). Cleared when the window changes.
   */
  private memo = new Map<string, { events: WireWatchEvent[]; revision: number }>();

  constructor(
    private readonly source: WatchSource,
    private readonly node: WatchNodeView,
    limits: Partial<WatchLimits> = {},
  ) {
    this.limits = validateWatchLimits({ ...DEFAULT_WATCH_LIMITS, ...limits });
    const a = source.applied();
    this.floorRevision = a.revision;
    this.revision = a.revision;
    this.storedRevision = a.revision;
    this.compactedRevision = a.compactedRevision;
    this.unlisten = source.listen(this);
  }

  /** Stops listening to the store and wakes every waiting request (they answer with progress). */
  close(): void {
    this.closed = true;
    this.unlisten();
    this.wakeAll();
  }

  /** True once close() ran: event streams end. */
  isClosed(): boolean {
    return this.closed;
  }

  /** The revision of the node's stored state (where a watch with no start revision begins). */
  currentRevision(): number {
    return this.revision;
  }

  stats(): WatchHubStats {
    return {
      waiting: this.waiting,
      windowChanges: this.window.length - this.head,
      windowBytes: this.windowBytes,
      historyReads: this.historyReads,
      windowAnswers: this.windowAnswers,
    };
  }

  /**
   * KvChangeListener: a batch's results were computed, as its writers are answered (before it
   * lands): watchers hear of a change when its writer does, not a storage write later. Delivering
   * it is safe before it lands: it is committed, and a restarted node computes it again alike.
   */
  computed(changes: readonly KeyChange[], applied: AppliedState): void {
    this.feedsOnCompute = true;
    this.take(changes, applied);
  }

  /** KvChangeListener: a batch landed (the window's feed when the store reports no computed batches). */
  landed(changes: readonly KeyChange[], applied: AppliedState): void {
    this.storedRevision = applied.revision;
    if (this.feedsOnCompute) return this.trimWindow(); // the window may hold less now
    this.take(changes, applied);
  }

  /** A batch's changes join the window; waiters wake. */
  private take(changes: readonly KeyChange[], applied: AppliedState): void {
    for (const c of changes) {
      this.window.push(c);
      this.windowBytes += changeBytes(c);
    }
    this.revision = applied.revision;
    this.memo.clear();
    const compactedMoved = applied.compactedRevision !== this.compactedRevision;
    this.compactedRevision = applied.compactedRevision;
    this.trimWindow();
    if (changes.length > 0 || compactedMoved) this.wakeAll();
  }

  /** KvChangeListener: the state was replaced; every watcher reads history up to the new state. */
  reset(applied: AppliedState): void {
    this.memo.clear();
    this.window = [];
    this.head = 0;
    this.windowBytes = 0;
    this.floorRevision = applied.revision;
    this.revision = applied.revision;
    this.storedRevision = applied.revision;
    this.compactedRevision = applied.compactedRevision;
    this.wakeAll();
  }

  /**
   * Counts one open watch against the node's and `owner`'s limits (release() gives it back).
   * Throws BusyError over either.
   */
  acquire(owner: object): void {
    const mine = this.perOwner.get(owner) ?? 0;
    if (this.waiting >= this.limits.watchersPerNodeMax) {
      throw new BusyError(WATCH_BUSY_RETRY_AFTER_MS, `the node serves its maximum of ${this.limits.watchersPerNodeMax} watches`);
    }
    if (mine >= this.limits.watchersPerConnectionMax) {
      throw new BusyError(WATCH_BUSY_RETRY_AFTER_MS, `the connection has its maximum of ${this.limits.watchersPerConnectionMax} watches open`);
    }
    this.waiting++;
    this.perOwner.set(owner, mine + 1);
  }

  /** Gives back what acquire(owner) took. */
  release(owner: object): void {
    this.waiting--;
    const mine = (this.perOwner.get(owner) ?? 1) - 1;
    if (mine === 0) this.perOwner.delete(owner);
    else this.perOwner.set(owner, mine);
  }

  /**
   * The changes after `args.afterRevision` as soon as there are any, else progress once
   * `args.waitMs` (or the deadline) passes. Throws CompactedError below the compacted revision,
   * NoLeaderError on a node long without a leader. The caller holds an acquire().
   */
  async next(args: WatchQuery, ctx: CallContext): Promise<WatchResult> {
    const filter: Filter = args.key ? { key: args.key } : { prefix: args.prefix ?? new Uint8Array(0) };
    const clock = this.node.clock;
    const deadlineMs = Math.min(clock.nowMs() + args.waitMs, ctx.deadlineMs - WATCH_DEADLINE_MARGIN_MS);
    let cursor = args.afterRevision ?? this.revision;
    // Each turn answers, reads one page of history (the cursor moves up), or waits for a batch or
    // a timer; it ends by the deadline at the latest.
    for (;;) {
      this.checkLeader();
      if (cursor < this.compactedRevision) throw compacted(cursor, this.compactedRevision);
      const page = cursor >= this.floorRevision ? this.fromWindow(filter, cursor, args) : await this.fromHistory(filter, cursor, args);
      cursor = Math.max(cursor, page.revision);
      if (page.events.length > 0) return { events: page.events, revision: cursor, compactedRevision: this.compactedRevision };
      const nowMs = clock.nowMs();
      if (nowMs >= deadlineMs || ctx.signal.aborted || this.closed) return { events: [], revision: cursor, compactedRevision: this.compactedRevision };
      // Behind the window still: read the next page at once. Else wait for news.
      if (cursor >= this.floorRevision) await this.waitForBatch(Math.min(deadlineMs - nowMs, this.node.electionTimeoutMs), ctx.signal);
    }
  }

  /** fromWindowScan, answered from the memo when a watcher asked the same since the last batch. */
  private fromWindow(filter: Filter, cursor: number, args: WatchQuery): { events: WireWatchEvent[]; revision: number } {
    this.windowAnswers++;
    const key = memoKey(filter, cursor, args);
    const known = this.memo.get(key);
    if (known) return known;
    const page = this.fromWindowScan(filter, cursor, args);
    if (this.memo.size < WATCH_ANSWER_MEMO_MAX) this.memo.set(key, page);
    return page;
  }

  /** The changes in the window after `cursor` that match, up to the limits (whole revisions). */
  private fromWindowScan(filter: Filter, cursor: number, args: WatchQuery): { events: WireWatchEvent[]; revision: number } {
    const events: WireWatchEvent[] = [];
    let bytes = 0;
    for (let i = this.firstAfter(cursor); i < this.window.length; i++) {
      const c = this.window[i] as KeyChange;
      const last = events[events.length - 1];
      if (last && c.revision !== last.modRevision && (events.length >= args.limit || bytes >= this.limits.answerBytesMax)) {
        return { events, revision: last.modRevision };
      }
      if (!matches(filter, c.key)) continue;
      events.push(toEvent(c, args.prevValue === true));
      bytes += changeBytes(c);
    }
    return { events, revision: this.revision };
  }

  /** One page of history after `cursor` (the catch-up path). */
  private async fromHistory(filter: Filter, cursor: number, args: WatchQuery): Promise<{ events: WireWatchEvent[]; revision: number }> {
    this.historyReads++;
    const request: RangeRequest = 'key' in filter ? { start: filter.key, end: keySuccessor(filter.key) } : { prefix: filter.prefix };
    const page = await this.source.changes(request, cursor, args.limit).catch((e: unknown) => {
      const code = (e as { code?: unknown }).code;
      if (code === 'QKV_COMPACTED') throw compacted(cursor, this.compactedRevision);
      throw e;
    });
    return { events: page.changes.map((c) => toEvent(c, args.prevValue === true)), revision: page.throughRevision };
  }

  /** Index of the first change in the window with a revision above `cursor` (binary search). */
  private firstAfter(cursor: number): number {
    let lo = this.head;
    let hi = this.window.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.window[mid] as KeyChange).revision <= cursor) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Drops the oldest revisions while the window is over its limits; the floor moves up to them.
   * Only revisions that landed leave: a watcher below the floor reads history, which must reach it
   * (so the window may stay over its limits while batches are computed and not yet landed).
   */
  private trimWindow(): void {
    const { windowChangesMax, windowBytesMax } = this.limits;
    while (this.window.length - this.head > windowChangesMax || this.windowBytes > windowBytesMax) {
      const oldest = (this.window[this.head] as KeyChange).revision;
      if (oldest > this.storedRevision) break;
      // Whole revisions leave together: the window never holds part of one.
      while (this.head < this.window.length && (this.window[this.head] as KeyChange).revision === oldest) {
        this.windowBytes -= changeBytes(this.window[this.head] as KeyChange);
        this.head++;
      }
      this.floorRevision = oldest;
    }
    // Drop the dead prefix now and then (amortized O(1) per change).
    if (this.head > 1024 && this.head * 2 > this.window.length) {
      this.window = this.window.slice(this.head);
      this.head = 0;
    }
  }

  /** Resolves after the next batch with changes, after `ms`, or when `signal` fires. */
  private waitForBatch(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.waiters.delete(done);
        this.node.clock.clearTimer(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = this.node.clock.setTimer(Math.max(0, ms), done);
      signal.addEventListener('abort', done, { once: true });
      this.waiters.add(done);
    });
  }

  private wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }

  private checkLeader(): void {
    const ms = this.node.leaderlessForMs();
    if (ms > this.node.electionTimeoutMs) {
      throw new NoLeaderError(`this node has had no leader for ${Math.round(ms)} ms; watch from another node`);
    }
  }
}

function compacted(cursor: number, compactedRevision: number): CompactedError {
  return new CompactedError(compactedRevision, `the watch resumes after revision ${cursor}, below the compacted revision ${compactedRevision}`);
}

/** A change as a watch event (etcd's shape: a delete has no value, createRevision and version 0). */
export function toEvent(c: KeyChange, withPrev: boolean): WireWatchEvent {
  const r: KvRecord | null = c.record;
  const ev: WireWatchEvent = r
    ? { type: 'put', key: c.key, value: r.value, modRevision: c.revision, createRevision: r.createRevision, version: r.version }
    : { type: 'delete', key: c.key, modRevision: c.revision, createRevision: 0, version: 0 };
  if (withPrev && c.prev) ev.prevValue = c.prev.value;
  return ev;
}

/** The memo key of a window question. */
function memoKey(filter: Filter, cursor: number, args: WatchQuery): string {
  const bytes = 'key' in filter ? filter.key : filter.prefix;
  const kind = 'key' in filter ? 'k' : 'p';
  return `${cursor}|${args.limit}|${args.prevValue === true ? 1 : 0}|${kind}${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')}`;
}

function changeBytes(c: KeyChange): number {
  return c.key.length + (c.record?.value.length ?? 0) + (c.prev?.value.length ?? 0) + WATCH_CHANGE_OVERHEAD_BYTES;
}

function matches(filter: Filter, key: Uint8Array): boolean {
  if ('key' in filter) return bytesEqual(filter.key, key);
  const p = filter.prefix;
  if (key.length < p.length) return false;
  for (let i = 0; i < p.length; i++) if (key[i] !== p[i]) return false;
  return true;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** The smallest key above `key` (key ++ 0x00): [key, keySuccessor(key)) holds only `key`. */
function keySuccessor(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out.set(key);
  return out;
}
