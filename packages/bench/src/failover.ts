// `bench failover`: kill -9 the leader under a put load, N rounds, restarting it after a few
// seconds; and `--soak`: steady load at a fraction of peak, counting leader changes.
import { findLeader, type LocalCluster, type MemberStatus } from './cluster.js';
import { analyseRound, medianMax, type RoundEvents, type RoundResult } from './failover-analysis.js';
import { runLoad, type LoadResult } from './load.js';
import type { FailoverOptions } from './options.js';
import { pollUntil, sleep } from './procs.js';
import { fmt, table } from './report.js';
import { describe, memberPids, runBenchmark, startTargetCluster, workerConfigOf, type RunResult } from './run.js';

/** Poll interval and per-probe timeout of /v1/status while timing elections and catch-up. */
const POLL_MS = 20;
const PROBE_TIMEOUT_MS = 300;
/** Longest wait for a new leader, for a restarted member to catch up, for a stable leader. */
const ELECT_TIMEOUT_MS = 30_000;
const CATCH_UP_TIMEOUT_MS = 60_000;
const STABLE_LEADER_TIMEOUT_MS = 30_000;

const nowMs = () => performance.timeOrigin + performance.now();

/** A running load that can be ended early. */
interface BackgroundLoad {
  result: Promise<LoadResult>;
  stop: () => void;
}

function startBackgroundLoad(o: FailoverOptions, cluster: LocalCluster, maxSeconds: number, trace: boolean, progressEverySec: number): Promise<BackgroundLoad> {
  return new Promise((resolve, reject) => {
    const result: Promise<LoadResult> = runLoad({
      config: workerConfigOf(o, cluster.endpoints, trace, cluster.tlsCaFile),
      procs: o.procs,
      durationMs: maxSeconds * 1000,
      nodePids: () => memberPids(cluster),
      progress: !o.quiet,
      progressEverySec,
      label: `${o.target} failover`,
      onRunning: (stop) => resolve({ result, stop }),
    });
    result.catch(reject); // fails before running: reject; later failures surface where result is awaited
  });
}

async function newLeaderAfter(cluster: LocalCluster, killed: number, oldTerm: number): Promise<{ index: number; at: number } | undefined> {
  return pollUntil(
    async () => {
      const probes = cluster.members.map(async (_, i) => {
        if (i === killed) return undefined;
        const s = await cluster.status(i, PROBE_TIMEOUT_MS);
        return s?.isLeader && s.term > oldTerm ? { index: i, at: nowMs() } : undefined;
      });
      const found = (await Promise.all(probes)).filter((x) => x !== undefined);
      return found.sort((a, b) => a.at - b.at)[0];
    },
    ELECT_TIMEOUT_MS,
    POLL_MS,
  );
}

async function catchUp(cluster: LocalCluster, index: number, target: number): Promise<{ servingAt: number | undefined; caughtUpAt: number | undefined }> {
  let servingAt: number | undefined;
  const caughtUpAt = await pollUntil(
    async () => {
      const s: MemberStatus | undefined = await cluster.status(index, PROBE_TIMEOUT_MS);
      if (s && servingAt === undefined) servingAt = nowMs();
      return s && s.appliedIndex >= target ? nowMs() : undefined;
    },
    CATCH_UP_TIMEOUT_MS,
    POLL_MS,
  );
  return { servingAt, caughtUpAt };
}

async function oneRound(o: FailoverOptions, cluster: LocalCluster, round: number): Promise<RoundEvents> {
  const leader = await pollUntil(() => findLeader(cluster, 1000), STABLE_LEADER_TIMEOUT_MS, 100);
  if (!leader) throw new Error(`round ${round}: no leader within ${STABLE_LEADER_TIMEOUT_MS} ms`);
  const killed = cluster.members[leader.index]!.name;
  const killAtMs = nowMs();
  cluster.kill9(leader.index);
  const elected = await newLeaderAfter(cluster, leader.index, leader.status.term);
  const restartDue = killAtMs + o.restartAfterSeconds * 1000;
  if (restartDue > nowMs()) await sleep(restartDue - nowMs());
  const current = await pollUntil(() => findLeader(cluster, 1000), STABLE_LEADER_TIMEOUT_MS, 50);
  const targetIndex = current?.status.commitIndex ?? Number.MAX_SAFE_INTEGER;
  const restartAtMs = nowMs();
  cluster.restart(leader.index);
  const { servingAt, caughtUpAt } = await catchUp(cluster, leader.index, targetIndex);
  await sleep(o.settleSeconds * 1000);
  const ev: RoundEvents = {
    round, killed, killedTerm: leader.status.term, killAtMs,
    electedAtMs: elected?.at, newLeader: elected ? cluster.members[elected.index]!.name : undefined,
    restartAtMs, servingAtMs: servingAt, caughtUpAtMs: caughtUpAt, endAtMs: nowMs(),
  };
  if (!o.quiet) {
    const r = (t: number | undefined, b: number) => (t === undefined ? 'never' : `${Math.round(t - b)} ms`);
    process.stderr.write(
      `[failover] round ${round}: killed ${killed} (term ${leader.status.term}); new leader ${ev.newLeader ?? '?'} after ${r(ev.electedAtMs, killAtMs)}; ` +
        `restart → serving ${r(servingAt, restartAtMs)}, caught up ${r(caughtUpAt, restartAtMs)}\n`,
    );
  }
  return ev;
}

