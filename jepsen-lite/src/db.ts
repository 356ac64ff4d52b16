// The "db" in Jepsen's sense: real `quorumkv serve` processes on 127.0.0.1, every peer link
// through a fault proxy, and the process-level faults (kill -9, restart, SIGSTOP/SIGCONT).
//
// Written against the server's CLI (`serve --id --listen --peers --data`) and `/v1/status`;
// README § "Status of `run`" lists the status fields and admin routes it would also like.

import { adminAuthorization } from '@quorumkv/transport';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, createWriteStream, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { sendForgedFrame } from './forger.js';
import { corruptDataDir } from './corrupt.js';
import type { ForgetfsMount } from './forgetfs.js';
import { mountForgetfs } from './forgetfs.js';
import type { HostileCampaign, HostilePeerFault } from './hostile-peer.js';
import { startHostilePeer } from './hostile-peer.js';
import { LinkSet } from './links.js';
import type { ClusterView, Cut } from './nemesis.js';
import type { ClusterControl } from './nemesis-exec.js';
import { ProcessWatch } from './procwatch.js';
import type { Shaping } from './proxy.js';
import { nodeFetch } from './node-http.js';
import { createRng } from './random.js';
import { replaceMember } from './replace.js';

/** A condition of the environment that stops a run (server not built, no leader, …). */
export class HarnessError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'HarnessError';
  }
}

/** One node's `/v1/status`, the fields the harness reads (others are ignored). */
export interface NodeStatus {
  id: string;
  role: string;
  term: number;
  /** Normalized: the leader's id, whether the server sends a string or `{ id, address }`. */
  leader: string | null;
  commitIndex: number;
  appliedIndex: number;
  appliedHash: string | undefined;
  /** First index still in the log (entries before it are compacted), when the server reports it. */
  firstIndex: number | undefined;
}

/** Options of {@link Cluster.start}. */
export interface ClusterOptions {
  nodes: readonly string[];
  /** Path of the server's built CLI (`packages/server/dist/cli.js`). */
  serverCli: string;
  /** Run directory; data in `<dir>/data/<id>`, logs in `<dir>/nodes/<id>.log`. */
  dir: string;
  seed: number;
  /** Extra flags for every node (e.g. small `--snapshot-entries` so compaction happens). */
  extraArgs?: readonly string[];
  /**
   * Put each node's data directory on its own forgetting filesystem (tools/forgetfs), mounted
   * under the temporary directory with its files kept in `<dir>/disks/<id>`: needed by the
   * power-loss nemesis. Default false (a plain directory `<dir>/data/<id>`).
   */
  forgetfs?: boolean;
  /** Deadline of one status request. Default 500 ms. */
  statusTimeoutMs?: number;
  /**
   * TLS on every link: development certificates (`quorumkv certs init`) in `<dir>/certs`, HTTPS
   * and wss for the harness and its clients. The peer proxies still tell links apart: a peer's
   * TLS server name carries its id (router.ts).
   */
  tls?: boolean;
}

/** Time to wait for a killed process to exit. */
const EXIT_WAIT_MS_MAX = 5000;

/** Asks the OS for a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Parses a `/v1/status` body defensively (bad bodies become an error, not a crash). */
export function parseStatus(body: unknown): NodeStatus {
  if (typeof body !== 'object' || body === null) throw new HarnessError('JL_BAD_STATUS', 'status is not a JSON object');
  const o = body as Record<string, unknown>;
  const num = (k: string): number => {
    const v = o[k];
    if (typeof v !== 'number') throw new HarnessError('JL_BAD_STATUS', `status field ${k} is not a number`);
    return v;
  };
  const leaderRaw = o.leader;
  const leader = typeof leaderRaw === 'string' ? leaderRaw : typeof leaderRaw === 'object' && leaderRaw !== null && typeof (leaderRaw as { id?: unknown }).id === 'string' ? (leaderRaw as { id: string }).id : null;
  const snapshots = o.snapshots as Record<string, unknown> | undefined;
  const firstIndex = typeof o.firstIndex === 'number' ? o.firstIndex : typeof snapshots?.firstIndex === 'number' ? snapshots.firstIndex : undefined;
  return {
    id: String(o.id ?? o.nodeId ?? ''),
    role: String(o.role ?? 'unknown'),
    term: num('term'),
    leader,
    commitIndex: num('commitIndex'),
    appliedIndex: num('appliedIndex'),
    appliedHash: typeof o.appliedHash === 'string' ? o.appliedHash : undefined,
    firstIndex,
  };
}

