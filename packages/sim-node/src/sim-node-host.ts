// One simulated machine: a MemoryDisk that survives crashes (keeping only what was synced), the
// identity files, and the production QuorumKvNode booted on them with a simulated world. A crash
// abandons the node object (its timers and messages die with it) and power-fails the disk.
import { DEFAULTS, type HostPlant, NodeKvService, SnapshotManager, type SnapshotFaults, snapshotHostOf, ByteBudget, NodeMetrics, QuorumKvNode, createSinkLogger, memoryIdentityFiles, type NodeWorld, type ServeConfig } from '@quorumkv/server';
import { type ApplyResult, type MarkTimer, MemoryDisk, openMemoryNodeStore, type NodeStore } from '@quorumkv/storage';
import type { Prng } from '@quorumkv/testkit';
import type { SimNet } from './network.js';
import type { Liveness, SimScheduler } from './scheduler.js';

/**
 * Ticks of the simulated nodes: 100 ms, a heartbeat every 2 ticks, an election after 10–20
 * (production: 50 ms, 1, 10). The same ratios of heartbeat to election timeout to fault gaps,
 * with a quarter of the heartbeat traffic, which was most of the simulation's events.
 */
export const SIM_TICK_MS = 100;
const SIM_HEARTBEAT_TICKS = 2;
/** Compaction after this many applied entries, keeping this many behind the snapshot. */
const SIM_SNAPSHOT_ENTRIES = 60;
const SIM_SNAPSHOT_KEEP_ENTRIES = 20;
/** Snapshot chunks and sending rate (bytes, bytes/s): a transfer takes several frames. */
const SIM_SNAPSHOT_CHUNK_BYTES = 256;
const SIM_SNAPSHOT_RATE = 64 * 1024;
/** The sender's test faults for one boot: none, a corrupted chunk now and then, or a cut transfer. */
function snapshotFaults(rng: Prng): SnapshotFaults {
  const r = rng.int(3);
  return r === 0 ? {} : r === 1 ? { corruptEveryNthChunk: 2 + rng.int(5) } : { cutAfterChunks: 1 + rng.int(5) };
}

/** Session TTL of the simulated state machines (no session expires in a run). */
const SIM_SESSION_TTL_MS = 60 * 60 * 1000;

/** The configuration of simulated node `id` among `ids` (production defaults otherwise). */
export function simConfig(id: string, ids: string[], joining = false): ServeConfig {
  return {
    ...DEFAULTS,
    id,
    listen: `sim:${id}`,
    host: 'sim',
    port: 0,
    peers: ids.map((p) => ({ id: p, address: `sim-${p}:1` })),
    initialClusterState: joining ? 'existing' : 'new',
    dataDir: `memory:${id}`,
    zone: undefined,
    clusterSecret: 'simulated-cluster-secret',
    logLevel: 'info',
    tickMs: SIM_TICK_MS,
    heartbeatTicks: SIM_HEARTBEAT_TICKS,
    sessionTtlMs: SIM_SESSION_TTL_MS,
    // Small thresholds, so compaction and snapshot transfers happen in every run.
    snapshotEntries: SIM_SNAPSHOT_ENTRIES,
    snapshotKeepEntries: SIM_SNAPSHOT_KEEP_ENTRIES,
    snapshotChunkBytes: SIM_SNAPSHOT_CHUNK_BYTES,
    snapshotRateBytesPerSec: SIM_SNAPSHOT_RATE,
    enableFaultInjection: false,
    // The simulated network has no sockets: nothing to encrypt.
    tls: undefined,
    insecure: false,
  };
}

/** What the simulation hands a node's world besides the scheduler and network. */
export interface HostOptions {
  sched: SimScheduler;
  net: SimNet;
  rng: Prng;
  ids: string[];
  /** A line for the trace. */
  note: (line: string) => void;
  /** A node's host loop stopped on a fatal error. */
  onFatal: (id: string, err: Error) => void;
  /** A host bug to plant (node.ts), or none. */
  plant?: HostPlant | undefined;
  /** Sees what applying each entry answered (the exactly-once check). */
  onApplied?: (index: number, result: ApplyResult) => void;
}

/** Disk latency of a log append or apply batch: usually up to 2 ms, 5 % spikes of 20–150 ms. */
const DISK_LATENCY_MS = { usualMax: 2, spikeChance: 0.05, spikeMin: 20, spikeMax: 150 };

/**
 * The store with a slow disk: a log append or an apply batch reaches the disk only after a
 * simulated latency, so a crash in between loses it — what the host may and may not do while a
 * write is in flight shows.
 */
function withSlowDisk(
  store: NodeStore,
  sched: SimScheduler,
  rng: Prng,
  owner: Liveness,
  inFlight: { writes: number },
  onApplied?: (index: number, result: ApplyResult) => void,
): NodeStore {
  const delay = () =>
    rng.chance(DISK_LATENCY_MS.spikeChance) ? rng.range(DISK_LATENCY_MS.spikeMin, DISK_LATENCY_MS.spikeMax) : rng.int(DISK_LATENCY_MS.usualMax + 1);
  const log = store.log;
  const append = log.append.bind(log);
  // This store instance belongs to one simulated boot: its append is replaced in place.
  (log as { append: NodeStore['log']['append'] }).append = (req) => {
    inFlight.writes++;
    return new Promise((resolve, reject) => {
      sched.after(delay(), () => {
        if (!owner.alive()) return;
        append(req)
          .then(resolve, reject)
          .finally(() => inFlight.writes--);
      });
    });
  };
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
      sched.after(delay(), () => {
        if (owner.alive()) apply(items, observed).then(resolve, reject);
      });
    });
  return store;
}

