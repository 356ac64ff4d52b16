// Nemesis schedules as pure data: generated from a seed before the run, executed later by the
// orchestrator, saved with the history so a failing run can be replayed and read.
//
// A schedule is a list of non-overlapping events; each event starts at `startMs`, holds one or
// more faults (several = a correlated failure: faults that share a cause, at once), and heals
// them all at `healMs`. Faults may name a node by role (`@leader`, `@follower:N`); the
// orchestrator resolves roles from `/v1/status` at the moment the event starts (resolveRef).

import type { Rng } from './random.js';
import { createRng } from './random.js';
import type { Shaping } from './proxy.js';

/** A node id (`n2`) or a role resolved at the event's start: `@leader`, `@follower:0`, `@follower:1`, … */
export type NodeRef = string;

/** A directed cut: `to` stops hearing `from` (bytes from→to are dropped). */
export type Cut = readonly [from: NodeRef, to: NodeRef];

/** One fault. Every kind is undone at its event's heal. */
export type Fault =
  /** Cut every link of one node, both ways. */
  | { kind: 'isolate'; target: NodeRef; mode: 'silent' | 'loud' }
  /** A fixed set of directed cuts between concrete nodes. */
  | { kind: 'partition'; shape: 'halves' | 'majorities-ring' | 'one-way'; cuts: Cut[]; mode: 'silent' | 'loud' }
  /** kill -9 at the start; all of them restarted together at the heal. */
  | { kind: 'kill'; targets: NodeRef[] }
  /** SIGSTOP at the start, SIGCONT at the heal: slow, not dead. */
  | { kind: 'pause'; target: NodeRef }
  /** Delay / bandwidth on one directed link (both byte directions of that link). */
  | { kind: 'slow-link'; from: NodeRef; to: NodeRef; shaping: Shaping }
  /** Delay / bandwidth on every link of one node. */
  | { kind: 'slow-node'; target: NodeRef; shaping: Shaping }
  /** The server's harness-only fault option: added latency on every fsync. */
  | { kind: 'slow-disk'; target: NodeRef; fsyncDelayMs: number }
  /**
   * Every write to one node's disk fails (`ENOSPC`, or `EIO`) through its forgetting filesystem
   * until the heal: the node stops on its first failed write, keeps its port with a typed error,
   * and must start again on its own once writes work (docs/durability.md).
   */
  | { kind: 'disk-full'; target: NodeRef; errno: 'enospc' | 'eio' }
  /**
   * Cut a follower off silently and keep it off until the leader has compacted its log past
   * the follower's applied index (or `healMs` passes), then heal under load: forces catch-up by
   * snapshot.
   */
  | { kind: 'blackhole-until-compaction'; target: NodeRef }
  /** Multiply the workload's request rate (load high while something heals). */
  | { kind: 'load-surge'; rateMultiplier: number }
  /**
   * A voter loses its data directory (kill -9, data removed) and restarts at once with the
   * command line it was started with. At the heal it is brought back the way an operator
   * replaces a member that lost its disk: removed, started empty as a joiner, added as a
   * learner, promoted.
   */
  | { kind: 'wipe'; target: NodeRef }
  /**
   * A power cut: kill -9 of the targets at once, then every change their disks had not made
   * durable (fsync of the file, or of the directory for its entries) is discarded by the
   * forgetting filesystem (tools/forgetfs) under their data directories, the last unsynced write
   * left half-written when `torn`. Restarted together at the heal, like `kill`.
   */
  | { kind: 'power-loss'; targets: NodeRef[]; torn: boolean }
  /**
   * Disk corruption on one node (a minority): kill -9, one bit flipped in or a truncation of one
   * file of its data directory (corrupt.ts, drawn from `seed`), restarted at once. At the heal, a
   * node that refused to start on the damage is replaced as after a wipe; one that runs is left
   * to repair itself.
   */
  | { kind: 'corrupt'; target: NodeRef; seed: number }
  /**
   * A process holding the cluster secret opens `/raft` on the nodes and sends the planned
   * hostile frames (hostile-peer.ts), one every `intervalMs`, until the heal or the plan ends.
   */
  | { kind: 'hostile-peer'; frames: HostileFrame[]; intervalMs: number; seed: number };

/**
 * Kinds of hostile frame: malformed (`garbage` bytes, `malformed` msgpack, `oversized`), or
 * well-formed but out of the sender's authority (`wrong-from`: a message whose `from` is not the
 * hello's; `timeout-now` from a non-leader; `conflicting-append`: entries that conflict with
 * committed ones; `append-resp-beyond-last`: an acknowledgement of an index the leader never
 * had). A well-formed forgery a real member could send is out of scope (README § Faults).
 */
