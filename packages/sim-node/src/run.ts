// One seed of the whole-node simulation: N production nodes on memory disks, a simulated network
// and clock, clients, and a nemesis (partitions, crashes with power loss, a rough network),
// then a healed liveness phase and the final checks. Everything random comes from the seed.
import { Prng, fnv1a } from '@quorumkv/testkit';
import { SimCheckFailure, SimChecks } from './checks.js';
import { CALM_NETWORK, ROUGH_NETWORK, SimNet } from './network.js';
import { ConfChangeType } from '@quorumkv/raft';
import { memberContext, type HostPlant } from '@quorumkv/server';
import { SimScheduler } from './scheduler.js';
import { SimNodeHost } from './sim-node-host.js';
import { Workload } from './workload.js';

export interface SimNodeOptions {
  seed: number;
  /** Nodes in the cluster (3 or 5). Default: 3 or 5, from the seed. */
  nodes?: number;
  /** Simulated seconds of faults and load before the healed phase. Default 30. */
  chaosSeconds?: number;
  clients?: number;
  /** A host bug to plant (plants.ts); the run should then fail. */
  plant?: HostPlant;
  /** Trace lines kept for a failure report. */
  traceLines?: number;
  /**
   * Let crashes and partitions happen while a member is being replaced, and start replacements
   * on a cluster that is not whole (a member that misses a replacement must still rejoin:
   * docs/simulation.md, "Findings of the whole-node simulation"). Default false.
   */
  faultsDuringReplacement?: boolean;
}

export interface SimNodeStats {
  nodes: number;
  simSeconds: number;
  events: number;
  ops: number;
  opsOk: number;
  opsInfo: number;
  retries: number;
  /** History compactions the clients had answered. */
  historyCompactions: number;
  crashes: number;
  partitions: number;
  transfers: number;
  replacements: number;
  lostUnsyncedBatches: number;
  /** Writes on their way to a disk at a power failure that landed anyway, and that were lost. */
  inFlightWritesLanded: number;
  inFlightWritesLost: number;
  /** Power failures that tore the high-water mark record of a landed append. */
  tornMarkWrites: number;
  /** Event-loop stalls, and degraded-disk episodes. */
  pauses: number;
  slowDisks: number;
  maxCommitted: number;
  linearizableOpsChecked: number;
  /** Keys whose linearizability search ran out of its step budget (neither valid nor invalid). */
  linearizableUnknownKeys: number;
  messages: number;
  compactions: number;
  snapshotsInstalled: number;
}

export interface SimNodeResult {
  seed: number;
  ok: boolean;
  failure?: { check: string; message: string };
  stats: SimNodeStats;
  /** The last events before the end (or the failure), oldest first. */
  trace: string[];
  /** A digest of the whole client history and the final state: equal runs have equal digests. */
  digest: string;
}

/** Sim time to elect the first leader before the workload starts, ms. */
const SETUP_MS = 5_000;
/** After healing, a leader and progress must appear within this bound, ms. */
export const LIVENESS_BOUND_MS = 10_000;
/** Time for in-flight client operations to finish once the workload stops, ms (each gives up within 1.2 s). */
const SETTLE_MS = 2_000;
/**
 * Events per simulated second a healthy cluster stays far below (~3,000 with 5 nodes and 4
 * clients). Past it the run fails as a message storm instead of running for minutes.
 */
export const MAX_EVENTS_PER_SIM_SECOND = 15_000;
/** A crashed node stays down this long (ms range). */
const DOWNTIME_MS = { min: 300, max: 3_000 };
/** A paused node's stall (ms range): up to past the election timeout (1–2 s). */
const PAUSE_MS = { min: 100, max: 3_000 };
/** A degraded disk's episode (ms range). */
const SLOW_DISK_MS = { min: 500, max: 5_000 };
/** Time between two nemesis actions (ms range). */
const NEMESIS_GAP_MS = { min: 500, max: 2_500 };

