// One simulated run: a safety phase (the profile's faults and client actions on a seeded
// schedule, invariants checked as the cluster runs), then a liveness phase (everything healed
// and restarted; a leader must commit a new write within a bounded number of ticks).
import { ConfChangeType } from '@quorumkv/raft';
import type { ConfChange } from '@quorumkv/raft';
import { InvariantViolation } from './invariants.js';
import type { InvariantName } from './invariants.js';
import type { Prng } from './prng.js';
import { DEFAULT_PROFILE } from './scenario.js';
import type { SimProfile } from './scenario.js';
import { PERFECT_NETWORK } from './sim-network.js';
import { SimCluster } from './sim-cluster.js';
import type { ClusterStats, SimBug } from './sim-cluster.js';

/** What to run. Only `seed` is required. */
export interface SimOptions {
  seed: number;
  /** Initial voters: 3 or 5. Default 3. */
  nodes?: number;
  /** Ticks of the safety phase. Default 400. */
  steps?: number;
  /** Named maximum of the liveness phase, in ticks. Default 600 (60 election timeouts). */
  livenessTicks?: number;
  profile?: SimProfile;
  bug?: SimBug | undefined;
  /** Receives every trace event as it happens. */
  onEvent?: (line: string) => void;
  /** Events kept for the failure report. Default 400. */
  traceCapacity?: number;
}

/** What identifies a run: with these, `replayCommand` reproduces it exactly. */
export interface RunId {
  seed: number;
  nodes: number;
  steps: number;
  profile: string;
  bug?: SimBug | undefined;
}

/** The outcome of one run. */
export interface SimResult {
  seed: number;
  run: RunId;
  ok: boolean;
  /** Set when an invariant broke (or the simulator itself failed: 'simulator-error'). */
  invariant?: InvariantName | 'simulator-error';
  message?: string;
  /** The tick at which it broke, and the phase. */
  failedAtTick?: number;
  phase?: 'safety' | 'liveness';
  /** The last trace events, formatted (only on failure). */
  trace?: string;
  ticks: number;
  stats: ClusterStats & { messagesSent: number; messagesDelivered: number; maxCommit: number };
}

/** Keys the workload writes and reads. */
function keyName(i: number): string {
  return `k${i}`;
}

/** Runs one seed to the end or to the first violation. Never throws for a violation. */
export function runSeed(opts: SimOptions): SimResult {
  const nodes = opts.nodes ?? 3;
  const steps = opts.steps ?? 400;
  const profile = opts.profile ?? DEFAULT_PROFILE;
  let cluster: SimCluster | undefined;
  let phase: 'safety' | 'liveness' = 'safety';
  const runId: RunId = { seed: opts.seed, nodes, steps, profile: profile.name, bug: opts.bug };
  try {
    cluster = new SimCluster({ seed: opts.seed, nodeCount: nodes, spareCount: 1, profile, bug: opts.bug, traceCapacity: opts.traceCapacity });
    if (opts.onEvent) cluster.trace.onEvent = opts.onEvent;
    const actions = cluster.rng.fork(3);
    for (let i = 0; i < steps; i++) {
      injectActions(cluster, actions, profile);
      cluster.tick();
    }
    phase = 'liveness';
    runLiveness(cluster, opts.livenessTicks ?? 600);
    return result(runId, cluster, true);
  } catch (err) {
    const r = result(runId, cluster, false);
    r.phase = phase;
    r.failedAtTick = cluster?.now ?? 0;
    if (err instanceof InvariantViolation) {
      r.invariant = err.invariant;
      r.message = err.message;
    } else {
      r.invariant = 'simulator-error';
      r.message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    }
    r.trace = cluster?.trace.format(80);
    return r;
  }
}