export class SimNodeHost implements Liveness {
  disk = new MemoryDisk();
  private files = new Map<string, string>();
  /** Being replaced: crashed, not restarted by the nemesis. */
  permanentlyDown = false;
  /** Wiped and booted empty, to be added back (the replace runbook): never founds. */
  private joining = false;
  node: QuorumKvNode | undefined;
  service: NodeKvService | undefined;
  /** Bumped at every crash: timers and messages of an older boot are dropped. */
  private epoch = 0;
  private up = false;
  boots = 0;
  /** Log appends of the current boot on their way to the disk (a crash now loses them). */
  private inFlight = { writes: 0 };
  /** Log compactions this machine's nodes carried out. */
  compactions = 0;
  /** One registry for every boot of this machine (snapshot counters read at the end). */
  readonly metrics = new NodeMetrics(false);

  constructor(
    readonly id: string,
    private readonly opts: HostOptions,
  ) {
    this.disk.recordWrites();
  }

  alive(): boolean {
    return this.up;
  }

  /** True while a log append of this node has not reached its disk. */
  writing(): boolean {
    return this.up && this.inFlight.writes > 0;
  }

  /**
   * The high-water mark's confirmation timer on the simulated clock, dropped with its boot (the
   * store's default, a real setTimeout, would fire at a wall-clock moment outside the simulation).
   */
  private markTimer(owner: Liveness): MarkTimer {
    return {
      set: (fn, delayMs) => this.opts.sched.after(delayMs, () => owner.alive() && fn()),
      clear: (handle) => this.opts.sched.cancel(handle as number),
    };
  }

  /** Opens the store on the disk and boots the production node on it (founding on the first boot). */
  async boot(): Promise<void> {
    const epoch = ++this.epoch;
    this.up = true;
    this.boots++;
    const owner: Liveness = { alive: () => this.up && this.epoch === epoch };
    const cfg = simConfig(this.id, this.opts.ids, this.joining);
    const rng = this.opts.rng;
    this.inFlight = { writes: 0 };
    const store = withSlowDisk(await openMemoryNodeStore(this.disk, { kv: { sessionTtlMs: cfg.sessionTtlMs }, markTimer: this.markTimer(owner) }), this.opts.sched, rng, owner, this.inFlight, this.opts.onApplied);
    const world: NodeWorld = {
      clock: this.opts.sched.clockFor(owner),
      random: { int: (n) => rng.int(n) },
      defer: (fn) => void this.opts.sched.after(0, () => owner.alive() && fn()),
      elapsedMs: () => this.opts.sched.nowMs(),
      store,
      identity: memoryIdentityFiles(this.files),
      newIncarnation: () => Array.from({ length: 32 }, () => rng.int(16).toString(16)).join(''),
      peers: (h) => this.opts.net.attach(this.id, owner, h),
      onFatal: (err) => {
        if (owner.alive()) this.opts.onFatal(this.id, err);
      },
      plant: this.opts.plant,
    };
    const log = createSinkLogger(this.id, 'info', (line) => {
      if (!owner.alive()) return;
      if (line.includes('"msg":"log compacted"')) this.compactions++;
      this.opts.note(line.trimEnd());
    });
    const node = await QuorumKvNode.open(cfg, log, this.metrics, world);
    if (!owner.alive()) return;
    // The production snapshot module over simulated snapshot connections.
    const snapshots = new SnapshotManager(snapshotHostOf(node), { dial: (peer) => this.opts.net.dialSnapshot(this.id, owner, peer) }, {
      chunkBytes: cfg.snapshotChunkBytes,
      rateBytesPerSec: cfg.snapshotRateBytesPerSec,
      maxConcurrentSends: cfg.maxConcurrentSnapshotSends,
      clock: world.clock,
      random: world.random,
      faults: snapshotFaults(rng),
      ...(this.opts.plant === 'partial-snapshot-install' ? { plant: this.opts.plant } : {}),
    });
    node.snapshotHooks = snapshots;
    this.opts.net.acceptSnapshots(this.id, (peer, socket) => snapshots.acceptConnection(peer, socket));
    await node.found();
    if (!owner.alive()) return;
    node.start();
    this.node = node;
    this.service = new NodeKvService(node, new ByteBudget('range bytes in flight', cfg.maxRangeBytesInFlight));
  }

  /** A new, empty disk and identity (the machine lost its data directory); it then boots to join. */
  wipe(): void {
    if (this.up) throw new Error(`${this.id}: wipe a crashed machine only`);
    this.disk = new MemoryDisk();
    this.disk.recordWrites();
    this.files = new Map();
    this.joining = true;
  }

  /** Snapshots this machine installed (received from a leader). */
  async snapshotsInstalled(): Promise<number> {
    return (await this.metrics.snapshotsInstalled.get()).values.reduce((a, v) => a + v.value, 0);
  }

  /**
   * Power failure: the node stops at once (nothing it had in flight happens), and the disk keeps
   * what was synced plus each unsynced batch with probability 1/2, in any position.
   * Returns how many unsynced batches were lost.
   */
  crash(): number {
    this.up = false;
    this.epoch++;
    this.opts.net.nodeDown(this.id);
    this.node = undefined;
    this.service = undefined;
    const rng = this.opts.rng;
    return this.disk.powerLoss(() => rng.chance(0.5));
  }
}