/** Formats the per-round table and the summary. */
export function failoverTables(rounds: RoundResult[]): string {
  const rows = rounds.map((r) => [
    r.round, r.killed, r.newLeader, r.electedAfterMs, `${r.gapMs} (${r.gapStartMs} → ${r.gapEndMs})`, r.errors, r.okPerSecBeforeKill, r.restartToServingMs, r.restartToCaughtUpMs,
  ]);
  const per = table(['round', 'killed', 'new leader', 'elected after ms', 'write gap ms (from → to, rel. kill)', 'errors', 'ok puts in 1 s before kill', 'restart → serving ms', 'restart → caught up ms'], rows);
  const s = (f: (r: RoundResult) => number | null) => medianMax(rounds.map(f));
  const summary = table(
    ['', 'median', 'max'],
    [
      ['elected after ms', ...vals(s((r) => r.electedAfterMs))],
      ['write gap ms', ...vals(s((r) => r.gapMs))],
      ['errors per round', ...vals(s((r) => r.errors))],
      ['restart → caught up ms', ...vals(s((r) => r.restartToCaughtUpMs))],
    ],
  );
  return `${per}\n\n${summary}`;
}

function vals(m: { median: number | null; max: number | null }): Array<string | null> {
  return [fmt(m.median), fmt(m.max)];
}

/** Runs the failover measurement; prints tables (or JSON). */
export async function runFailover(o: FailoverOptions): Promise<{ rounds: RoundResult[]; load: RunResult }> {
  const startedAt = new Date();
  const cluster = await startTargetCluster(o);
  try {
    const perRoundMaxS = o.restartAfterSeconds + (ELECT_TIMEOUT_MS + CATCH_UP_TIMEOUT_MS + STABLE_LEADER_TIMEOUT_MS) / 1000 + o.settleSeconds;
    const load = await startBackgroundLoad(o, cluster, o.warmupSeconds + o.rounds * perRoundMaxS + 10, true, 5);
    const events: RoundEvents[] = [];
    try {
      await sleep(o.warmupSeconds * 1000);
      for (let round = 1; round <= o.rounds; round++) events.push(await oneRound(o, cluster, round));
    } finally {
      load.stop();
    }
    const result = await load.result;
    const ok = result.trace?.okEpochMs ?? [];
    const err = result.trace?.errEpochMs ?? [];
    return { rounds: events.map((ev) => analyseRound(ev, ok, err)), load: describe(o, result, startedAt) };
  } finally {
    await cluster.stop();
  }
}

/** Every member's status once all answer with the same term and one of them leads, else undefined. */
async function settledTerms(cluster: LocalCluster): Promise<Array<MemberStatus | undefined> | undefined> {
  const all = await Promise.all(cluster.members.map((_, i) => cluster.status(i, 2000)));
  const agreed = all.every((s) => s !== undefined && s.term === all[0]?.term) && all.some((s) => s?.isLeader);
  return agreed ? all : undefined;
}

/**
 * Elections between two status samples: the increase of the highest term any member reports, or
 * null when no member answered in one of them (pure).
 */
export function electionsBetween(before: Array<MemberStatus | undefined>, after: Array<MemberStatus | undefined>): number | null {
  const maxTerm = (xs: Array<MemberStatus | undefined>) => {
    const terms = xs.filter((s): s is MemberStatus => s !== undefined).map((s) => s.term);
    return terms.length ? Math.max(...terms) : null;
  };
  const a = maxTerm(before);
  const b = maxTerm(after);
  return a === null || b === null ? null : b - a;
}

