// `jepsen-lite run`: a test is a workload under a nemesis, then heal, then final reads, then
// the checkers (Jepsen's shape). This file wires the parts together; each concern lives in its
// own file (db, links/proxy, nemesis, nemesis-exec, workloads, runner, history, check, report).
//
// It needs the built server (`packages/server/dist/cli.js`) and client (`@quorumkv/client`);
// README § "Status of `run`" lists what it still assumes of them.

import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunCheck } from './check.js';
import { checkDir } from './check.js';
import { forgetfsUnavailable } from './forgetfs.js';
import type { AppliedHashSample, FinalNodeState } from './checkers/log-agreement.js';
import type { StatusSample } from './checkers/split-brain.js';
import type { ClientConnectOptions, RunCluster } from './db.js';
import { Cluster, HarnessError } from './db.js';
import { DockerCluster } from './docker-db.js';
import { DEFAULT_NODE_IMAGE } from './docker.js';
import { HistoryRecorder } from './history.js';
import type { NemesisName } from './nemesis.js';
import { generateSchedule } from './nemesis.js';
import { executeSchedule } from './nemesis-exec.js';
import type { ProcessWatch } from './procwatch.js';
import { createRng } from './random.js';
import type { LabelledFault } from './report.js';
import { RUN_FILES } from './rundir.js';
import { runWorkload } from './runner.js';
import type { KvLike, PlannedOp, ReadConsistency } from './workloads.js';
import { BANK_ACCOUNTS, BANK_INITIAL_BALANCE, BANK_READ, BankGenerator, RegisterGenerator, SetGenerator, WatchGenerator, bankAccount, executeOp, readBank, readSet } from './workloads.js';
import { WatchRun } from './watch-run.js';

/** Watchers of the watch workload: one per node, each starting on a different one. */
const watchersOf = (nodes: number): number => nodes;
import type { WorkloadName } from './args.js';

/** Options of {@link runTest} (the `run` command's flags). */
export interface RunOptions {
  nodes: number;
  timeS: number;
  nemeses: NemesisName[];
  nemesisSpec: string;
  workload: WorkloadName;
  concurrency: number;
  rate: number;
  seed: number;
  out: string;
  serverCli: string;
  /** Linearizability search budget per key. */
  budgetMsPerKey: number;
  /** Register reads; `stale` is the deliberately broken mode that the checker must catch. */
  reads?: ReadConsistency;
  /** Where the cluster runs: `local` processes behind fault proxies (default), or the `docker` compose cluster. */
  env?: 'local' | 'docker';
  /** The node image for `docker` (default QKV_IMAGE or quorumkv/node:local). */
  image?: string;
  /** deploy/docker-compose.yml, for `docker`. */
  composeFile?: string;
  /** Printer for live progress (one line per second); default stderr. */
  progress?: (line: string) => void;
  /** `local` only: TLS on every link, with development certificates (`--tls`). */
  tls?: boolean;
}

/** Status poll interval. */
export const STATUS_POLL_MS = 200;
/** Time allowed for the first election, and for the cluster to converge after the heal. */
export const LEADER_WAIT_MS = 30_000;
export const CONVERGE_WAIT_MS = 15_000;
/**
 * Compaction settings the nodes run with: small, so a node cut off for a few seconds of load
 * falls behind the leader's log start and must catch up by snapshot (snapshot-blackhole).
 */
export const SNAPSHOT_ENTRIES = 100;
export const SNAPSHOT_KEEP_ENTRIES = 20;
/** Healthy time after the heal before the final reads. */
export const SETTLE_MS = 2000;
/** How often node processes' resident memory is sampled (local runs). */
export const RSS_SAMPLE_MS = 1000;

/** The client library's `connect`, loaded when `run` starts (the package may not be built yet). */
type ConnectFn = (o: { endpoints: string[] } & ClientConnectOptions) => Promise<KvLike>;

async function loadConnect(): Promise<ConnectFn> {
  const name = '@quorumkv/client';
  try {
    const mod = (await import(name)) as { connect?: ConnectFn };
    if (typeof mod.connect !== 'function') throw new Error('it has no connect()');
    return mod.connect;
  } catch (err) {
    throw new HarnessError('JL_CLIENT_MISSING', `cannot load ${name}: ${(err as Error).message} (build it with pnpm build)`, { cause: err });
  }
}

