// One simulated machine: a MemoryDisk that survives crashes (keeping only what was synced), the
// identity files, and the production QuorumKvNode booted on them with a simulated world. A crash
// abandons the node object (its timers and messages die with it) and power-fails the disk.
import { DEFAULTS, type HostPlant, NodeKvService, SnapshotManager, type SnapshotFaults, snapshotHostOf, ByteBudget, NodeMetrics, QuorumKvNode, createSinkLogger, memoryIdentityFiles, type NodeWorld, type ServeConfig, type TimerHandle } from '@quorumkv/server';
import { type ApplyResult, type MarkTimer, MemoryDisk, openMemoryNodeStore } from '@quorumkv/storage';
import { type PowerFailure, SimDisk } from './sim-disk.js';
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
/**
 * History kept behind the newest revision: small, so the leader proposes history compactions and
 * the state machines write their unsynced deletes (kv.compact), which a power failure may lose
 * while later synced batches survive.
 */
const SIM_HISTORY_RETAIN_REVISIONS = 40;
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
    historyRetainRevisions: SIM_HISTORY_RETAIN_REVISIONS,
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

export class SimNodeHost implements Liveness {
  /** The machine's disk (a new one when the machine is replaced). */
  disk: SimDisk;
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
  /** While paused (an event-loop stall), the simulated instant the node resumes. */
  private resumeAt = 0;
  /** The power failure under way (a restart waits for it). */
  private failing: Promise<PowerFailure> | undefined;
  /** Log compactions this machine's nodes carried out. */
  compactions = 0;
  /** One registry for every boot of this machine (snapshot counters read at the end). */
  readonly metrics = new NodeMetrics(false);

  constructor(
    readonly id: string,
    private readonly opts: HostOptions,
  ) {
    this.disk = new SimDisk(new MemoryDisk(), opts.sched, opts.rng);
  }

  alive(): boolean {
    return this.up;
  }

  resumeAtMs(): number {
    return this.resumeAt;
  }

  /** Stalls the node's event loop for `ms`: nothing of it runs meanwhile, then everything that arrived does. */
  pause(ms: number): void {
    this.resumeAt = Math.max(this.resumeAt, this.opts.sched.nowMs() + ms);
  }

  /** True while a log append of this node has not reached its disk. */
  writing(): boolean {
    return this.up && this.disk.appending();
  }

  /**
   * The high-water mark's confirmation timer on the simulated clock, dropped with its boot (the
   * store's default, a real setTimeout, would fire at a wall-clock moment outside the simulation).
   */
  private markTimer(owner: Liveness): MarkTimer {
    const clock = this.opts.sched.clockFor(owner);
    return {
      set: (fn, delayMs) => clock.setTimer(delayMs, fn),
      clear: (handle) => clock.clearTimer(handle as TimerHandle),
    };
  }

  /** Opens the store on the disk and boots the production node on it (founding on the first boot). */
  async boot(): Promise<void> {
    if (this.failing) await this.failing;
    const epoch = ++this.epoch;
    this.up = true;
    this.boots++;
    this.resumeAt = 0;
    const owner: Liveness = { alive: () => this.up && this.epoch === epoch, resumeAtMs: () => this.resumeAt };
    const cfg = simConfig(this.id, this.opts.ids, this.joining);
    const rng = this.opts.rng;
    const opened = await openMemoryNodeStore(this.disk.memory, { kv: { sessionTtlMs: cfg.sessionTtlMs }, markTimer: this.markTimer(owner) });
    const store = this.disk.wrap(opened, owner, this.opts.onApplied);
    const world: NodeWorld = {
      clock: this.opts.sched.clockFor(owner),
      random: { int: (n) => rng.int(n) },
      defer: (fn) => void this.opts.sched.after(0, () => this.opts.sched.whenRunning(owner, () => owner.alive() && fn())),
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
    this.disk = new SimDisk(new MemoryDisk(), this.opts.sched, this.opts.rng);
    this.files = new Map();
    this.joining = true;
  }

  /** Snapshots this machine installed (received from a leader). */
  async snapshotsInstalled(): Promise<number> {
    return (await this.metrics.snapshotsInstalled.get()).values.reduce((a, v) => a + v.value, 0);
  }

  /**
   * Power failure: the node stops at once (nothing it had in flight happens in it), and its disk
   * keeps what SimDisk.powerFailure decides: synced batches, each write on its way by a coin (its
   * mark record maybe torn), each unsynced batch by a coin, in any position. Resolves once the
   * disk is settled; a restart waits for that.
   */
  crash(): Promise<PowerFailure> {
    this.up = false;
    this.epoch++;
    this.resumeAt = 0;
    this.opts.net.nodeDown(this.id);
    this.node = undefined;
    this.service = undefined;
    const failing = this.disk.powerFailure();
    this.failing = failing;
    return failing;
  }
}