/** The soak: steady load at a rate for minutes, counting leader changes and term increases. */
export async function runSoak(o: FailoverOptions): Promise<Record<string, unknown>> {
  let rate = o.rate;
  let peak: RunResult | undefined;
  if (rate <= 0) {
    peak = await runBenchmark({ ...o, seconds: 10, rate: 0 }, `${o.target} peak`);
    rate = Math.max(1, Math.floor(peak.opsPerSec * o.peakFraction));
  }
  const startedAt = new Date();
  const cluster = await startTargetCluster(o);
  let keepLogs = false;
  try {
    // Sample only once every member knows the first leader; a member that has not heard from it yet
    // would later count that first contact as a leader change.
    const termsBefore = await pollUntil(() => settledTerms(cluster), STABLE_LEADER_TIMEOUT_MS, 100);
    if (!termsBefore) throw new Error(`soak: the members did not agree on a term within ${STABLE_LEADER_TIMEOUT_MS} ms`);
    const before = await cluster.leaderChanges();
    if (!o.quiet) process.stderr.write(`[soak] ${o.target}: ${o.minutes} min at ${rate} ops/s (${o.clients} clients)\n`);
    const load = await runLoad({
      config: workerConfigOf({ ...o, rate }, cluster.endpoints, false, cluster.tlsCaFile),
      procs: o.procs,
      durationMs: o.minutes * 60_000,
      nodePids: () => memberPids(cluster),
      progress: !o.quiet,
      progressEverySec: 10,
      label: `${o.target} soak`,
    });
    const after = await cluster.leaderChanges();
    const termsAfter = await Promise.all(cluster.members.map((_, i) => cluster.status(i, 2000)));
    const changes: Record<string, number | null> = {};
    for (const [name, v] of Object.entries(after)) {
      const b = before[name];
      changes[name] = v === null || b === null || b === undefined ? null : v - b;
    }
    const termDelta = cluster.members.map((m, i) => ({ member: m.name, termBefore: termsBefore[i]?.term ?? null, termAfter: termsAfter[i]?.term ?? null }));
    const elections = electionsBetween(termsBefore, termsAfter);
    // An election during a soak is the finding: keep the node logs to explain it.
    keepLogs = elections !== 0;
    return {
      logsKeptIn: keepLogs || o.keepData ? cluster.dir : null,
      type: 'soak',
      elections,
      minutes: o.minutes,
      targetRate: rate,
      peakOpsPerSec: peak?.opsPerSec ?? null,
      leaderChangesDuringSoak: changes,
      terms: termDelta,
      ...describe({ ...o, rate }, load, startedAt),
    };
  } finally {
    await cluster.stop(keepLogs);
  }
}

/** `bench failover` entry point. */
export async function runFailoverCommand(o: FailoverOptions): Promise<number> {
  if (o.soak) {
    const r = await runSoak(o);
    if (o.json) console.log(JSON.stringify(r));
    else {
      const load = r as unknown as RunResult & { leaderChangesDuringSoak: Record<string, number | null>; terms: unknown; targetRate: number; peakOpsPerSec: number | null; elections: number | null; logsKeptIn: string | null };
      console.log(
        `soak ${o.target}: ${o.minutes} min at target ${load.targetRate} ops/s` +
          (load.peakOpsPerSec !== null ? ` (${Math.round(o.peakFraction * 100)} % of measured peak ${fmt(load.peakOpsPerSec)} ops/s)` : '') +
          `\n  achieved ${fmt(load.opsPerSec)} ops/s, p50 ${fmt(load.latency.p50Ms)} ms, p99 ${fmt(load.latency.p99Ms)} ms, max ${fmt(load.latency.maxMs)} ms, errors ${load.errors}` +
          `\n  elections (increase of the highest term): ${load.elections ?? 'unknown'}` +
          (load.logsKeptIn ? `\n  node logs kept in ${load.logsKeptIn}` : '') +
          `\n  leader changes seen (from /metrics, per member, during the soak; a follower losing and regaining its leader counts 2): ${JSON.stringify(load.leaderChangesDuringSoak)}` +
          `\n  terms: ${JSON.stringify(load.terms)}` +
          `\n  CPU % of one core: nodes ${fmt(load.cpu.nodesSumPct)}, generator ${fmt(load.cpu.generatorPct)}, other ${fmt(load.cpu.otherPct)}; load average ${load.host.loadAvg1m}`,
      );
    }
    return 0;
  }
  const { rounds, load } = await runFailover(o);
  if (o.json) console.log(JSON.stringify({ type: 'failover', rounds, load }));
  else {
    console.log(`\nfailover ${o.target}: ${o.rounds} rounds, ${o.clients} put clients, restart after ${o.restartAfterSeconds} s, op timeout ${o.opTimeoutMs} ms\n`);
    console.log(failoverTables(rounds));
    console.log(`\nwhole run: ${fmt(load.opsPerSec)} ok puts/s, ${load.errors} errors ${load.errors ? JSON.stringify(load.errorKinds) : ''}; load average ${load.host.loadAvg1m}`);
  }
  return 0;
}