/** Runs one test end to end and checks it. Throws {@link HarnessError} on environment trouble. */
export async function runTest(o: RunOptions): Promise<RunCheck> {
  prepareOutDir(o.out);
  const say = o.progress ?? ((line: string) => process.stderr.write(line + '\n'));
  const nodeIds = Array.from({ length: o.nodes }, (_, i) => `n${i + 1}`);
  const schedule = generateSchedule({ seed: o.seed, nodes: nodeIds, durationMs: o.timeS * 1000, nemeses: o.nemeses });
  const envFlag = o.env === 'docker' ? ' --env docker' : '';
  const command = `pnpm jepsen-lite run${envFlag} --nodes ${o.nodes} --time ${o.timeS} --nemesis ${o.nemesisSpec || 'none'} --workload ${o.workload} --concurrency ${o.concurrency} --rate ${o.rate} --seed ${o.seed}${o.reads === 'stale' ? ' --reads stale' : ''}`;
  writeFileSync(join(o.out, RUN_FILES.schedule), JSON.stringify(schedule, null, 2));
  writeFileSync(join(o.out, RUN_FILES.meta), JSON.stringify({ name: `${o.workload} × ${o.nemesisSpec || 'none'}`, seed: o.seed, workload: o.workload, nemeses: o.nemeses, nodes: nodeIds, durationS: o.timeS, command }, null, 2));
  const loaded = await loadConnect();
  const cluster = await startCluster(o, nodeIds);
  const connect = (c: { endpoints: string[] }) => loaded({ ...cluster.clientOptions(), ...c });
  const status: StatusSample[] = [];
  const hashes: AppliedHashSample[] = [];
  const clients: KvLike[] = [];
  const watcherClients: KvLike[] = [];
  let watchRun: WatchRun | undefined;
  let stopping = false;
  let rssTicker: ReturnType<typeof setInterval> | undefined;
  try {
    await cluster.waitForLeader(LEADER_WAIT_MS);
    for (let w = 0; w < o.concurrency; w++) clients.push(await connect({ endpoints: rotate(cluster.endpoints(), w) }));
    if (o.workload === 'watch') {
      for (let w = 0; w < watchersOf(o.nodes); w++) watcherClients.push(await connect({ endpoints: rotate(cluster.endpoints(), w) }));
      watchRun = await WatchRun.start(clients[0]!, watcherClients);
    }
    if (o.workload === 'bank') await fundAccounts(clients[0]!);
    // Time 0 of the history, the schedule and the report: the cluster is up and clients are connected.
    const recorder = new HistoryRecorder();
    const t0 = Date.now();
    cluster.processes?.useClock(() => recorder.elapsedNs());
    rssTicker = setInterval(() => cluster.processes?.sampleRss(), RSS_SAMPLE_MS);
    const clock = { nowMs: () => Date.now() - t0, nowNs: () => recorder.elapsedNs(), sleepUntilMs: (ms: number) => sleep(Math.max(0, ms - (Date.now() - t0))) };
    const counts = { ok: 0, fail: 0, info: 0 };
    const active = new Map<string, string>();
    const poller = pollStatus(cluster, recorder, status, hashes, () => stopping);
    const progress = setInterval(() => say(`[${(clock.nowMs() / 1000).toFixed(0)}/${o.timeS}s] ok ${counts.ok} fail ${counts.fail} info ${counts.info} | faults: ${[...active.values()].join('; ') || 'none'}`), 1000);
    const done = () => clock.nowMs() >= o.timeS * 1000;
    const nemesis = executeSchedule(schedule, cluster, clock, (w) => (w.endNs === null ? active.set(w.id, w.label) : active.delete(w.id)), done);
    const generator = o.workload === 'register' ? new RegisterGenerator(createRng(o.seed)) : o.workload === 'watch' ? new WatchGenerator(createRng(o.seed)) : o.workload === 'bank' ? new BankGenerator(createRng(o.seed)) : new SetGenerator();
    await runWorkload({
      concurrency: o.concurrency,
      ratePerSecond: o.rate,
      generator,
      clientFor: (w) => ({ kv: clients[w]!, node: nodeIds[w % nodeIds.length]! }),
      recorder,
      rng: createRng(o.seed + 1),
      rateMultiplier: () => cluster.currentRateMultiplier(),
      shouldStop: done,
      onOutcome: (r) => void counts[r.type]++,
      reads: o.reads ?? 'linearizable',
    });
    const faults = await nemesis;
    clearInterval(progress);
    await cluster.healAll();
    await sleep(SETTLE_MS);
    await finalWriteProbe(clients[0]!, generator, recorder, o.concurrency);
    // Final reads are per-node (stale) reads: wait until every node has applied everything, or a
    // lagging node's read would look like a lost write.
    let finals = await converge(cluster);
    if (o.workload === 'set' || o.workload === 'bank') {
      await finalNodeReads(cluster, connect, recorder, o.concurrency, o.workload === 'set' ? readSet : readBank, o.workload === 'set' ? null : BANK_READ);
      finals = await converge(cluster);
    }
    if (watchRun) {
      const reference = await connect({ endpoints: [cluster.endpointOf(nodeIds[0]!)] });
      watcherClients.push(reference);
      writeFileSync(join(o.out, RUN_FILES.watches), JSON.stringify(await watchRun.finish(clients[0]!, reference)) + '\n');
    }
    stopping = true;
    await poller;
    writeArtifacts(o.out, recorder, status, hashes, finals, faults);
  } finally {
    stopping = true;
    clearInterval(rssTicker);
    await Promise.all([...clients, ...watcherClients].map((c) => c.close().catch(() => undefined)));
    await cluster.stop();
    if (cluster.processes !== undefined) writeProcessArtifacts(o.out, cluster.processes);
  }
  const { check } = await checkDir(o.out, { linearizable: { budgetMsPerKey: o.budgetMsPerKey } });
  return check;
}

