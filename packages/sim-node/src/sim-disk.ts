// The disk of one simulated machine as its node sees it: a MemoryDisk (which keeps synced batches
// and loses unsynced ones at a power failure, in any position) behind a queue of writes that take
// time. A log append or an apply batch reaches the disk only after a latency (usually a few ms,
// now and then a spike, much longer while the disk is degraded); at a power failure each write
// still on its way either never happened or had reached the disk although the node never heard
// back, and the high-water mark record written with a landed append may be torn.
import type { ApplyResult, MemoryDisk, NodeStore } from '@quorumkv/storage';
import type { Prng } from '@quorumkv/testkit';
import type { Liveness, SimScheduler } from './scheduler.js';

/** Disk latency of a log append or apply batch: usually up to 2 ms, 5 % spikes of 20–150 ms. */
const DISK_LATENCY_MS = { usualMax: 2, spikeChance: 0.05, spikeMin: 20, spikeMax: 150 };
/** Latency while the disk is degraded (the nemesis's slow disk), ms. */
const DEGRADED_LATENCY_MS = { min: 50, max: 600 };
/** At a power failure: the chance that a write on its way had reached the disk, and that a landed append's mark record is torn. */
const POWER_FAILURE = { writeLandedChance: 0.5, markTornChance: 0.5, unsyncedLostChance: 0.5 };

/** A write on its way to the disk. */
interface InFlightWrite {
  kind: 'append' | 'apply';
  /** Performs it on the store (and answers its caller). */
  land(): Promise<void>;
}

/** What one power failure did to the disk. */
export interface PowerFailure {
  /** Unsynced batches that were lost. */
  unsyncedLost: number;
  /** Writes on their way that had reached the disk anyway. */
  inFlightLanded: number;
  /** Writes on their way that never happened. */
  inFlightLost: number;
  /** Whether the mark record of a landed append was torn. */
  markTorn: boolean;
}

export class SimDisk {
  readonly memory: MemoryDisk;
  private inFlight = new Set<InFlightWrite>();
  /** Until then (simulated ms) every write takes DEGRADED_LATENCY_MS. */
  private degradedUntilMs = 0;

  constructor(
    memory: MemoryDisk,
    private readonly sched: SimScheduler,
    private readonly rng: Prng,
  ) {
    this.memory = memory;
    memory.recordWrites();
  }

  /** True while a log append has not reached the disk. */
  appending(): boolean {
    for (const w of this.inFlight) if (w.kind === 'append') return true;
    return false;
  }

  /** Every write for the next `ms` takes DEGRADED_LATENCY_MS (fsync latency spikes). */
  degrade(ms: number): void {
    this.degradedUntilMs = Math.max(this.degradedUntilMs, this.sched.nowMs() + ms);
  }

  /**
   * The store of one boot with its log appends and apply batches routed through the queue. The
   * store object belongs to that boot: its methods are replaced in place. `owner` is the boot (a
   * paused node performs nothing until it resumes); `onApplied` sees each entry's result.
   */
  wrap(store: NodeStore, owner: Liveness, onApplied?: (index: number, result: ApplyResult) => void): NodeStore {
    this.inFlight = new Set();
    const log = store.log;
    const append = log.append.bind(log);
    (log as { append: NodeStore['log']['append'] }).append = (req) =>
      new Promise((resolve, reject) => this.submit('append', owner, () => append(req).then(resolve, reject)));
    // An apply batch is a synced write too: the state machine runs behind the log by its latency.
    const kv = store.kv;
    const apply = kv.apply.bind(kv);
    (kv as { apply: NodeStore['kv']['apply'] }).apply = (items, options) =>
      new Promise((resolve, reject) => {
        const onResults = options?.onResults;
        const observed = {
          ...options,
          onResults: (results: ApplyResult[]) => {
            if (onApplied) items.forEach((it, k) => results[k] && onApplied(it.index, results[k]));
            onResults?.(results);
          },
        };
        this.submit('apply', owner, () => apply(items, observed).then(resolve, reject));
      });
    return store;
  }

  private submit(kind: InFlightWrite['kind'], owner: Liveness, land: () => Promise<void>): void {
    const w: InFlightWrite = { kind, land };
    this.inFlight.add(w);
    this.sched.after(this.latency(), () =>
      this.sched.whenRunning(owner, () => {
        // A power failure took it (landed or lost) first.
        if (!this.inFlight.delete(w) || !owner.alive()) return;
        void w.land();
      }),
    );
  }

  private latency(): number {
    const r = this.rng;
    if (this.sched.nowMs() < this.degradedUntilMs) return r.range(DEGRADED_LATENCY_MS.min, DEGRADED_LATENCY_MS.max);
    return r.chance(DISK_LATENCY_MS.spikeChance) ? r.range(DISK_LATENCY_MS.spikeMin, DISK_LATENCY_MS.spikeMax) : r.int(DISK_LATENCY_MS.usualMax + 1);
  }

  /**
   * Power failure (the node is already stopped): each write on its way lands or is lost; the mark
   * record of a landed append may be torn (the mark file keeps the slot written before); then
   * the disk keeps what was synced, losing each unsynced batch by a coin, in any position.
   */
  async powerFailure(): Promise<PowerFailure> {
    const writes = [...this.inFlight];
    this.inFlight = new Set();
    const landing = writes.filter(() => this.rng.chance(POWER_FAILURE.writeLandedChance));
    for (const w of landing) await w.land().catch(() => undefined);
    const markTorn = landing.some((w) => w.kind === 'append') && this.rng.chance(POWER_FAILURE.markTornChance) && this.memory.tearLastMarkWrite();
    const unsyncedLost = this.memory.powerLoss(() => this.rng.chance(POWER_FAILURE.unsyncedLostChance));
    return { unsyncedLost, inFlightLanded: landing.length, inFlightLost: writes.length - landing.length, markTorn };
  }
}