function result(run: RunId, c: SimCluster | undefined, ok: boolean): SimResult {
  const stats = c
    ? { ...c.stats, messagesSent: c.net.stats.sent, messagesDelivered: c.net.stats.delivered, maxCommit: c.checker.maxCommit }
    : emptyStats();
  return { seed: run.seed, run, ok, ticks: c?.now ?? 0, stats };
}

/** Options for a batch of consecutive seeds. */
export interface BatchOptions extends Omit<SimOptions, 'seed'> {
  /** First seed; the batch runs from .. from+count-1. */
  from: number;
  count: number;
  /** Stop at the first failing seed (default true). */
  stopAtFirstFailure?: boolean;
  /** Called after each seed (progress reporting). */
  onResult?: (r: SimResult, done: number) => void;
}

/** The outcome of a batch. */
export interface BatchResult {
  ran: number;
  ticks: number;
  elapsedMs: number;
  failures: SimResult[];
  /** Sum of the per-run counters. */
  totals: SimResult['stats'];
}

/** Runs consecutive seeds. Deterministic apart from `elapsedMs`. */
export function runSeeds(opts: BatchOptions): BatchResult {
  const t0 = performance.now();
  const out: BatchResult = { ran: 0, ticks: 0, elapsedMs: 0, failures: [], totals: emptyStats() };
  for (let k = 0; k < opts.count; k++) {
    const r = runSeed({ ...opts, seed: opts.from + k });
    out.ran++;
    out.ticks += r.ticks;
    for (const key of Object.keys(out.totals) as (keyof SimResult['stats'])[]) {
      out.totals[key] = key === 'maxCommit' ? Math.max(out.totals[key], r.stats[key]) : out.totals[key] + r.stats[key];
    }
    opts.onResult?.(r, k + 1);
    if (!r.ok) {
      out.failures.push(r);
      if (opts.stopAtFirstFailure ?? true) break;
    }
  }
  out.elapsedMs = performance.now() - t0;
  return out;
}

/**
 * Runs seeds [from, from+count) and throws an Error carrying `describeFailure` of the first
 * failing seed (for test suites: the message holds the seed, trace and replay command).
 */
export function expectSeedsPass(opts: BatchOptions): BatchResult {
  const batch = runSeeds({ ...opts, stopAtFirstFailure: true });
  const first = batch.failures[0];
  if (first) throw new Error(`\n${describeFailure(first)}\n`);
  return batch;
}

/** Splits [from, from+total) into chunks of at most `size` seeds, as [from, count] pairs. */
export function seedChunks(from: number, total: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = from; s < from + total; s += size) out.push([s, Math.min(size, from + total - s)]);
  return out;
}

/** The one command that replays exactly this run, with the full event trace. */
export function replayCommand(run: RunId): string {
  let cmd = `pnpm sim --seeds 1 --seed ${run.seed} --nodes ${run.nodes} --steps ${run.steps}`;
  if (run.profile !== 'default') cmd += ` --profile ${run.profile}`;
  if (run.bug) cmd += ` --bug ${run.bug}`;
  return `${cmd} --verbose`;
}

/** A failure as people read it: seed, invariant, message, the trace's end and the replay command. */
export function describeFailure(r: SimResult): string {
  const run = r.run;
  return [
    `FAILED seed ${r.seed} (${run.nodes} nodes, ${run.steps} steps, profile ${run.profile}${run.bug ? `, planted bug ${run.bug}` : ''})`,
    `invariant: ${r.invariant ?? 'none'} (${r.phase ?? '?'} phase, tick ${r.failedAtTick ?? '?'})`,
    `${r.message ?? ''}`,
    '',
    'last events:',
    r.trace ?? '(none)',
    '',
    `replay: ${replayCommand(run)}`,
  ].join('\n');
}

function emptyStats(): SimResult['stats'] {
  return {
    proposals: 0, proposalsRefused: 0, writesAcked: 0, readsStarted: 0, readsServed: 0, crashes: 0, restarts: 0,
    wipes: 0, replacements: 0, incarnationDrops: 0, badMessagesRefused: 0, compactions: 0,
    snapshotsInstalled: 0, transfers: 0, confChanges: 0, leaderTerms: 0, messagesSent: 0, messagesDelivered: 0, maxCommit: 0,
  };
}