export const HOSTILE_FRAME_KINDS = ['garbage', 'malformed', 'oversized', 'wrong-from', 'timeout-now', 'conflicting-append', 'append-resp-beyond-last'] as const;
/** One kind of hostile frame; see {@link HOSTILE_FRAME_KINDS}. */
export type HostileFrameKind = (typeof HOSTILE_FRAME_KINDS)[number];

/** One planned hostile frame: what, and to whom (a role is resolved when the frame is sent). */
export interface HostileFrame {
  kind: HostileFrameKind;
  target: NodeRef;
}

/** Most hostile frames in one event: the nemesis is bounded in count as well as in rate. */
export const HOSTILE_FRAMES_PER_EVENT_MAX = 40;
/** Most `oversized` frames (one frame-limit's worth of bytes each) in one event. */
export const HOSTILE_OVERSIZED_PER_EVENT_MAX = 2;
/** Shortest gap between two hostile frames (the rate bound: at most 10 frames per second). */
export const HOSTILE_INTERVAL_MS_MIN = 100;

/** A scheduled set of faults that start and heal together. */
export interface NemesisEvent {
  id: string;
  /** The nemesis name that produced the event (see {@link NEMESES}). */
  nemesis: NemesisName;
  startMs: number;
  healMs: number;
  faults: Fault[];
  /** Several faults with one cause. */
  correlated: boolean;
}

/** A whole run's schedule. */
export interface NemesisSchedule {
  seed: number;
  nodes: string[];
  durationMs: number;
  events: NemesisEvent[];
}

/** Every nemesis a user can ask for by name. */
export const NEMESES = [
  'partition-one',
  'partition-leader',
  'partition-halves',
  'partition-ring',
  'partition-one-way',
  'kill-one',
  'kill-leader',
  'kill-majority',
  'kill-all',
  'pause-one',
  'pause-leader',
  'slow-link',
  'slow-node',
  'slow-disk',
  'disk-full',
  'snapshot-blackhole',
  'correlated-pause-leader-slow-disk',
  'correlated-heal-under-load',
  'correlated-kill-two',
  'wipe-one',
  'correlated-wipe-kill',
  'hostile-peer',
  'power-loss-one',
  'power-loss-majority',
  'power-loss-all',
  'corrupt-one',
] as const;

/** A nemesis name. */
export type NemesisName = (typeof NEMESES)[number];

/** Group names accepted on the command line, expanded by {@link expandNemeses}. */
export const NEMESIS_GROUPS: Record<string, readonly NemesisName[]> = {
  none: [],
  partition: NEMESES.filter((n) => n.startsWith('partition-')),
  kill: NEMESES.filter((n) => n.startsWith('kill-')),
  pause: NEMESES.filter((n) => n.startsWith('pause-')),
  slow: ['slow-link', 'slow-node', 'slow-disk'],
  correlated: NEMESES.filter((n) => n.startsWith('correlated-')),
  wipe: ['wipe-one', 'correlated-wipe-kill'],
  'power-loss': NEMESES.filter((n) => n.startsWith('power-loss-')),
  corrupt: ['corrupt-one'],
  all: NEMESES,
};

/** A nemesis list that could not be parsed. */
export class NemesisSpecError extends Error {
  readonly code = 'JL_NEMESIS_SPEC';
}

/** Expands a comma-separated list of names and groups; throws {@link NemesisSpecError} on an unknown one. */
export function expandNemeses(spec: string): NemesisName[] {
  const out = new Set<NemesisName>();
  for (const raw of spec.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const group = NEMESIS_GROUPS[raw];
    if (group !== undefined) group.forEach((n) => out.add(n));
    else if ((NEMESES as readonly string[]).includes(raw)) out.add(raw as NemesisName);
    else throw new NemesisSpecError(`unknown nemesis "${raw}"; known: ${[...Object.keys(NEMESIS_GROUPS), ...NEMESES].join(', ')}`);
  }
  return [...out];
}

/** Options of {@link generateSchedule}. */
export interface ScheduleOptions {
  seed: number;
  nodes: readonly string[];
  durationMs: number;
  nemeses: readonly NemesisName[];
  /** Fault duration range. Default [2000, 6000]. */
  faultMsRange?: readonly [number, number];
  /** Healthy gap between events; long enough for restarted nodes to rejoin. Default [3000, 6000]. */
  gapMsRange?: readonly [number, number];
  /** Healthy time before the first fault and after the last heal. Default 2000 / 3000. */
  quietStartMs?: number;
  quietEndMs?: number;
  /** Probability that an event also takes a second, independent nemesis at once. Default 0. */
  combineChance?: number;
  /** Upper bound on events per schedule. Default 1000. */
  eventsMax?: number;
}

