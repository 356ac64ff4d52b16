// The "db" for `--env docker`: the real compose cluster of deploy/docker-compose.yml, under a
// unique project name, on free 127.0.0.1 ports, with its secret and extra QKV_* settings in a
// throwaway env file (the compose file reads `env_file: ${QKV_ENV_FILE}`, so nothing in deploy/
// changes). Faults are what Docker can do to a container:
//
//   isolate whole nodes   docker network disconnect / connect (silent: packets go nowhere)
//   kill -9               docker kill / docker start (the volume keeps the data)
//   pause                 docker pause / unpause (cgroup freezer)
//   slow disk             PUT /v1/admin/faults (the env file sets QKV_ENABLE_FAULT_INJECTION)
//
// What Docker cannot express — one-way or link-level cuts, a "loud" cut (reset connections),
// per-link delay — throws JL_FAULT_UNSUPPORTED, and the executor reports it NOT APPLIED in the
// fault window's label instead of faking it.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientConnectOptions, NodeStatus, RunCluster } from './db.js';
import { HarnessError, fetchStateHash, fetchStatus, freePort, putFsyncDelay, viewOf, waitForLeaderOf } from './db.js';
import type { ComposeCommand } from './docker.js';
import { docker, dockerPreflight, removeComposeProjectNow, runCommand, trackProject, untrackProject } from './docker.js';
import type { ClusterView, Cut } from './nemesis.js';
import { crossCuts } from './nemesis.js';

/** The compose file's services, which are also the node ids. */
export const COMPOSE_NODES = ['n1', 'n2', 'n3'] as const;
/** The port every node listens on inside its container (and advertises as `<id>:7001`). */
export const CONTAINER_PORT = 7001;
/** Longest one compose command (up, down) may take. */
const COMPOSE_TIMEOUT_MS_MAX = 180_000;
/** Deadline of one status request through a published port. */
const STATUS_TIMEOUT_MS = 1000;
/** Lines of each container's log saved to `nodes/<id>.log` at the end. */
const LOG_LINES_MAX = 20_000;

/** Options of {@link DockerCluster.start}. */
export interface DockerClusterOptions {
  /** Node ids; must be the compose file's services (n1, n2, n3). */
  nodes: readonly string[];
  /** deploy/docker-compose.yml. */
  composeFile: string;
  /** The node image (quorumkv/node:local). */
  image: string;
  /** Run directory; container logs go to `<dir>/nodes/<id>.log` at stop. */
  dir: string;
  /** Extra QKV_* settings for every node (written to the env file). */
  env: Record<string, string>;
  /** Prefix of the compose project name (letters and digits). */
  projectPrefix?: string;
}

/**
 * Which nodes must be disconnected to produce exactly `cuts`, or undefined when Docker cannot
 * express them: a disconnected node hears nobody and nobody hears it, so only sets of cuts equal
 * to "every link touching S, both ways" for some set S of nodes can be applied. Pure.
 */
export function isolatedSetFor(nodes: readonly string[], cuts: readonly Cut[]): string[] | undefined {
  const key = ([f, t]: Cut) => `${f}\u0000${t}`;
  const wanted = new Set(cuts.map(key));
  const produces = (set: readonly string[]): boolean => {
    const produced = new Set(set.flatMap((n) => crossCuts([n], nodes.filter((o) => o !== n))).map(key));
    return produced.size === wanted.size && [...wanted].every((k) => produced.has(k));
  };
  const isolated = nodes.filter((n) => crossCuts([n], nodes.filter((o) => o !== n)).every((c) => wanted.has(key(c))));
  if (!produces(isolated)) return undefined;
  // Disconnect as few nodes as possible: the last node left alone on the network is isolated
  // already, and stays reachable from the host (its clients and status polls).
  const minimal = [...isolated];
  for (const n of [...isolated].reverse()) {
    const without = minimal.filter((m) => m !== n);
    if (produces(without)) minimal.splice(minimal.indexOf(n), 1);
  }
  return minimal;
}

