// Executes a nemesis schedule against a cluster: at each event's start, resolve roles from the
// cluster's current view, apply its faults, and at its heal undo them all together. Written
// against the small ClusterControl interface so it is tested with a fake cluster and fake clock.

import type { HostileCampaign, HostilePeerFault } from './hostile-peer.js';
import { describeCampaign } from './hostile-peer.js';
import type { LabelledFault } from './report.js';
import type { ClusterView, Cut, Fault, NemesisEvent, NemesisSchedule } from './nemesis.js';
import { cutsOf, resolveRef } from './nemesis.js';
import type { Shaping } from './proxy.js';

/**
 * What the nemesis may do to a cluster. The real ones are `Cluster` (db.ts, local processes) and
 * `DockerCluster` (docker-db.ts). Network and pause calls may be synchronous (local) or not
 * (Docker); the executor awaits them either way. A fault an environment cannot do throws an error
 * with `code` JL_FAULT_UNSUPPORTED and is reported as NOT APPLIED.
 */
export interface ClusterControl {
  readonly nodes: readonly string[];
  /** Members and current leader, from `/v1/status`. */
  view(): Promise<ClusterView>;
  /**
   * Applies directed cuts. May return a note on how they were applied (appended to the fault's
   * label, e.g. Docker's "docker network disconnect, silent").
   */
  cut(cuts: readonly Cut[], mode: 'silent' | 'loud'): void | string | Promise<void | string>;
  shapePair(a: string, b: string, shaping: Shaping): void | Promise<void>;
  healNetwork(): void | Promise<void>;
  /** kill -9. */
  kill(node: string): Promise<void>;
  /**
   * kill -9 of every node in `nodes` at once, then their disks lose every unsynced change (the
   * last write torn when `torn`); they stay down until {@link restart}.
   */
  powerLoss(nodes: readonly string[], torn: boolean): Promise<string | void>;
  /** kill -9, damage one file of the node's data directory (seeded), start it again at once; returns what was damaged. */
  corrupt(node: string, seed: number): Promise<string>;
  /** The heal of a corruption: replaces the node (as {@link replace}) if it refused to start, else nothing; returns how it went. */
  repairCorrupted(node: string): Promise<string>;
  /** Starts a killed node again on its data directory. */
  restart(node: string): Promise<void>;
  /** SIGSTOP / SIGCONT (Docker: docker pause / unpause). */
  pause(node: string): void | Promise<void>;
  resume(node: string): void | Promise<void>;
  /** Makes every write to the node's disk fail with `errno` ('none' heals); needs its forgetting filesystem. */
  failDiskWrites(node: string, errno: 'enospc' | 'eio' | 'none'): Promise<void>;
  /** The server's harness-only fault option; 0 turns it off. */
  setFsyncDelayMs(node: string, delayMs: number): Promise<void>;
  /** True once the leader's log no longer holds the entry after `node`'s applied index. */
  compactedPast(node: string): Promise<boolean>;
  /** Scales the workload's request rate (1 = normal). */
  setRateMultiplier(multiplier: number): void;
  /** kill -9, remove the node's data directory, start it again at once with its usual command line. */
  wipe(node: string): Promise<void>;
  /**
   * Brings a wiped node back as an operator replaces a member that lost its disk: stop it,
   * `member remove`, start it empty as a joiner, `member add` as a learner, `member promote`.
   * Resolves with a note on how it went (a step that did not succeed in time is named there; the
   * checkers then judge the cluster as it is).
   */
  replace(node: string): Promise<string>;
  /** Starts a hostile peer's campaign (hostile-peer.ts) for event `eventId`. */
  hostilePeer(eventId: string, fault: HostilePeerFault): HostileCampaign;
}

/** Time for the executor: milliseconds since the run started, and the history's ns clock. */
export interface RunClock {
  nowMs(): number;
  nowNs(): number;
  sleepUntilMs(ms: number): Promise<void>;
}

/** How often a blackhole checks whether the leader has compacted past its target. */
export const COMPACTION_POLL_MS = 250;

/** An undo step for the heal; a string it returns is appended to the fault's label. */
type Undo = () => Promise<void | string> | void | string;

/**
 * Runs every event of `schedule` in order; returns the fault windows as executed (with the
 * resolved nodes in each label). `onWindow` is called at each start (endNs null) and heal.
 * Stops early, healing what is active, when `shouldStop()` turns true between steps.
 */
export async function executeSchedule(
  schedule: NemesisSchedule,
  cluster: ClusterControl,
  clock: RunClock,
  onWindow: (w: LabelledFault) => void = () => undefined,
  shouldStop: () => boolean = () => false,
): Promise<LabelledFault[]> {
  const windows: LabelledFault[] = [];
  for (const event of schedule.events) {
    await clock.sleepUntilMs(event.startMs);
    if (shouldStop()) break;
    const view = await cluster.view();
    const undos: Undo[] = [];
    const described: string[] = [];
    for (const f of event.faults) described.push(await applyOrExplain(f, event.id, view, cluster, undos));
    const w: LabelledFault = { id: event.id, kind: event.nemesis, label: `${event.id} ${described.join(' + ')}`, startNs: clock.nowNs(), endNs: null };
    onWindow({ ...w });
    await waitForHeal(event, view, cluster, clock, shouldStop);
    const notes: string[] = [];
    for (const undo of undos.reverse()) {
      const note = await undo();
      if (typeof note === 'string' && note !== '') notes.push(note);
    }
    if (notes.length > 0) w.label += ` | heal: ${notes.join('; ')}`;
    w.endNs = clock.nowNs();
    onWindow({ ...w });
    windows.push(w);
  }
  return windows;
}