const DEFAULTS = { faultMsRange: [2000, 6000] as const, gapMsRange: [3000, 6000] as const, quietStartMs: 2000, quietEndMs: 3000, eventsMax: 1000 };

/**
 * Generates a schedule from a seed: healthy start, then fault / heal / gap cycles with nemeses
 * drawn from `nemeses`, then a healthy end for the final reads. Same options → same schedule.
 */
export function generateSchedule(options: ScheduleOptions): NemesisSchedule {
  validateScheduleOptions(options);
  const rng = createRng(options.seed);
  const [fMin, fMax] = options.faultMsRange ?? DEFAULTS.faultMsRange;
  const [gMin, gMax] = options.gapMsRange ?? DEFAULTS.gapMsRange;
  const endMs = options.durationMs - (options.quietEndMs ?? DEFAULTS.quietEndMs);
  const events: NemesisEvent[] = [];
  let t = options.quietStartMs ?? DEFAULTS.quietStartMs;
  while (options.nemeses.length > 0 && t + fMin <= endMs && events.length < (options.eventsMax ?? DEFAULTS.eventsMax)) {
    const nemesis = rng.pick(options.nemeses);
    let healMs = Math.min(endMs, t + rng.int(fMin, fMax));
    const [faults, ...later] = phasesFor(nemesis, options.nodes, rng);
    let correlated = nemesis.startsWith('correlated-');
    if (options.combineChance !== undefined && rng.chance(options.combineChance)) {
      faults!.push(...faultsFor(rng.pick(options.nemeses), options.nodes, rng));
      correlated = true;
    }
    events.push({ id: `e${events.length + 1}`, nemesis, startMs: t, healMs, faults: faults!, correlated });
    // Later phases start at the previous phase's heal, with no healthy gap (as long as one fits).
    for (const phase of later) {
      if (healMs + fMin > endMs) break;
      const startMs = healMs;
      healMs = Math.min(endMs, startMs + rng.int(fMin, fMax));
      events.push({ id: `e${events.length + 1}`, nemesis, startMs, healMs, faults: phase, correlated });
    }
    t = healMs + rng.int(gMin, gMax);
  }
  return { seed: options.seed, nodes: [...options.nodes], durationMs: options.durationMs, events };
}

function validateScheduleOptions(o: ScheduleOptions): void {
  if (o.nodes.length < 3) throw new NemesisSpecError(`need at least 3 nodes for fault schedules, got ${o.nodes.length}`);
  if (new Set(o.nodes).size !== o.nodes.length) throw new NemesisSpecError('node ids must be unique');
  if (!(o.durationMs > 0)) throw new NemesisSpecError('durationMs must be > 0');
  const [fMin, fMax] = o.faultMsRange ?? DEFAULTS.faultMsRange;
  const [gMin, gMax] = o.gapMsRange ?? DEFAULTS.gapMsRange;
  if (!(fMin > 0 && fMin <= fMax && gMin >= 0 && gMin <= gMax)) throw new NemesisSpecError('fault and gap ranges must be positive [min, max]');
}

const SLOW: Shaping = { delayMs: 200, jitterMs: 100, bytesPerSecond: null };

/**
 * The faults of a nemesis as consecutive phases: one event each, the next starting at the
 * previous one's heal. Most nemeses have one phase (the same random draws as {@link faultsFor}).
 */
function phasesFor(nemesis: NemesisName, nodes: readonly string[], rng: Rng): Fault[][] {
  if (nemesis !== 'correlated-wipe-kill') return [faultsFor(nemesis, nodes, rng)];
  // Issue 14's confirmed loss: a node is down while the other two acknowledge writes; as it
  // comes back, one of those two loses its disk (and restarts with its usual command line) and
  // the other crashes. Only the stale node and the empty one are left to elect a leader.
  const [stale, wiped, crashed] = rng.shuffle(nodes);
  return [[{ kind: 'kill', targets: [stale!] }], [{ kind: 'wipe', target: wiped! }, { kind: 'kill', targets: [crashed!] }]];
}