/** The safety phase's schedule: each action happens with its profile probability, in a fixed order. */
function injectActions(c: SimCluster, rng: Prng, p: SimProfile): void {
  if (rng.chance(p.proposeProbability)) proposeSomewhere(c, rng, p);
  if (rng.chance(p.readProbability)) {
    const live = c.liveIds();
    if (live.length > 0) c.startRead(rng.pick(live), keyName(rng.int(p.keyCount)));
  }
  if (rng.chance(p.crashProbability) && c.downIds().length < p.maxCrashedNodes) {
    const live = c.liveIds();
    if (live.length > 0) c.crash(rng.pick(live));
  }
  if (rng.chance(p.restartProbability)) {
    const down = c.downIds();
    if (down.length > 0) c.restart(rng.pick(down));
  }
  if (rng.chance(p.partitionProbability)) partitionSomehow(c, rng);
  if (rng.chance(p.healProbability) && c.net.cutLinks > 0) {
    c.net.heal();
    c.trace.add(c.now, '-', 'network healed');
  }
  if (rng.chance(p.isolateLeaderProbability)) isolateLeader(c);
  if (rng.chance(p.pauseProbability)) {
    const live = c.liveIds();
    if (live.length > 0) c.pause(rng.pick(live), rng.range(1, p.maxPauseTicks));
  }
  if (rng.chance(p.compactProbability)) {
    const live = c.liveIds();
    if (live.length > 0) c.compact(rng.pick(live));
  }
  if (rng.chance(p.transferProbability)) transferSomewhere(c, rng);
  if (rng.chance(p.confChangeProbability)) changeMembership(c, rng, c.options.nodeCount);
  if (rng.chance(p.wipeProbability) && c.awaitingReplace().length < p.maxWipedNodes) c.wipe(rng.pick(c.ids));
  if (rng.chance(p.replaceProbability) && c.options.bug !== 'no-incarnation-rule') replaceWiped(c);
}

/**
 * The operator's procedure for a node that lost its disk (docs/server.md): remove it, add it back
 * as a learner (the add records its new disk incarnation), promote it. One step per call, on the
 * leader's view; a refused proposal is simply tried again later.
 */
function replaceWiped(c: SimCluster): void {
  const leader = c.leader();
  if (!leader) return;
  const cs = leader.confState;
  for (const n of c.nodes.values()) {
    if (n.disk === 0 || n.id === leader.id) continue;
    const recorded = leader.sm.incarnations.get(n.id);
    const member = cs.voters.includes(n.id) || cs.learners.includes(n.id);
    if (member && recorded !== n.disk) {
      c.proposeConfChange(leader.id, { type: ConfChangeType.RemoveNode, nodeId: n.id });
      return;
    }
    if (!member && n.awaitingReplace) {
      c.proposeConfChange(leader.id, { type: ConfChangeType.AddLearner, nodeId: n.id });
      return;
    }
    if (cs.learners.includes(n.id) && recorded === n.disk && n.raw && n.sm.appliedIndex >= leader.sm.appliedIndex) {
      c.proposeConfChange(leader.id, { type: ConfChangeType.AddNode, nodeId: n.id });
      return;
    }
  }
}

function proposeSomewhere(c: SimCluster, rng: Prng, p: SimProfile): void {
  const leader = c.leader();
  const live = c.liveIds();
  const target = leader && rng.chance(0.85) ? leader.id : live.length > 0 ? rng.pick(live) : undefined;
  if (target) c.propose(target, keyName(rng.int(p.keyCount)));
}