/** Starts the cluster the run asked for, with small snapshots and runtime fault injection. */
async function startCluster(o: RunOptions, nodeIds: string[]): Promise<RunCluster> {
  if (o.env === 'docker') {
    // The compose file reads every other setting from its env file: QKV_<FLAG> = --<flag>.
    const env = { QKV_SNAPSHOT_ENTRIES: String(SNAPSHOT_ENTRIES), QKV_SNAPSHOT_KEEP_ENTRIES: String(SNAPSHOT_KEEP_ENTRIES), QKV_ENABLE_FAULT_INJECTION: 'true' };
    if (o.composeFile === undefined) throw new HarnessError('JL_DOCKER_NO_COMPOSE', '--env docker needs the compose file (deploy/docker-compose.yml)');
    return DockerCluster.start({ nodes: nodeIds, composeFile: o.composeFile, image: o.image ?? DEFAULT_NODE_IMAGE, dir: o.out, env });
  }
  // Power loss and disk-full need every data directory on a forgetting filesystem (tools/forgetfs).
  const forgetfs = o.nemeses.some((n) => n.startsWith('power-loss-') || n === 'disk-full');
  return Cluster.start({ nodes: nodeIds, serverCli: o.serverCli, dir: o.out, seed: o.seed, tls: o.tls === true, forgetfs, extraArgs: ['--snapshot-entries', String(SNAPSHOT_ENTRIES), '--snapshot-keep-entries', String(SNAPSHOT_KEEP_ENTRIES), '--enable-fault-injection'] });
}

function prepareOutDir(out: string): void {
  mkdirSync(out, { recursive: true });
  if (readdirSync(out).length > 0) throw new HarnessError('JL_OUT_NOT_EMPTY', `${out} is not empty; choose a new --out directory`);
}

/** Attempts of the post-heal write that shows the cluster recovered (liveness). */
export const FINAL_WRITE_ATTEMPTS_MAX = 20;

/** After the heal: write until one write is ok (or the attempts run out), all recorded. */
async function finalWriteProbe(kv: KvLike, generator: { next(): PlannedOp }, recorder: HistoryRecorder, concurrency: number): Promise<void> {
  for (let attempt = 0; attempt < FINAL_WRITE_ATTEMPTS_MAX; attempt++) {
    let op = generator.next();
    while (op.f === 'read') op = generator.next();
    const inv = recorder.invoke(concurrency * 1000 + 500 + attempt, op.f, op.value);
    const out = await executeOp(kv, op);
    recorder.complete(inv, out.type, out.value, out.error === undefined ? {} : { error: out.error });
    if (out.type === 'ok') return;
  }
}

/** Attempts to fund one bank account before the run (the cluster has a leader by then). */
const FUND_ATTEMPTS_MAX = 20;

/** Puts BANK_INITIAL_BALANCE in every account before time 0 (not recorded: the run starts funded). */
async function fundAccounts(kv: KvLike): Promise<void> {
  for (let i = 0; i < BANK_ACCOUNTS; i++) {
    for (let attempt = 1; ; attempt++) {
      try {
        await kv.put(bankAccount(i), String(BANK_INITIAL_BALANCE));
        break;
      } catch (err) {
        if (attempt >= FUND_ATTEMPTS_MAX) throw new HarnessError('JL_BANK_FUNDING', `could not fund ${bankAccount(i)}: ${String((err as Error).message ?? err)}`);
        await sleep(100);
      }
    }
  }
}