async function waitForHeal(event: NemesisEvent, view: ClusterView, cluster: ClusterControl, clock: RunClock, shouldStop: () => boolean): Promise<void> {
  const blackhole = event.faults.find((f) => f.kind === 'blackhole-until-compaction');
  if (blackhole === undefined) return clock.sleepUntilMs(event.healMs);
  const target = resolveRef(blackhole.target, view).node;
  // The heal comes when the leader has compacted past the target, or at healMs at the latest.
  while (clock.nowMs() < event.healMs && !shouldStop()) {
    if (await cluster.compactedPast(target)) return;
    await clock.sleepUntilMs(Math.min(event.healMs, clock.nowMs() + COMPACTION_POLL_MS));
  }
}

/**
 * Applies a fault; a fault the cluster cannot do (`code` JL_FAULT_UNSUPPORTED, e.g. a server
 * without the runtime slow-disk switch) is named in the label as not applied, and the run goes on.
 */
async function applyOrExplain(fault: Fault, eventId: string, view: ClusterView, cluster: ClusterControl, undos: Undo[]): Promise<string> {
  try {
    return await applyFault(fault, eventId, view, cluster, undos);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'JL_FAULT_UNSUPPORTED') throw err;
    const what = fault.kind === 'partition' ? `${fault.shape} partition` : fault.kind;
    return `${what} NOT APPLIED (${(err as Error).message})`;
  }
}

/** Applies one fault, pushes its undo, and returns a human label with resolved nodes. */
async function applyFault(fault: Fault, eventId: string, view: ClusterView, cluster: ClusterControl, undos: Undo[]): Promise<string> {
  const node = (ref: string): string => resolveRef(ref, view).node;
  const healNet: Undo = () => cluster.healNetwork();
  switch (fault.kind) {
    case 'isolate':
    case 'partition':
    case 'blackhole-until-compaction': {
      const note = await cluster.cut(cutsOf(fault, view), fault.kind === 'blackhole-until-compaction' ? 'silent' : fault.mode);
      undos.push(healNet);
      const how = typeof note === 'string' && note !== '' ? ` [${note}]` : '';
      if (fault.kind === 'partition') return `${fault.shape} partition (${fault.mode})${how}`;
      const verb = fault.kind === 'isolate' ? `isolate (${fault.mode})` : 'blackhole until compaction';
      return `${verb} ${node(fault.target)}${how}`;
    }
    case 'kill': {
      const targets = [...new Set(fault.targets.map(node))];
      await Promise.all(targets.map((t) => cluster.kill(t)));
      // All restarted together at the heal.
      undos.push(() => Promise.all(targets.map((t) => cluster.restart(t))).then(() => undefined));
      return `kill -9 ${targets.join(',')}`;
    }
    case 'power-loss': {
      const targets = [...new Set(fault.targets.map(node))];
      const lost = await cluster.powerLoss(targets, fault.torn);
      undos.push(() => Promise.all(targets.map((t) => cluster.restart(t))).then(() => undefined));
      return `power loss ${targets.join(',')}${fault.torn ? ' (last write torn)' : ''}: unsynced writes discarded${lost ? ` (${lost})` : ''}`;
    }
    case 'corrupt': {
      const t = node(fault.target);
      const what = await cluster.corrupt(t, fault.seed);
      undos.push(() => cluster.repairCorrupted(t));
      return `corrupt ${t}: ${what}, restarted`;
    }
    case 'pause': {
      const t = node(fault.target);
      await cluster.pause(t);
      undos.push(() => cluster.resume(t));
      return `pause ${t}`;
    }
    case 'slow-link': {
      const [a, b] = [node(fault.from), node(fault.to)];
      await cluster.shapePair(a, b, fault.shaping);
      undos.push(healNet);
      return `slow link ${a}-${b} +${fault.shaping.delayMs}ms`;
    }
    case 'slow-node': {
      const t = node(fault.target);
      for (const other of view.nodes) if (other !== t) await cluster.shapePair(t, other, fault.shaping);
      undos.push(healNet);
      return `slow node ${t} +${fault.shaping.delayMs}ms`;
    }
    case 'slow-disk': {
      const t = node(fault.target);
      await cluster.setFsyncDelayMs(t, fault.fsyncDelayMs);
      undos.push(() => cluster.setFsyncDelayMs(t, 0).catch(() => undefined));
      return `slow disk ${t} +${fault.fsyncDelayMs}ms/fsync`;
    }
    case 'disk-full': {
      const t = node(fault.target);
      await cluster.failDiskWrites(t, fault.errno);
      undos.push(() => cluster.failDiskWrites(t, 'none'));
      return `disk of ${t} fails every write with ${fault.errno.toUpperCase()}`;
    }
    case 'load-surge':
      cluster.setRateMultiplier(fault.rateMultiplier);
      undos.push(() => cluster.setRateMultiplier(1));
      return `load x${fault.rateMultiplier}`;
    case 'wipe': {
      const t = node(fault.target);
      await cluster.wipe(t);
      undos.push(() => cluster.replace(t));
      return `wipe ${t} (data directory removed, restarted with its usual command line)`;
    }
    case 'hostile-peer': {
      const campaign = cluster.hostilePeer(eventId, fault);
      undos.push(async () => describeCampaign(await campaign.stop()));
      return `hostile peer: ${fault.frames.length} frames planned, one per ${fault.intervalMs} ms`;
    }
  }
}