function partitionSomehow(c: SimCluster, rng: Prng): void {
  const ids = c.ids.slice();
  const kind = rng.int(3);
  if (kind === 0) {
    const node = rng.pick(ids);
    c.net.isolate(node, ids);
    c.trace.add(c.now, '-', `partition: ${node} isolated`);
  } else if (kind === 1) {
    rng.shuffle(ids);
    const cut = rng.range(1, ids.length - 1);
    const a = ids.slice(0, cut);
    const b = ids.slice(cut);
    c.net.partition(a, b);
    c.trace.add(c.now, '-', `partition: [${a.join(',')}] | [${b.join(',')}]`);
  } else {
    const from = rng.pick(ids);
    const to = rng.pick(ids.filter((x) => x !== from));
    c.net.cut(from, to);
    c.trace.add(c.now, '-', `one-way cut: ${from} -> ${to}`);
  }
}

function isolateLeader(c: SimCluster): void {
  const leader = c.leader();
  if (!leader) return;
  c.net.heal();
  c.net.isolate(leader.id, c.ids);
  c.trace.add(c.now, '-', `partition: leader ${leader.id} isolated (other cuts healed)`);
}

function transferSomewhere(c: SimCluster, rng: Prng): void {
  const leader = c.leader();
  if (!leader) return;
  const others = leader.confState.voters.filter((v) => v !== leader.id);
  if (others.length > 0) c.transferLeader(leader.id, rng.pick(others));
}

/**
 * Membership churn around the initial size N: add a learner (a spare, or a node removed
 * earlier: a re-add), promote a learner, or remove a voter (keeping N-1..N+1 voters).
 */
function changeMembership(c: SimCluster, rng: Prng, n: number): void {
  const leader = c.leader();
  if (!leader) return;
  const cs = leader.confState;
  const outside = c.ids.filter((id) => !cs.voters.includes(id) && !cs.learners.includes(id));
  const options: ConfChange[] = [];
  for (const l of cs.learners) options.push({ type: ConfChangeType.AddNode, nodeId: l }, { type: ConfChangeType.RemoveNode, nodeId: l });
  if (cs.voters.length + cs.learners.length <= n && outside.length > 0) options.push({ type: ConfChangeType.AddLearner, nodeId: rng.pick(outside) });
  if (cs.voters.length > n - 1) {
    const victim = rng.pick(cs.voters);
    options.push({ type: ConfChangeType.RemoveNode, nodeId: victim });
  }
  if (options.length > 0) c.proposeConfChange(leader.id, rng.pick(options));
}

/**
 * Heals the network, stops drops and duplicates, restarts every crashed node, then requires a
 * leader to commit and apply a new write within `maxTicks`.
 */
function runLiveness(c: SimCluster, maxTicks: number): void {
  c.net.heal();
  c.resumeAll();
  c.net.faults = { ...PERFECT_NETWORK, maxDelayTicks: 2, maxLongDelayTicks: 2 };
  for (const id of c.downIds()) c.restart(id);
  c.trace.add(c.now, '-', 'LIVENESS: healed, all nodes up');
  const start = c.now;
  let pending: number | undefined;
  let pendingTerm = -1;
  while (c.now - start < maxTicks) {
    const leader = c.leader();
    if (leader && (pending === undefined || leader.term !== pendingTerm)) {
      pending = c.propose(leader.id, 'liveness', `t${c.now}`);
      pendingTerm = leader.term;
    }
    c.tick();
    if (pending !== undefined && c.isAcked(pending)) {
      c.trace.add(c.now, '-', `LIVENESS: write ${pending} committed after ${c.now - start} ticks`);
      return;
    }
  }
  const leader = c.leader();
  throw new InvariantViolation(
    'liveness',
    `no new write committed within ${maxTicks} ticks after healing (leader: ${leader ? `${leader.id} term ${leader.term}` : 'none'}, commit ${c.checker.maxCommit})` +
      (leader?.raw ? `; leader progress ${JSON.stringify(leader.raw.status().progress)}` : ''),
  );
}