/** One final read per node (the set's elements, the bank's balances), each through a client bound to that node alone. */
async function finalNodeReads(
  cluster: RunCluster,
  connect: (o: { endpoints: string[] }) => Promise<KvLike>,
  recorder: HistoryRecorder,
  concurrency: number,
  read: (kv: KvLike) => Promise<unknown>,
  invokeValue: unknown,
): Promise<void> {
  for (const [i, id] of cluster.nodes.entries()) {
    const inv = recorder.invoke(concurrency * 1000 + i, 'read', invokeValue, id);
    // A node that is down at the end (it refused to start on a damaged disk) fails its read; it
    // does not stop the run.
    let kv: KvLike | undefined;
    try {
      kv = await connect({ endpoints: [cluster.endpointOf(id)] });
      recorder.complete(inv, 'ok', await read(kv));
    } catch (err) {
      recorder.complete(inv, 'fail', null, { error: String((err as { code?: unknown }).code ?? err) });
    } finally {
      await kv?.close();
    }
  }
}

/** Polls every node's status until stopped: leader/term samples and applied-hash samples. */
async function pollStatus(cluster: RunCluster, recorder: HistoryRecorder, status: StatusSample[], hashes: AppliedHashSample[], stop: () => boolean): Promise<void> {
  while (!stop()) {
    await Promise.all(
      cluster.nodes.map(async (id) => {
        const s = await cluster.status(id);
        if (s === undefined) return;
        const time = recorder.elapsedNs();
        status.push({ node: id, time, role: s.role, term: s.term, leader: s.leader });
        if (s.appliedHash !== undefined) hashes.push({ node: id, time, appliedIndex: s.appliedIndex, appliedHash: s.appliedHash });
      }),
    );
    await sleep(STATUS_POLL_MS);
  }
}

/**
 * Waits until every node has applied the same index, then takes each node's final state with a
 * hash of its key-value state at that index (GET /v1/state-hash answers with the applied index of
 * the state it hashed). A write is answered before it has landed on every node, so a node can move
 * on between the status poll and the hash: then it looks again. After CONVERGE_WAIT_MS it keeps
 * what it has; a node without a state hash at its final index gets null (never its applied hash).
 */
export async function converge(cluster: Pick<RunCluster, 'nodes' | 'status' | 'stateHash'>, waitMs = CONVERGE_WAIT_MS): Promise<FinalNodeState[]> {
  const until = Date.now() + waitMs;
  for (;;) {
    const all = await Promise.all(cluster.nodes.map((id) => cluster.status(id)));
    const finals: FinalNodeState[] = all.flatMap((s, i) =>
      s === undefined || s.appliedHash === undefined ? [] : [{ node: cluster.nodes[i]!, appliedIndex: s.appliedIndex, appliedHash: s.appliedHash, stateHash: null }],
    );
    const converged = finals.length === cluster.nodes.length && new Set(finals.map((f) => f.appliedIndex)).size === 1;
    const last = Date.now() >= until;
    if (converged || last) {
      const hashes = await Promise.all(finals.map((f) => cluster.stateHash(f.node)));
      const paired = finals.map((f, i) => {
        const h = hashes[i];
        return h !== undefined && h.appliedIndex === f.appliedIndex ? { ...f, stateHash: h.stateHash } : f;
      });
      if (last || paired.every((f) => f.stateHash !== null)) return paired;
    }
    await sleep(250);
  }
}

function writeArtifacts(out: string, recorder: HistoryRecorder, status: StatusSample[], hashes: AppliedHashSample[], finals: FinalNodeState[], faults: LabelledFault[]): void {
  const lines = jsonLines;
  writeFileSync(join(out, RUN_FILES.history), recorder.toJsonLines());
  writeFileSync(join(out, RUN_FILES.status), lines(status));
  writeFileSync(join(out, RUN_FILES.hashes), lines([...hashes, ...finals.map((f) => ({ final: true, ...f }))]));
  writeFileSync(join(out, RUN_FILES.faults), lines(faults));
}

/** Node process exits and memory samples (local runs): the node-exits and node-memory checkers' input. */
function writeProcessArtifacts(out: string, watch: ProcessWatch): void {
  writeFileSync(join(out, RUN_FILES.exits), jsonLines(watch.exits));
  writeFileSync(join(out, RUN_FILES.rss), jsonLines(watch.rss));
}

function jsonLines(rows: readonly unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length > 0 ? '\n' : '');
}

function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