/** The compose cluster under the harness's control; see the file comment. */
export class DockerCluster implements RunCluster {
  readonly nodes: readonly string[];
  private rateMultiplier = 1;
  private readonly containers = new Map<string, string>();
  private network = '';
  /** The cluster secret written to the env file (admin calls prove it). */
  private clusterSecret = '';
  private readonly disconnected = new Set<string>();
  private readonly paused = new Set<string>();
  private readonly killed = new Set<string>();
  /** Last status each node answered: a disconnected node applies nothing, so it stays true. */
  private readonly lastStatus = new Map<string, NodeStatus>();
  private stopped = false;
  /**
   * Holds the event loop open while the cluster exists: the containers are not our children,
   * and a pending fetch (undici, with an unref'd AbortSignal.timeout) does not keep Node alive.
   */
  private readonly keepAlive = setInterval(() => undefined, 60_000);

  private constructor(
    private readonly options: DockerClusterOptions,
    private readonly compose: ComposeCommand,
    readonly project: string,
    private readonly ports: ReadonlyMap<string, number>,
    private readonly envDir: string,
    private readonly composeEnv: NodeJS.ProcessEnv,
  ) {
    this.nodes = options.nodes;
  }

  /** Checks Docker, writes the env file, `compose up -d`, and finds the containers and network. */
  static async start(options: DockerClusterOptions): Promise<DockerCluster> {
    if (options.nodes.join(',') !== COMPOSE_NODES.join(',')) throw new HarnessError('JL_DOCKER_NODES', `--env docker runs the compose file's three nodes (${COMPOSE_NODES.join(', ')}); got ${options.nodes.join(', ')}`);
    const pre = dockerPreflight(options.image);
    if (!pre.ok) throw new HarnessError('JL_DOCKER_UNAVAILABLE', `--env docker: ${pre.reason}`);
    const project = `${(options.projectPrefix ?? 'jl').replace(/[^a-z0-9]/gi, '').toLowerCase()}${randomBytes(4).toString('hex')}`;
    const ports = new Map<string, number>();
    for (const id of options.nodes) ports.set(id, await freePort());
    const envDir = mkdtempSync(join(tmpdir(), 'jl-docker-'));
    const envFile = join(envDir, 'cluster.env');
    // Plaintext between the containers (the harness talks HTTP to the published loopback ports):
    // QKV_INSECURE lets a node listen on 0.0.0.0 without TLS; the compose file's TLS mounts get
    // empty directories.
    const settings = { QKV_CLUSTER_SECRET: randomBytes(24).toString('hex'), QKV_INSECURE: '1', ...options.env };
    writeFileSync(envFile, Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o600 });
    for (const id of options.nodes) mkdirSync(join(envDir, 'tls', id), { recursive: true });
    const composeEnv: NodeJS.ProcessEnv = { ...process.env, QKV_IMAGE: options.image, QKV_ENV_FILE: envFile, QKV_TLS_DIR: join(envDir, 'tls') };
    for (const id of options.nodes) composeEnv[`QKV_PORT_${id.toUpperCase()}`] = String(ports.get(id));
    const cluster = new DockerCluster(options, pre.compose, project, ports, envDir, composeEnv);
    cluster.clusterSecret = settings.QKV_CLUSTER_SECRET;
    trackProject(project);
    try {
      await cluster.composeCall('up', '-d');
      for (const id of options.nodes) cluster.containers.set(id, await cluster.findContainer(id));
      cluster.network = await cluster.findNetwork();
    } catch (err) {
      await cluster.stop();
      throw new HarnessError('JL_DOCKER_UP', `compose up of project ${project} failed: ${(err as Error).message}`, { cause: err });
    }
    return cluster;
  }

  endpoints(): string[] {
    return this.nodes.map((id) => this.endpointOf(id));
  }

  endpointOf(id: string): string {
    const port = this.ports.get(id);
    if (port === undefined) throw new HarnessError('JL_UNKNOWN_NODE', `unknown node ${id}`);
    return `127.0.0.1:${port}`;
  }

  /** Leader hints name the advertised `n1:7001`; the host reaches it at the published port. */
  clientOptions(): ClientConnectOptions {
    const published = new Map(this.nodes.map((id) => [`${id}:${CONTAINER_PORT}`, this.endpointOf(id)]));
    return { mapAddress: (address) => published.get(address) };
  }

  async status(id: string): Promise<NodeStatus | undefined> {
    const s = await fetchStatus(this.endpointOf(id), STATUS_TIMEOUT_MS);
    if (s !== undefined) this.lastStatus.set(id, s);
    return s;
  }

  stateHash(id: string): Promise<{ appliedIndex: number; stateHash: string } | undefined> {
    return fetchStateHash(this.endpointOf(id));
  }

  view(): Promise<ClusterView> {
    return viewOf(this.nodes, (id) => this.status(id));
  }

  waitForLeader(timeoutMs: number): Promise<string> {
    return waitForLeaderOf(() => this.view(), timeoutMs, `docker project ${this.project}; \`docker logs\` of its containers`);
  }

  /** Isolates whole nodes with `docker network disconnect`; anything else is not applied. */
  async cut(cuts: readonly Cut[], mode: 'silent' | 'loud'): Promise<string> {
    const isolated = isolatedSetFor(this.nodes, cuts);
    if (isolated === undefined) {
      const shown = cuts.map(([f, t]) => `${f}>${t}`).join(' ');
      throw new HarnessError('JL_FAULT_UNSUPPORTED', `docker network disconnect isolates whole nodes only; cannot cut just ${shown}`);
    }
    for (const id of isolated) {
      if (this.disconnected.has(id)) continue;
      await docker('network', 'disconnect', this.network, this.container(id));
      this.disconnected.add(id);
    }
    const how = `docker network disconnect ${isolated.join(',')}`;
    return mode === 'loud' ? `${how}: silent; a loud cut (connection resets) is NOT APPLIED` : how;
  }

  shapePair(): void {
    throw new HarnessError('JL_FAULT_UNSUPPORTED', 'docker has no per-link delay here (tc netem needs NET_ADMIN and iproute2 in the image)');
  }

  /** Not here: the forgetting filesystem is mounted only under local nodes so far. */
  powerLoss(): Promise<string> {
    return Promise.reject(new HarnessError('JL_FAULT_UNSUPPORTED', 'the power-loss nemesis runs against local processes only (--env local)'));
  }

  /** Not here: the forgetting filesystem is mounted only under local nodes so far. */
  failDiskWrites(): Promise<void> {
    return Promise.reject(new HarnessError('JL_FAULT_UNSUPPORTED', 'the disk-full nemesis runs against local processes only (--env local)'));
  }

  /** Not here: the data directory of a node is damaged only locally so far. */
  corrupt(): Promise<string> {
    return Promise.reject(new HarnessError('JL_FAULT_UNSUPPORTED', 'the corrupt nemesis runs against local processes only (--env local)'));
  }

  /** Never called: {@link corrupt} is not applied here. */
  repairCorrupted(): Promise<string> {
    return Promise.resolve('');
  }

  /** Not here: emptying a node's named volume and replacing the member is done only locally so far. */
  wipe(): Promise<void> {
    return Promise.reject(new HarnessError('JL_FAULT_UNSUPPORTED', 'the wipe nemesis runs against local processes only (--env local)'));
  }

  /** Never called: {@link wipe} is not applied here. */
  replace(): Promise<string> {
    return Promise.resolve('');
  }

  /** Not here: the hostile peer runs against local processes only so far. */
  hostilePeer(): never {
    throw new HarnessError('JL_FAULT_UNSUPPORTED', 'the hostile-peer nemesis runs against local processes only (--env local)');
  }

  /** Reconnects every disconnected node, with its service name as alias so peers resolve it. */
  async healNetwork(): Promise<void> {
    for (const id of [...this.disconnected]) {
      await docker('network', 'connect', '--alias', id, this.network, this.container(id));
      this.disconnected.delete(id);
    }
  }

  async kill(id: string): Promise<void> {
    if (this.killed.has(id)) return;
    await this.resume(id); // docker refuses to kill a paused container
    await docker('kill', this.container(id));
    this.killed.add(id);
  }

  async restart(id: string): Promise<void> {
    if (!this.killed.has(id)) return;
    await docker('start', this.container(id));
    this.killed.delete(id);
  }

  async pause(id: string): Promise<void> {
    if (this.paused.has(id) || this.killed.has(id)) return;
    await docker('pause', this.container(id));
    this.paused.add(id);
  }

  async resume(id: string): Promise<void> {
    if (!this.paused.has(id)) return;
    await docker('unpause', this.container(id));
    this.paused.delete(id);
  }

  setFsyncDelayMs(id: string, delayMs: number): Promise<void> {
    return putFsyncDelay(id, this.endpointOf(id), this.clusterSecret, delayMs);
  }

  async compactedPast(id: string): Promise<boolean> {
    const v = await this.view();
    if (v.leader === null) return false;
    const leader = await this.status(v.leader);
    // A disconnected node cannot be asked, and cannot apply anything: its last answer holds.
    const node = (await this.status(id)) ?? this.lastStatus.get(id);
    if (leader?.firstIndex === undefined || node === undefined) return false;
    return leader.firstIndex > node.appliedIndex + 1;
  }

  setRateMultiplier(multiplier: number): void {
    this.rateMultiplier = multiplier;
  }

  currentRateMultiplier(): number {
    return this.rateMultiplier;
  }

  async healAll(): Promise<void> {
    await this.healNetwork();
    for (const id of this.nodes) await this.resume(id);
    for (const id of this.nodes) await this.restart(id);
  }

  /** Saves each container's log, then `compose down -v` and removal by labels. Never throws. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.keepAlive);
    await this.saveLogs();
    await this.composeCall('down', '-v', '--remove-orphans', '--timeout', '5').catch(() => undefined);
    removeComposeProjectNow(this.project); // whatever down left (it failed or timed out)
    untrackProject(this.project);
    rmSync(this.envDir, { recursive: true, force: true });
  }

  private async saveLogs(): Promise<void> {
    mkdirSync(join(this.options.dir, 'nodes'), { recursive: true });
    for (const [id, cid] of this.containers) {
      try {
        // docker logs writes the container's stdout and stderr to its own stdout and stderr.
        const out = await runCommand('sh', ['-c', `docker logs --tail ${LOG_LINES_MAX} "$1" 2>&1`, 'sh', cid]);
        writeFileSync(join(this.options.dir, 'nodes', `${id}.log`), `# jepsen-lite: container ${cid} of docker project ${this.project}\n${out}`);
      } catch {
        /* logs are a convenience */
      }
    }
  }

  private composeCall(...args: string[]): Promise<string> {
    return runCommand(this.compose.cmd, [...this.compose.prefix, '-f', this.options.composeFile, '-p', this.project, ...args], { env: this.composeEnv, timeoutMs: COMPOSE_TIMEOUT_MS_MAX });
  }

  private async findContainer(id: string): Promise<string> {
    const out = await docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${this.project}`, '--filter', `label=com.docker.compose.service=${id}`);
    const cid = out.split('\n').map((x) => x.trim()).find(Boolean);
    if (cid === undefined) throw new HarnessError('JL_DOCKER_UP', `project ${this.project} has no container for ${id}`);
    return cid;
  }

  private async findNetwork(): Promise<string> {
    const out = await docker('network', 'ls', '--format', '{{.Name}}', '--filter', `label=com.docker.compose.project=${this.project}`);
    const name = out.split('\n').map((x) => x.trim()).find(Boolean);
    if (name === undefined) throw new HarnessError('JL_DOCKER_UP', `project ${this.project} has no network`);
    return name;
  }

  private container(id: string): string {
    const cid = this.containers.get(id);
    if (cid === undefined) throw new HarnessError('JL_UNKNOWN_NODE', `unknown node ${id}`);
    return cid;
  }
}