/** Options every client connection of a run needs (Docker: `mapAddress` to published ports). */
export interface ClientConnectOptions {
  mapAddress?: (address: string) => string | undefined;
  /** The client library's TLS options (a TLS run: the development CA). */
  tls?: { ca: Buffer };
}

/**
 * A cluster a run drives: the nemesis's {@link ClusterControl} plus what the orchestrator reads.
 * Implemented by {@link Cluster} (local processes behind fault proxies) and `DockerCluster`
 * (docker-db.ts: the compose cluster of deploy/).
 */
export interface RunCluster extends ClusterControl {
  /** Client endpoints, in node order. */
  endpoints(): string[];
  /** The client endpoint of one node. */
  endpointOf(id: string): string;
  /** Extra options for `connect()` (merged into every client's options). */
  clientOptions(): ClientConnectOptions;
  /** `/v1/status` of one node, or undefined when it does not answer in time. */
  status(id: string): Promise<NodeStatus | undefined>;
  /** GET /v1/state-hash of one node, or undefined. */
  stateHash(id: string): Promise<{ appliedIndex: number; stateHash: string } | undefined>;
  /** Waits until some node is leader; throws JL_NO_LEADER after `timeoutMs`. */
  waitForLeader(timeoutMs: number): Promise<string>;
  /** The workload's current load multiplier. */
  currentRateMultiplier(): number;
  /** Heals everything: network, paused and killed nodes. */
  healAll(): Promise<void>;
  /** Stops every node and releases everything the cluster started. Never throws for teardown trouble. */
  stop(): Promise<void>;
  /** Exits and memory of the node processes, where the harness can see them (local processes). */
  readonly processes?: ProcessWatch;
}

/** GET /v1/status of `endpoint`, parsed; undefined when it does not answer in time or answers badly. */
export async function fetchStatus(endpoint: string, timeoutMs: number, ca?: Buffer): Promise<NodeStatus | undefined> {
  try {
    const res = await nodeFetch(endpoint, '/v1/status', { signal: AbortSignal.timeout(timeoutMs) }, ca);
    if (!res.ok) return undefined;
    return parseStatus(await res.json());
  } catch {
    return undefined;
  }
}

/** Deadline of one GET /v1/state-hash (the node hashes its whole state). */
export const STATE_HASH_TIMEOUT_MS = 10_000;

/** GET /v1/state-hash of `endpoint`, or undefined. */
export async function fetchStateHash(endpoint: string, ca?: Buffer): Promise<{ appliedIndex: number; stateHash: string } | undefined> {
  try {
    const res = await nodeFetch(endpoint, '/v1/state-hash', { signal: AbortSignal.timeout(STATE_HASH_TIMEOUT_MS) }, ca);
    if (!res.ok) return undefined;
    const o = (await res.json()) as { appliedIndex?: unknown; stateHash?: unknown };
    return typeof o.appliedIndex === 'number' && typeof o.stateHash === 'string' ? { appliedIndex: o.appliedIndex, stateHash: o.stateHash } : undefined;
  } catch {
    return undefined;
  }
}

/** The members and the leader of the highest term among the nodes that answer. */
export async function viewOf(nodes: readonly string[], status: (id: string) => Promise<NodeStatus | undefined>): Promise<ClusterView> {
  const all = await Promise.all(nodes.map((id) => status(id)));
  let leader: NodeStatus | undefined;
  for (const s of all) if (s !== undefined && s.role === 'leader' && (leader === undefined || s.term > leader.term)) leader = s;
  return { nodes, leader: leader?.id ?? null };
}

