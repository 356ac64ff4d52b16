// The watchers of the watch workload: each on its own client (endpoints rotated so they start on
// different nodes and move between them as faults come and go) records the changes it sees under
// WATCH_PREFIX from a start revision. After the heal the orchestrator stops them once they have
// reached the final revision and reads the reference sequence with one more watch on one node.

import type { WatchRecord, WatchedChange, WatcherLog } from './checkers/watch.js';
import type { KvLike, WatchLike } from './workloads.js';
import { WATCH_PREFIX } from './workloads.js';

/** How long after the heal a watcher may take to reach the final revision. */
export const WATCH_CATCH_UP_MS = 20_000;
/** Changes a watcher records at most (bounds memory; a run at the default rate stays far below). */
export const WATCH_CHANGES_MAX = 1_000_000;

const dec = new TextDecoder();

/** One watcher being recorded. */
class RecordedWatcher {
  readonly log: WatcherLog;
  private readonly done: Promise<void>;

  constructor(
    id: string,
    private readonly watch: WatchLike,
  ) {
    this.log = { id, throughRevision: 0, changes: [] };
    this.done = this.record();
  }

  get throughRevision(): number {
    return this.watch.revision ?? 0;
  }

  /** Stops the watch and returns its log. */
  async stop(): Promise<WatcherLog> {
    this.watch.close();
    await this.done;
    this.log.throughRevision = Math.max(this.log.throughRevision, this.watch.revision ?? 0);
    return this.log;
  }

  private async record(): Promise<void> {
    try {
      for await (const ev of this.watch) {
        if (this.log.changes.length >= WATCH_CHANGES_MAX) throw new Error(`more than ${WATCH_CHANGES_MAX} changes`);
        this.log.changes.push(toChange(ev));
      }
    } catch (err) {
      this.log.error = String((err as { code?: unknown }).code ?? err);
    }
  }
}

function toChange(ev: { type: 'put' | 'delete'; key: Uint8Array; value?: Uint8Array; modRevision: number }): WatchedChange {
  return { type: ev.type, key: dec.decode(ev.key), value: ev.value === undefined ? null : dec.decode(ev.value), revision: ev.modRevision };
}

/** The watchers of one run. */
export class WatchRun {
  private constructor(
    readonly startRevision: number,
    private readonly watchers: RecordedWatcher[],
  ) {}

  /** Starts one watcher per client, all from the revision after a marker write made with `writer`. */
  static async start(writer: KvLike, watcherClients: readonly KvLike[]): Promise<WatchRun> {
    const startRevision = (await writer.put('jl-w-start', 'x')).revision + 1;
    const watchers = watcherClients.map((kv, i) => new RecordedWatcher(`w${i + 1}`, watchOf(kv, startRevision)));
    return new WatchRun(startRevision, watchers);
  }

  /**
   * After the heal: a marker write gives the final revision; each watcher gets up to
   * WATCH_CATCH_UP_MS to reach it, then all stop; the reference is read from `referenceClient`.
   */
  async finish(writer: KvLike, referenceClient: KvLike): Promise<WatchRecord> {
    const finalRevision = (await writer.put('jl-w-end', 'x')).revision;
    const until = Date.now() + WATCH_CATCH_UP_MS;
    while (Date.now() < until && this.watchers.some((w) => w.throughRevision < finalRevision && w.log.error === undefined)) await sleep(100);
    const logs = await Promise.all(this.watchers.map((w) => w.stop()));
    const rec: WatchRecord = { prefix: WATCH_PREFIX, startRevision: this.startRevision, finalRevision, reference: [], watchers: logs };
    const ref = new RecordedWatcher('reference', watchOf(referenceClient, this.startRevision));
    const refUntil = Date.now() + WATCH_CATCH_UP_MS;
    while (Date.now() < refUntil && ref.throughRevision < finalRevision && ref.log.error === undefined) await sleep(50);
    const refLog = await ref.stop();
    rec.reference = refLog.changes.filter((c) => c.revision <= finalRevision);
    if (refLog.error !== undefined) rec.referenceError = refLog.error;
    else if (refLog.throughRevision < finalRevision) rec.referenceError = `the reference watch reached only revision ${refLog.throughRevision} of ${finalRevision}`;
    return rec;
  }
}

function watchOf(kv: KvLike, startRevision: number): WatchLike {
  if (!kv.watch) throw new Error('the client has no watch(): build @quorumkv/client');
  return kv.watch({ prefix: WATCH_PREFIX, startRevision });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