/** The faults one nemesis produces (concrete nodes drawn from the rng, roles left symbolic). */
function faultsFor(nemesis: NemesisName, nodes: readonly string[], rng: Rng): Fault[] {
  const mode = (): 'silent' | 'loud' => (rng.chance(0.75) ? 'silent' : 'loud');
  const majority = Math.floor(nodes.length / 2) + 1;
  switch (nemesis) {
    case 'partition-one':
      return [{ kind: 'isolate', target: rng.pick(nodes), mode: mode() }];
    case 'partition-leader':
      return [{ kind: 'isolate', target: '@leader', mode: mode() }];
    case 'partition-halves':
      return [{ kind: 'partition', shape: 'halves', cuts: halvesCuts(rng.shuffle(nodes)), mode: mode() }];
    case 'partition-ring':
      return [{ kind: 'partition', shape: 'majorities-ring', cuts: majoritiesRingCuts(rng.shuffle(nodes)), mode: 'silent' }];
    case 'partition-one-way': {
      const [a, b] = rng.shuffle(nodes);
      return [{ kind: 'partition', shape: 'one-way', cuts: [[a!, b!]], mode: 'silent' }];
    }
    case 'kill-one':
      return [{ kind: 'kill', targets: [rng.pick(nodes)] }];
    case 'kill-leader':
      return [{ kind: 'kill', targets: ['@leader'] }];
    case 'kill-majority':
      return [{ kind: 'kill', targets: rng.shuffle(nodes).slice(0, majority) }];
    case 'kill-all':
      return [{ kind: 'kill', targets: [...nodes] }];
    case 'power-loss-one':
      return [{ kind: 'power-loss', targets: [rng.pick(nodes)], torn: rng.chance(0.5) }];
    case 'power-loss-majority':
      return [{ kind: 'power-loss', targets: rng.shuffle(nodes).slice(0, majority), torn: rng.chance(0.5) }];
    case 'power-loss-all':
      return [{ kind: 'power-loss', targets: [...nodes], torn: rng.chance(0.5) }];
    case 'corrupt-one':
      return [{ kind: 'corrupt', target: rng.pick(['@leader', '@follower:0']), seed: rng.int(0, 2 ** 31 - 1) }];
    case 'pause-one':
      return [{ kind: 'pause', target: rng.pick(nodes) }];
    case 'pause-leader':
      return [{ kind: 'pause', target: '@leader' }];
    case 'slow-link': {
      const [a, b] = rng.shuffle(nodes);
      return [{ kind: 'slow-link', from: a!, to: b!, shaping: { ...SLOW, delayMs: rng.int(50, 400) } }];
    }
    case 'slow-node':
      return [{ kind: 'slow-node', target: rng.pick(['@leader', ...nodes]), shaping: { ...SLOW, delayMs: rng.int(50, 400) } }];
    case 'slow-disk':
      return [{ kind: 'slow-disk', target: rng.pick(['@leader', ...nodes]), fsyncDelayMs: rng.int(20, 200) }];
    case 'disk-full':
      return [{ kind: 'disk-full', target: rng.pick(['@leader', '@follower:0']), errno: rng.chance(0.75) ? 'enospc' : 'eio' }];
    case 'snapshot-blackhole':
      return [{ kind: 'blackhole-until-compaction', target: '@follower:0' }];
    case 'correlated-pause-leader-slow-disk':
      return [
        { kind: 'pause', target: '@leader' },
        { kind: 'slow-disk', target: '@follower:0', fsyncDelayMs: rng.int(50, 200) },
      ];
    case 'correlated-heal-under-load':
      // The blackholed follower is released while the load is high: catch-up competes with clients.
      return [
        { kind: 'blackhole-until-compaction', target: '@follower:0' },
        { kind: 'load-surge', rateMultiplier: 3 },
      ];
    case 'correlated-kill-two':
      return [{ kind: 'kill', targets: rng.shuffle(nodes).slice(0, 2) }];
    case 'wipe-one':
      return [{ kind: 'wipe', target: rng.pick(['@leader', '@follower:0']) }];
    case 'correlated-wipe-kill':
      // Its phases come from phasesFor; here (combined into another event) only the wipe + crash.
      return [
        { kind: 'wipe', target: '@follower:0' },
        { kind: 'kill', targets: ['@leader'] },
      ];
    case 'hostile-peer':
      return [hostilePeerFault(nodes, rng)];
  }
}

/**
 * A hostile-peer plan: up to {@link HOSTILE_FRAMES_PER_EVENT_MAX} frames of every kind, each to a
 * random node (`append-resp-beyond-last` to the leader, `timeout-now` to a follower: where they
 * would do harm), at most {@link HOSTILE_OVERSIZED_PER_EVENT_MAX} oversized ones.
 */