/** Polls `view` until it names a leader; throws JL_NO_LEADER after `timeoutMs` with `hint` in the message. */
export async function waitForLeaderOf(view: () => Promise<ClusterView>, timeoutMs: number, hint: string): Promise<string> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const v = await view();
    if (v.leader !== null) return v.leader;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new HarnessError('JL_NO_LEADER', `no leader elected within ${timeoutMs} ms (${hint})`);
}

/**
 * PUT /v1/admin/faults {fsyncDelayMs} with the admin token of `clusterSecret`; a node without
 * --enable-fault-injection → JL_FAULT_UNSUPPORTED.
 */
export async function putFsyncDelay(id: string, endpoint: string, clusterSecret: string, delayMs: number, ca?: Buffer): Promise<void> {
  const res = await nodeFetch(endpoint, '/v1/admin/faults', {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: adminAuthorization(clusterSecret) },
    body: JSON.stringify({ fsyncDelayMs: delayMs }),
    signal: AbortSignal.timeout(1000),
  }, ca).catch((err: unknown) => {
    throw new HarnessError('JL_FAULT_UNSUPPORTED', `slow disk on ${id}: ${(err as Error).message}`, { cause: err });
  });
  if (!res.ok) throw new HarnessError('JL_FAULT_UNSUPPORTED', `slow disk on ${id}: the server answered ${res.status} to PUT /v1/admin/faults`);
}

interface NodeProc {
  id: string;
  port: number;
  child: ChildProcess | undefined;
  log: WriteStream;
}

/**
 * A replacement's command line: the usual one without the founding flag (an empty data directory
 * must never found again), plus `--join` (start empty, wait for `member add`).
 */
export function joinerArgs(usual: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < usual.length; i++) {
    if (usual[i] === '--initial-cluster-state') i++;
    else if (!usual[i]!.startsWith('--initial-cluster-state=')) out.push(usual[i]!);
  }
  return [...out, '--join'];
}

/** Incarnation ids are 32 hex digits (packages/transport, `INCARNATION_HEX_LENGTH`). */
const INCARNATION_RE = /^[0-9a-f]{32}$/;

/**
 * The incarnation id in a node's data directory (the first line of its `INCARNATION` file), or
 * 32 zeros when it cannot be read (a node that has not started yet: the hello is then refused).
 */
export function readIncarnation(dataDir: string): string {
  try {
    const first = readFileSync(join(dataDir, 'INCARNATION'), 'utf8').split('\n')[0] ?? '';
    if (INCARNATION_RE.test(first)) return first;
  } catch {
    // fall through
  }
  return '0'.repeat(32);
}

/** Longest wait, at a corruption's heal, for the damaged node to answer or exit. */
export const CORRUPT_SETTLE_MS_MAX = 20_000;
/** Poll interval of that wait. */
const CORRUPT_SETTLE_POLL_MS = 200;

/** File of the hostile peer's frames in a run directory, one JSON object per frame. */
export const HOSTILE_FRAMES_FILE = 'hostile-frames.jsonl';

/** A running cluster under the harness's control. */
export class Cluster implements RunCluster {
  readonly nodes: readonly string[];
  readonly processes = new ProcessWatch();
  /**
   * The cluster secret every node gets in its environment (never on the command line, where `ps`
   * shows it); the hostile peer holds it too.
   */
  readonly clusterSecret = randomBytes(24).toString('hex');
  private rateMultiplier = 1;
  /** The development CA of a TLS run (clients and harness requests trust it), else undefined. */
  private ca: Buffer | undefined;
  /** Each node's forgetting filesystem, when {@link ClusterOptions.forgetfs} is on. */
  private readonly disks = new Map<string, ForgetfsMount>();
  /** Wiped nodes whose replacement has not started a joiner yet. */
  private readonly unreplaced = new Set<string>();