class Ring {
  private readonly lines: string[] = [];
  constructor(private readonly cap: number) {}
  add(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.cap * 2) this.lines.splice(0, this.lines.length - this.cap);
  }
  last(): string[] {
    return this.lines.slice(-this.cap);
  }
}

export async function runSimNode(opts: SimNodeOptions): Promise<SimNodeResult> {
  const root = new Prng(opts.seed);
  const nodes = opts.nodes ?? (root.fork(1).chance(0.5) ? 3 : 5);
  const chaosMs = (opts.chaosSeconds ?? 30) * 1000;
  const ring = new Ring(opts.traceLines ?? 60);
  const sched = new SimScheduler();
  const note = (line: string) => ring.add(`${(sched.nowMs() / 1000).toFixed(3)}s ${line}`);
  const net = new SimNet(sched, root.fork(2), note);
  const ids = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  let fatal: SimCheckFailure | undefined;
  const hostRng = root.fork(3);
  const hosts = ids.map(
    (id) =>
      new SimNodeHost(id, {
        sched,
        net,
        rng: hostRng,
        ids,
        note,
        plant: opts.plant,
        onApplied: (index, result) => checks.noteApplied(index, result as { op: string; revision?: number }),
        onFatal: (nid, err) => {
          fatal ??= new SimCheckFailure('host-fatal', `${nid}'s host loop stopped: ${err.stack ?? err.message}`);
        },
      }),
  );
  const checks = new SimChecks();
  const workload = new Workload(sched, root.fork(4), hosts, opts.clients ?? 4, note, (what) => {
    fatal ??= new SimCheckFailure('stale-read', what);
  });
  const stats: SimNodeStats = {
    nodes,
    simSeconds: 0,
    events: 0,
    ops: 0,
    opsOk: 0,
    opsInfo: 0,
    retries: 0,
    historyCompactions: 0,
    crashes: 0,
    partitions: 0,
    transfers: 0,
    replacements: 0,
    lostUnsyncedBatches: 0,
    inFlightWritesLanded: 0,
    inFlightWritesLost: 0,
    tornMarkWrites: 0,
    pauses: 0,
    slowDisks: 0,
    maxCommitted: 0,
    linearizableOpsChecked: 0,
    linearizableUnknownKeys: 0,
    messages: 0,
    compactions: 0,
    snapshotsInstalled: 0,
  };
  let failure: SimCheckFailure | undefined;
  const afterEach = () => {
    if (failure) return;
    if (sched.eventsRun > MAX_EVENTS_PER_SIM_SECOND * Math.max(1, sched.nowMs() / 1000)) {
      failure = new SimCheckFailure('event-storm', `${sched.eventsRun} events (${net.stats.sent} messages) in ${(sched.nowMs() / 1000).toFixed(1)} simulated s: more than ${MAX_EVENTS_PER_SIM_SECOND} per second`);
    } else if (fatal) failure = fatal;
    else {
      try {
        checks.afterEvent(hosts);
      } catch (e) {
        failure = e instanceof SimCheckFailure ? e : new SimCheckFailure('check-error', (e as Error).stack ?? String(e));
      }
    }
  };
  const stop = () => failure !== undefined;
  const leaderHost = () => hosts.find((h) => h.alive() && h.node?.isLeader());
  const bootFailed = (h: SimNodeHost) => (e: unknown) => {
    fatal ??= new SimCheckFailure('boot', `${h.id} failed to boot: ${(e as Error).stack ?? String(e)}`);
  };

  // Setup: every node founds (the production founding handshake) and a leader is elected.
  for (const h of hosts) sched.after(0, () => void h.boot().catch(bootFailed(h)));
  await sched.runUntil(SETUP_MS, afterEach, () => stop() || (hosts.every((h) => h.node !== undefined) && leaderHost() !== undefined));
  if (!failure && leaderHost() === undefined) failure = new SimCheckFailure('liveness', `no leader ${SETUP_MS} ms after the founding`);

  // Chaos: load plus faults. The first crash and the first partition are forced into the run.
  const nem = root.fork(5);
  const restartLater = (h: SimNodeHost) => {
    const downMs = nem.range(DOWNTIME_MS.min, DOWNTIME_MS.max);
    sched.after(downMs, () => {
      if (h.permanentlyDown || h.alive()) return;
      note(`nemesis: restart ${h.id}`);
      void h.boot().catch(bootFailed(h));
    });
  };
  const crash = (victims: SimNodeHost[], why: string, forReplacement = false) => {
    // A replacement runs on a cluster that stays whole meanwhile (see replaceNode).
    if (replacing && !forReplacement && !opts.faultsDuringReplacement) return;
    const live = victims.filter((h) => h.alive());
    if (live.length === 0) return;
    stats.crashes++;
    note(`nemesis: crash ${why}: ${live.map((h) => h.id).join(',')} (power failure)`);
    for (const h of live) {
      void h.crash().then((f) => {
        stats.lostUnsyncedBatches += f.unsyncedLost;
        stats.inFlightWritesLanded += f.inFlightLanded;
        stats.inFlightWritesLost += f.inFlightLost;
        if (f.markTorn) stats.tornMarkWrites++;
        if (f.inFlightLanded + f.inFlightLost + f.unsyncedLost > 0 || f.markTorn) {
          note(`${h.id}'s disk after the power failure: ${f.inFlightLanded} writes on their way landed, ${f.inFlightLost} lost${f.markTorn ? ', mark record torn' : ''}, ${f.unsyncedLost} unsynced batches lost`);
        }
      });
      restartLater(h);
    }
  };
  const pause = () => {
    const h = nem.chance(0.5) ? leaderHost() : nem.pick(hosts);
    if (!h?.alive()) return;
    const ms = nem.range(PAUSE_MS.min, PAUSE_MS.max);
    stats.pauses++;
    h.pause(ms);
    note(`nemesis: pause ${h.id}${h.node?.isLeader() ? ' (the leader)' : ''} for ${ms} ms (event-loop stall)`);
  };
  const slowDisk = () => {
    const h = nem.pick(hosts);
    const ms = nem.range(SLOW_DISK_MS.min, SLOW_DISK_MS.max);
    stats.slowDisks++;
    h.disk.degrade(ms);
    note(`nemesis: ${h.id}'s disk slow for ${ms} ms (fsync latency spikes)`);
  };
  const partition = (kind: number) => {
    if (replacing && !opts.faultsDuringReplacement) return;
    stats.partitions++;
    net.healAll();
    const shuffled = nem.shuffle([...ids]);
    if (kind === 0) {
      // symmetric: a minority side and a majority side
      const cut = 1 + nem.int(Math.floor(nodes / 2));
      const a = shuffled.slice(0, cut);
      const b = shuffled.slice(cut);
      for (const x of a) for (const y of b) (net.block(x, y), net.block(y, x));
    } else if (kind === 1) {
      // the leader isolated
      const l = leaderHost()?.id ?? shuffled[0]!;
      for (const y of ids) if (y !== l) (net.block(l, y), net.block(y, l));
    } else {
      // one-way: one node hears nobody (it still sends)
      const x = shuffled[0]!;
      for (const y of ids) if (y !== x) net.block(y, x);
    }
    note(`nemesis: partition ${['symmetric', 'leader-isolated', 'one-way'][kind]}: ${net.describePartitions()}`);
  };
  const actions: Array<() => void> = [
    () => partition(nem.int(3)),
    pause,
    slowDisk,
    () => {
      net.healAll();
      note('nemesis: heal partitions');
    },
    () => crash([nem.pick(hosts)], 'one node'),
    () => {
      const l = leaderHost();
      if (l) crash([l], 'the leader');
    },
    () => crash(nem.shuffle([...hosts]).slice(0, Math.floor(nodes / 2) + 1), 'a majority'),
    () => {
      // The window that matters most: a node whose log write is still on its way to the disk,
      // crashed together with the leader (the commit it helped make now rests on fewer disks).
      const writing = hosts.filter((h) => h.writing() && !h.node?.isLeader());
      if (writing.length === 0) return;
      crash([nem.pick(writing)], 'a node mid-write');
      // ... and the leader a moment later, once it may have counted that node's acknowledgement.
      sched.after(nem.range(5, 40), () => {
        const l = leaderHost();
        if (l) crash([l], 'the leader, after a node crashed mid-write');
      });
    },
    () => {
      if (nem.chance(0.3)) crash(hosts, 'all nodes at once');
    },
    () => {
      // A commit resting on as few disks as the rules allow: cut the leader off from a minority
      // of followers, wait until a follower of its quorum has a log write on its way to the disk,
      // then crash those writing followers and, a moment later, the leader. A correct host made
      // every acknowledged entry durable first, so the survivors still elect a leader that has
      // every committed entry.
      const l = leaderHost();
      if (!l) return;
      const others = nem.shuffle(hosts.filter((h) => h !== l));
      const cut = others.slice(0, nodes - (Math.floor(nodes / 2) + 1));
      for (const h of cut) (net.block(l.id, h.id), net.block(h.id, l.id));
      stats.partitions++;
      note(`nemesis: cut ${l.id} off from ${cut.map((h) => h.id).join(',')}; crashing its quorum mid-write`);
      const quorum = others.filter((h) => !cut.includes(h));
      let tries = 0;
      const poll = () => {
        const writing = quorum.filter((h) => h.writing());
        if (writing.length === 0 && ++tries < 200) return void sched.after(1, poll);
        if (writing.length > 0) crash(writing, 'the leader\'s quorum, mid-write');
        sched.after(nem.range(5, 40), () => {
          if (l.alive() && l.node?.isLeader()) crash([l], 'the leader whose quorum crashed');
        });
      };
      sched.after(nem.range(50, 300), poll);
    },
    () => {
      // Only on a whole cluster: every machine up, no partition (see replaceNode).
      if (replacing || nem.chance(0.5)) return;
      if (!opts.faultsDuringReplacement && (!hosts.every((h) => h.alive()) || net.describePartitions() !== 'none')) return;
      const victim = nem.pick(hosts.filter((h) => h !== leaderHost()));
      replacing = true;
      stats.replacements++;
      void replaceNode(victim).finally(() => (replacing = false));
    },
    () => {
      // Leadership transfer through the production admin path (QuorumKvNode.transferLeadership).
      const l = leaderHost();
      const to = nem.pick(ids);
      if (!l?.node || to === l.id) return;
      stats.transfers++;
      note(`nemesis: transfer leadership ${l.id} -> ${to}`);
      l.node.transferLeadership(to, { deadlineMs: sched.nowMs() + 2_000 }).catch((e: unknown) => note(`transfer to ${to}: ${(e as Error).message}`));
    },
    () => {
      net.faults = net.faults === ROUGH_NETWORK ? CALM_NETWORK : ROUGH_NETWORK;
      note(`nemesis: network ${net.faults === ROUGH_NETWORK ? 'rough (delay up to 40 ms, 5 % loss, 3 % duplicates)' : 'calm'}`);
    },
  ];
  /**
   * The replace runbook (docs/server.md) on a machine that lost its disk: remove the member, wipe
   * the machine, boot it empty, add it as a learner, promote it once caught up and its incarnation
   * is recorded. Each step goes through the leader's production QuorumKvNode and is retried until
   * it is done (the liveness phase waits for the membership to be whole again).
   *
   * By default it starts only on a whole cluster, and no crash or partition happens while it
   * runs (the seeds' schedules predate the fix below); `faultsDuringReplacement` lifts that. A
   * member that missed a replacement used to refuse the replaced member's new incarnation when it
   * came back and so never rejoined (docs/simulation.md, "Findings"; seed 200118 with 30 s of
   * faults); it now takes that incarnation's leader traffic, and seed 200118 passes.
   */
  let replacing = false;
  const wait = (ms: number) => new Promise<void>((r) => sched.after(ms, r));
  const onLeader = async (what: string, step: (l: SimNodeHost) => Promise<unknown>): Promise<void> => {
    for (let attempt = 0; !failure; attempt++) {
      const l = leaderHost();
      if (l?.node) {
        try {
          // A node that crashes never answers: give up on it after the deadline and ask again.
          const gaveUp = new Promise<never>((_, reject) => sched.after(3_000, () => reject(new Error('no answer (the node crashed?)'))));
          await Promise.race([step(l), gaveUp]);
          return;
        } catch (e) {
          if (attempt % 10 === 0) note(`replace: ${what} on ${l.id}: ${(e as Error).message}`);
        }
      }
      await wait(200);
    }
  };
  const deadline = () => ({ deadlineMs: sched.nowMs() + 2_000 });
  const replaceNode = async (victim: SimNodeHost): Promise<void> => {
    note(`nemesis: replace ${victim.id} (its disk is lost)`);
    if (victim.alive()) crash([victim], 'the machine to replace', true);
    victim.permanentlyDown = true;
    // Each step first checks the leader's membership: an earlier attempt may have committed
    // although its answer was lost.
    await onLeader(`remove ${victim.id}`, async (l) => {
      if (l.node!.memberById(victim.id) === undefined) return;
      await l.node!.changeMembership({ type: ConfChangeType.RemoveNode, nodeId: victim.id }, deadline());
    });
    if (victim.alive()) await victim.crash();
    victim.wipe();
    victim.permanentlyDown = false;
    await victim.boot().catch(bootFailed(victim));
    const context = memberContext(`sim-${victim.id}:1`);
    await onLeader(`add ${victim.id} as a learner`, async (l) => {
      if (l.node!.memberById(victim.id) !== undefined) return;
      await l.node!.changeMembership({ type: ConfChangeType.AddLearner, nodeId: victim.id, context }, deadline());
    });
    await onLeader(`promote ${victim.id}`, async (l) => {
      if (l.node!.membership().voters.some((m) => m.id === victim.id)) return;
      const pr = l.node!.raw.status().progress?.[victim.id];
      const lag = pr ? l.node!.raw.status().lastIndex - pr.match : Infinity;
      if (lag > 50 || l.node!.recordedIncarnation(victim.id) === undefined) throw new Error(`not caught up (lag ${lag}) or incarnation not recorded`);
      await l.node!.changeMembership({ type: ConfChangeType.AddNode, nodeId: victim.id }, deadline());
    });
    note(`nemesis: ${victim.id} replaced`);
  };
  const chaosStart = sched.nowMs();
  const chaosEnd = chaosStart + chaosMs;
  const firstCrashAt = chaosStart + nem.range(1_000, Math.max(1_001, Math.floor(chaosMs / 3)));
  const firstPartitionAt = chaosStart + nem.range(Math.floor(chaosMs / 3), Math.max(Math.floor(chaosMs / 3) + 1, Math.floor((2 * chaosMs) / 3)));
  // The forced faults wait for a running replacement to finish (it runs on a whole cluster).
  const forced = (fn: () => void) => {
    const attempt = () => (replacing && !opts.faultsDuringReplacement ? sched.after(500, attempt) : fn());
    return attempt;
  };
  sched.after(firstCrashAt - sched.nowMs(), forced(() => crash([nem.pick(hosts)], 'one node')));
  sched.after(firstPartitionAt - sched.nowMs(), forced(() => partition(nem.int(3))));
  const nemesisStep = () => {
    if (sched.nowMs() >= chaosEnd) return;
    nem.pick(actions)();
    sched.after(nem.range(NEMESIS_GAP_MS.min, NEMESIS_GAP_MS.max), nemesisStep);
  };
  sched.after(nem.range(NEMESIS_GAP_MS.min, NEMESIS_GAP_MS.max), nemesisStep);
  workload.start();
  await sched.runUntil(chaosEnd, afterEach, stop);

  // Healed: no partition, calm network, every node up. A leader and progress within the bound.
  if (!failure) {
    net.healAll();
    net.faults = CALM_NETWORK;
    note('nemesis: heal everything; liveness phase');
    // Crashed nodes come back by their own restart timers (at most DOWNTIME_MS.max from now).
    const healedAt = sched.nowMs();
    const commitAtHeal = checks.maxCommitted;
    let live = false;
    await sched.runUntil(healedAt + LIVENESS_BOUND_MS, afterEach, () => {
      if (failure) return true;
      live = !replacing && hosts.every((h) => h.alive() && h.node) && leaderHost() !== undefined && checks.maxCommitted > commitAtHeal && converged(hosts);
      return live;
    });
    if (!failure && !live) {
      failure = new SimCheckFailure(
        'liveness',
        `${LIVENESS_BOUND_MS} ms after healing${replacing ? ' (a replacement still running)' : ''}: leader ${leaderHost()?.id ?? 'none'}, committed ${checks.maxCommitted} (was ${commitAtHeal}), applied ${hosts.map((h) => `${h.id}=${h.node?.store.kv.appliedIndex() ?? 'down'}`).join(' ')}`,
      );
    }
  }
  workload.stop();
  if (!failure) await sched.runUntil(sched.nowMs() + SETTLE_MS, afterEach, () => stop() || workload.inFlight === 0);

  // Final checks.
  if (!failure) {
    try {
      // Exactly-once first: a write applied twice also answers with the second entry's term.
      checks.checkExactlyOnce(workload.acked);
      checks.checkAckedDurable(workload.acked);
      const lin = checks.checkLinearizable(workload.history);
      stats.linearizableOpsChecked = lin.ops;
      stats.linearizableUnknownKeys = lin.unknownKeys;
    } catch (e) {
      failure = e instanceof SimCheckFailure ? e : new SimCheckFailure('check-error', (e as Error).stack ?? String(e));
    }
  }
  Object.assign(stats, {
    simSeconds: sched.nowMs() / 1000,
    events: sched.eventsRun,
    ops: workload.stats.invoked,
    opsOk: workload.stats.ok,
    opsInfo: workload.stats.info,
    retries: workload.stats.retries,
    historyCompactions: workload.stats.compacts,
    maxCommitted: checks.maxCommitted,
    messages: net.stats.sent,
    compactions: hosts.reduce((a, h) => a + h.compactions, 0),
    snapshotsInstalled: (await Promise.all(hosts.map((h) => h.snapshotsInstalled()))).reduce((a, b) => a + b, 0),
  });
  return {
    seed: opts.seed,
    ok: failure === undefined,
    ...(failure ? { failure: { check: failure.check, message: failure.message } } : {}),
    stats,
    trace: ring.last(),
    digest: digestOf(workload.history, hosts),
  };
}

/** Every node is up and has applied the same index, equal to the leader's commit. */
function converged(hosts: SimNodeHost[]): boolean {
  const applied = hosts.map((h) => h.node?.store.kv.appliedIndex() ?? -1);
  const commit = Math.max(...hosts.map((h) => h.node?.raw.raft.log.committed ?? -1));
  return applied.every((a) => a === commit);
}

/** fnv1a over the client history and every node's applied index and state hash. */
function digestOf(history: unknown[], hosts: SimNodeHost[]): string {
  let h = fnv1a(new TextEncoder().encode(JSON.stringify(history)));
  for (const x of hosts) {
    const a = x.node?.store.kv.applied();
    h = fnv1a(new TextEncoder().encode(a ? `${x.id}:${a.index}:${Buffer.from(a.hash).toString('hex')}` : `${x.id}:down`), h);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}