export function hostilePeerFault(nodes: readonly string[], rng: Rng): Fault {
  const count = rng.int(HOSTILE_FRAMES_PER_EVENT_MAX / 2, HOSTILE_FRAMES_PER_EVENT_MAX);
  const frames: HostileFrame[] = [];
  let oversized = 0;
  for (let i = 0; i < count; i++) {
    // Every kind at least once (in a random order) before random picks.
    let kind = i < HOSTILE_FRAME_KINDS.length ? HOSTILE_FRAME_KINDS[i]! : rng.pick(HOSTILE_FRAME_KINDS);
    if (kind === 'oversized' && ++oversized > HOSTILE_OVERSIZED_PER_EVENT_MAX) kind = 'garbage';
    frames.push({ kind, target: hostileTarget(kind, nodes, rng) });
  }
  return { kind: 'hostile-peer', frames: rng.shuffle(frames), intervalMs: rng.int(HOSTILE_INTERVAL_MS_MIN, 2 * HOSTILE_INTERVAL_MS_MIN), seed: rng.int(0, 2 ** 31 - 1) };
}

function hostileTarget(kind: HostileFrameKind, nodes: readonly string[], rng: Rng): NodeRef {
  if (kind === 'append-resp-beyond-last') return '@leader';
  if (kind === 'timeout-now') return `@follower:${rng.int(0, nodes.length - 2)}`;
  return rng.pick(nodes);
}

/** Cuts both ways between the first half (rounded down) and the rest of `order`. */
export function halvesCuts(order: readonly string[]): Cut[] {
  const k = Math.floor(order.length / 2);
  return crossCuts(order.slice(0, k), order.slice(k));
}

/** Every directed cut between two groups, both ways. */
export function crossCuts(a: readonly string[], b: readonly string[]): Cut[] {
  const cuts: Cut[] = [];
  for (const x of a) for (const y of b) cuts.push([x, y], [y, x]);
  return cuts;
}

/**
 * Jepsen's majorities ring: in the ring `order`, each node hears itself and the next
 * ⌊n/2⌋ nodes — a majority — and nobody else, so every node sees a majority and no two see the
 * same one. With 3 nodes the cuts are one-way (a ring of one-way links).
 */
export function majoritiesRingCuts(order: readonly string[]): Cut[] {
  const n = order.length;
  const reach = Math.floor(n / 2);
  const cuts: Cut[] = [];
  for (let i = 0; i < n; i++) {
    const hears = new Set(Array.from({ length: reach + 1 }, (_, k) => order[(i + k) % n]!));
    for (const y of order) if (!hears.has(y)) cuts.push([y, order[i]!]);
  }
  return cuts;
}

/** Who each node hears (itself included) under a set of concrete cuts. */
export function hearing(nodes: readonly string[], cuts: readonly Cut[]): Map<string, Set<string>> {
  const cut = new Set(cuts.map(([f, t]) => `${f}\u0000${t}`));
  return new Map(nodes.map((to) => [to, new Set(nodes.filter((from) => from === to || !cut.has(`${from}\u0000${to}`)))]));
}

/** What the orchestrator knows when it resolves roles: the members and the current leader. */
export interface ClusterView {
  nodes: readonly string[];
  leader: string | null;
}

/**
 * Resolves a {@link NodeRef} to a node id. `@leader` with no known leader falls back to the
 * first node (and says so), so a schedule still runs when an election is under way.
 */
export function resolveRef(ref: NodeRef, view: ClusterView): { node: string; fallback: boolean } {
  if (!ref.startsWith('@')) return { node: ref, fallback: false };
  // With no known leader, the first node stands in for it, so @leader and @follower:N still
  // name different nodes (a correlated fault meant for two nodes hits two).
  const leader = view.leader ?? view.nodes[0]!;
  const fallback = view.leader === null;
  const followers = view.nodes.filter((n) => n !== leader);
  if (ref === '@leader') return { node: leader, fallback };
  const m = /^@follower:(\d+)$/.exec(ref);
  if (m !== null) return { node: followers[Number(m[1]) % followers.length]!, fallback };
  throw new NemesisSpecError(`unknown node reference "${ref}"`);
}

/** The directed cuts a partition-like fault means, with roles resolved; [] for other kinds. */
export function cutsOf(fault: Fault, view: ClusterView): Cut[] {
  if (fault.kind === 'partition') return fault.cuts.map(([f, t]) => [resolveRef(f, view).node, resolveRef(t, view).node] as const);
  if (fault.kind === 'isolate' || fault.kind === 'blackhole-until-compaction') {
    const target = resolveRef(fault.target, view).node;
    return crossCuts([target], view.nodes.filter((n) => n !== target));
  }
  return [];
}