  private constructor(
    private readonly options: ClusterOptions,
    private readonly procs: Map<string, NodeProc>,
    private readonly links: LinkSet,
  ) {
    this.nodes = options.nodes;
  }

  /** Allocates ports, starts the proxies, then every node. */
  static async start(options: ClusterOptions): Promise<Cluster> {
    if (!existsSync(options.serverCli)) throw new HarnessError('JL_SERVER_NOT_BUILT', `${options.serverCli} not found: build the server first (pnpm build)`);
    mkdirSync(join(options.dir, 'nodes'), { recursive: true });
    const procs = new Map<string, NodeProc>();
    const targets = new Map<string, { host: string; port: number }>();
    for (const id of options.nodes) {
      const port = await freePort();
      targets.set(id, { host: '127.0.0.1', port });
      procs.set(id, { id, port, child: undefined, log: createWriteStream(join(options.dir, 'nodes', `${id}.log`), { flags: 'a' }) });
    }
    const links = await LinkSet.start({ nodes: options.nodes, targets, seed: options.seed });
    const cluster = new Cluster(options, procs, links);
    if (options.tls) cluster.ca = makeDevCerts(options.serverCli, options.nodes, cluster.certsDir());
    try {
      if (options.forgetfs) for (const id of options.nodes) cluster.disks.set(id, await mountDisk(options.dir, id));
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    for (const id of options.nodes) cluster.spawnNode(id);
    return cluster;
  }

  /** Client endpoints: the nodes' own ports (clients do not go through the peer proxies). */
  endpoints(): string[] {
    return this.options.nodes.map((id) => `127.0.0.1:${this.proc(id).port}`);
  }

  /** The client endpoint of one node. */
  endpointOf(id: string): string {
    return `127.0.0.1:${this.proc(id).port}`;
  }

  /** Clients reach the nodes' own ports directly; over wss trusting the run's CA on a TLS run. */
  clientOptions(): ClientConnectOptions {
    return this.ca ? { tls: { ca: this.ca } } : {};
  }

  /** The node's hash of its whole key-value state (GET /v1/state-hash), or undefined. */
  stateHash(id: string): Promise<{ appliedIndex: number; stateHash: string } | undefined> {
    return fetchStateHash(this.endpointOf(id), this.ca);
  }

  /** `/v1/status` of one node, or undefined when it does not answer in time. */
  status(id: string): Promise<NodeStatus | undefined> {
    return fetchStatus(this.endpointOf(id), this.options.statusTimeoutMs ?? 500, this.ca);
  }

  view(): Promise<ClusterView> {
    return viewOf(this.nodes, (id) => this.status(id));
  }

  /** Waits until some node is leader, polling; throws JL_NO_LEADER after `timeoutMs`. */
  waitForLeader(timeoutMs: number): Promise<string> {
    return waitForLeaderOf(() => this.view(), timeoutMs, `see ${join(this.options.dir, 'nodes')}/*.log`);
  }

  cut(cuts: readonly Cut[], mode: 'silent' | 'loud'): void {
    this.links.cut(cuts, mode);
  }

  shapePair(a: string, b: string, shaping: Shaping): void {
    this.links.shapePair(a, b, shaping);
  }

  healNetwork(): void {
    this.links.healAll();
  }

  kill(id: string): Promise<void> {
    return this.killFor(id, 'killed by the nemesis');
  }

  /** kill -9 of node `id`'s process, its exit expected for `reason` (node-exits checker). */
  private async killFor(id: string, reason: string): Promise<void> {
    const p = this.proc(id);
    const child = p.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    this.processes.expectExit(id, reason);
    child.kill('SIGCONT'); // a paused node must be able to die
    child.kill('SIGKILL');
    await Promise.race([exited, new Promise((r) => setTimeout(r, EXIT_WAIT_MS_MAX))]);
    p.child = undefined;
  }

  /** The power-loss fault: kill -9 of `ids` at once, then each one's disk forgets what was not synced. */
  async powerLoss(ids: readonly string[], torn: boolean): Promise<string> {
    const disks = ids.map((id) => this.disks.get(id));
    if (disks.includes(undefined)) throw new HarnessError('JL_FAULT_UNSUPPORTED', 'power loss needs the nodes on forgetting filesystems (ClusterOptions.forgetfs)');
    await Promise.all(ids.map((id) => this.killFor(id, 'power loss')));
    const lost: string[] = [];
    for (const [i, id] of ids.entries()) {
      // What the disk had not made durable when the power went: files and directories with unsynced changes.
      const s = disks[i]!.stats();
      await disks[i]!.powerLoss({ torn });
      const what = `${s['files'] ?? 0} files, ${s['dirs'] ?? 0} directories unsynced`;
      this.proc(id).log.write(`# jepsen-lite: power loss on ${id}: ${what} discarded${torn ? ', last write torn' : ''}\n`);
      lost.push(`${id}: ${what}`);
    }
    return lost.join('; ');
  }

  /**
   * The corrupt fault: kill -9, one file of the data directory damaged (corrupt.ts, from `seed`),
   * started again at once with its usual command line. Until the heal its exit is expected: a
   * node may rightly refuse to start on a damaged store.
   */
  async corrupt(id: string, seed: number): Promise<string> {
    await this.killFor(id, 'killed to be corrupted');
    const d = corruptDataDir(this.dataDir(id), createRng(seed));
    const name = d.file.slice(d.file.lastIndexOf('/') + 1);
    const what = d.action === 'flip' ? `bit ${d.bit} of byte ${d.offset} of ${name} flipped` : `${name} truncated from ${d.sizeBytes} to ${d.offset} bytes`;
    this.proc(id).log.write(`# jepsen-lite: ${what} (corrupt)\n`);
    this.spawnNode(id);
    this.processes.expectExit(id, 'corrupted: may refuse to start on a damaged store');
    return what;
  }

  /**
   * Heals a corruption: waits (up to {@link CORRUPT_SETTLE_MS_MAX}) until the node either answers
   * its status (it opened its store) or exits; one that exited is replaced as after a wipe, one
   * that answers is left to repair itself.
   */
  async repairCorrupted(id: string): Promise<string> {
    const deadline = Date.now() + CORRUPT_SETTLE_MS_MAX;
    for (;;) {
      const child = this.proc(id).child;
      const running = child !== undefined && child.exitCode === null && child.signalCode === null;
      if (!running) return `${id} refused to start; ${await this.replace(id)}`;
      if ((await this.status(id)) !== undefined) {
        this.processes.unexpect(id);
        return `${id} kept running`;
      }
      if (Date.now() > deadline) return `${id} neither answered nor exited within ${CORRUPT_SETTLE_MS_MAX} ms`;
      await new Promise((r) => setTimeout(r, CORRUPT_SETTLE_POLL_MS));
    }
  }

  async restart(id: string): Promise<void> {
    // A wiped node comes back only through its replacement (an operator would not start it again
    // on an empty disk with its usual command line a second time).
    if (this.proc(id).child === undefined && !this.unreplaced.has(id)) this.spawnNode(id);
  }

  pause(id: string): void {
    this.proc(id).child?.kill('SIGSTOP');
  }

  resume(id: string): void {
    this.proc(id).child?.kill('SIGCONT');
  }

  /**
   * The slow-disk fault: on a forgetting filesystem, every fsync of the node's disk really sleeps
   * `delayMs` first; otherwise the server's runtime switch `PUT /v1/admin/faults {fsyncDelayMs}`.
   */
  async setFsyncDelayMs(id: string, delayMs: number): Promise<void> {
    const disk = this.disks.get(id);
    if (disk) disk.inject({ kind: 'delay-fsync', ms: delayMs });
    else await putFsyncDelay(id, this.endpointOf(id), this.clusterSecret, delayMs, this.ca);
  }

  /** The disk-full fault: every write to the node's forgetting filesystem fails with `errno` ('none' heals). */
  async failDiskWrites(id: string, errno: 'enospc' | 'eio' | 'none'): Promise<void> {
    const disk = this.disks.get(id);
    if (!disk) throw new HarnessError('JL_FAULT_UNSUPPORTED', 'disk-full needs the nodes on forgetting filesystems (ClusterOptions.forgetfs)');
    disk.inject({ kind: 'fail', errno });
  }

  async compactedPast(id: string): Promise<boolean> {
    const v = await this.view();
    if (v.leader === null) return false;
    const [leader, node] = await Promise.all([this.status(v.leader), this.status(id)]);
    // A blackholed node may not answer at all; then use what it last applied (unknown → wait).
    if (leader?.firstIndex === undefined || node === undefined) return false;
    return leader.firstIndex > node.appliedIndex + 1;
  }

  setRateMultiplier(multiplier: number): void {
    this.rateMultiplier = multiplier;
  }

  /** The workload's current load multiplier. */
  currentRateMultiplier(): number {
    return this.rateMultiplier;
  }

  /** Heals everything: network, paused and killed nodes. */
  async healAll(): Promise<void> {
    this.links.healAll();
    for (const id of this.nodes) this.resume(id);
    await Promise.all(this.nodes.map((id) => this.restart(id)));
  }

  /**
   * The wipe fault: kill -9, remove the data directory, start again with the usual command line.
   * Until {@link replace}, an exit of this node is expected: a node that finds its disk empty may
   * rightly refuse to start.
   */
  async wipe(id: string): Promise<void> {
    await this.killFor(id, 'wiped by the nemesis');
    rmSync(this.dataDir(id), { recursive: true, force: true });
    this.proc(id).log.write(`# jepsen-lite: ${id}'s data directory removed (wipe)\n`);
    this.spawnNode(id);
    this.unreplaced.add(id);
    this.processes.expectExit(id, 'wiped: may refuse to start on an empty data directory');
  }

  /** Heals a wipe: the operator's replacement procedure (replace.ts). */
  replace(id: string): Promise<string> {
    return replaceMember(id, {
      authorization: adminAuthorization(this.clusterSecret),
      otherEndpoints: () => this.nodes.filter((n) => n !== id).map((n) => this.endpointOf(n)),
      peerAddress: this.links.addressOf(id),
      stop: () => this.killFor(id, 'stopped to be replaced'),
      startJoiner: async () => {
        rmSync(this.dataDir(id), { recursive: true, force: true });
        this.unreplaced.delete(id);
        this.spawnNode(id, 'joiner');
      },
      log: (line) => this.proc(id).log.write(line + '\n'),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      ...(this.ca ? { ca: this.ca } : {}),
    });
  }

  /** The hostile-peer fault: frames sent straight to the nodes' ports, each frame logged in {@link HOSTILE_FRAMES_FILE}. */
  hostilePeer(eventId: string, fault: HostilePeerFault): HostileCampaign {
    const file = join(this.options.dir, HOSTILE_FRAMES_FILE);
    return startHostilePeer(eventId, fault, {
      view: () => this.view(),
      state: async (node) => {
        const s = await this.status(node);
        return s === undefined ? undefined : { term: s.term, commitIndex: s.commitIndex };
      },
      target: (node, from) => ({ port: this.proc(node).port, to: node, from, secret: this.clusterSecret, incarnation: readIncarnation(this.dataDir(from)) }),
      send: (target, frame) => sendForgedFrame(target, frame),
      record: (r) => appendFileSync(file, JSON.stringify(r) + '\n'),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    });
  }

  /** Kills every node and stops the proxies. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((id) => this.killFor(id, 'harness stop')));
    for (const [id, disk] of this.disks) {
      await disk.unmount().then(
        () => rmdirSync(disk.mountpoint),
        (e: unknown) => this.proc(id).log.write(`# jepsen-lite: ${String(e)}\n`),
      );
      this.disks.delete(id);
    }
    await this.links.close();
    for (const p of this.procs.values()) p.log.end();
  }

  private certsDir(): string {
    return join(this.options.dir, 'certs');
  }

  /** The TLS flags of node `id` on a TLS run (its development certificate as server and peer certificate). */
  private tlsArgs(id: string): string[] {
    if (!this.ca) return [];
    const f = (name: string) => join(this.certsDir(), name);
    return ['--cert-file', f(`${id}.crt`), '--key-file', f(`${id}.key`), '--peer-cert-file', f(`${id}.crt`), '--peer-key-file', f(`${id}.key`), '--peer-trusted-ca-file', f('ca.crt')];
  }

  private dataDir(id: string): string {
    const disk = this.disks.get(id);
    return disk ? join(disk.mountpoint, 'data') : join(this.options.dir, 'data', id);
  }

  /**
   * Starts node `id`: `usual` is the command line it always runs with (also after a crash or a
   * wipe); `joiner` is how a replacement starts, empty, to be added with `member add`.
   */
  private spawnNode(id: string, how: 'usual' | 'joiner' = 'usual'): void {
    const p = this.proc(id);
    // Every node gets the same --peers (front doors), as founding members must.
    const peers = this.nodes.map((other) => `${other}=${this.links.addressOf(other)}`).join(',');
    // The founding flag founds on the first start and is ignored once the data directory has
    // state (a replacement starts without it); the secret travels in the environment, never on argv.
    const args = [this.options.serverCli, 'serve', '--id', id, '--listen', `127.0.0.1:${p.port}`, '--peers', peers, '--data', this.dataDir(id), '--initial-cluster-state', 'new', ...this.tlsArgs(id), ...(this.options.extraArgs ?? [])];
    if (how === 'joiner') args.splice(0, args.length, ...joinerArgs(args));
    p.log.write(`# jepsen-lite: node ${args.join(' ')}\n`);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, QKV_CLUSTER_SECRET: this.clusterSecret, QKV_CLUSTER_SECRET_FILE: '' } });
    child.stdout.pipe(p.log, { end: false });
    child.stderr.pipe(p.log, { end: false });
    const pid = child.pid ?? -1;
    child.on('exit', (code, signal) => {
      p.log.write(`# jepsen-lite: node ${id} exited (code ${String(code)}, signal ${String(signal)})\n`);
      this.processes.exited(id, pid, code, signal);
    });
    p.child = child;
    this.processes.unexpect(id);
    this.processes.started(id, pid);
  }

  private proc(id: string): NodeProc {
    const p = this.procs.get(id);
    if (p === undefined) throw new HarnessError('JL_UNKNOWN_NODE', `unknown node ${id}`);
    return p;
  }
}

/** Runs `quorumkv certs init` for `nodes` into `dir`; returns the CA certificate (PEM). */
function makeDevCerts(serverCli: string, nodes: readonly string[], dir: string): Buffer {
  const r = spawnSync(process.execPath, [serverCli, 'certs', 'init', '--nodes', nodes.join(','), '--out', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new HarnessError('JL_TLS_CERTS', `quorumkv certs init failed: ${r.stderr || r.error?.message}`);
  return readFileSync(join(dir, 'ca.crt'));
}

/**
 * Mounts node `id`'s forgetting filesystem (files in `<dir>/disks/<id>`, mounted under the
 * temporary directory) with an empty `data` directory made durable in it, as an operator's
 * provisioning would leave it: what a power loss may take starts with what the node writes.
 */
async function mountDisk(dir: string, id: string): Promise<ForgetfsMount> {
  const mountpoint = mkdtempSync(join(tmpdir(), `jl-disk-${id}-`));
  try {
    const disk = await mountForgetfs({ store: join(dir, 'disks', id), mountpoint });
    mkdirSync(join(disk.mountpoint, 'data'), { recursive: true });
    const root = openSync(disk.mountpoint, 'r');
    try {
      fsyncSync(root);
    } finally {
      closeSync(root);
    }
    return disk;
  } catch (cause) {
    throw new HarnessError('JL_FORGETFS', `cannot mount the forgetting filesystem for ${id}: ${(cause as Error).message}`, { cause });
  }
}
