// The cluster of deploy/docker-compose.yml, driven through the compose CLI (v1 `docker-compose`
// or the v2 plugin) under a unique project name, on free host ports, with a throwaway env file
// holding the secret. Used by the compose test and meant for jepsen-lite's `--env docker`:
//
//   const c = await ComposeCluster.create({ name: 'jepsen' });
//   await c.up();  … c.endpoints() …  await c.down();  await c.up();   // volumes kept
//   await c.destroy();                                                  // down -v, always
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  NODE_IMAGE,
  REPO_ROOT,
  composeCommand,
  docker,
  freePorts,
  removeComposeProjectNow,
  run,
  trackComposeProject,
  untrackComposeProject,
  waitFor,
} from './docker-env.js';
import type { NodeStatus } from './docker-cluster.js';

/** The compose file under test. */
export const COMPOSE_FILE = path.join(REPO_ROOT, 'deploy', 'docker-compose.yml');
/** The compose file's service names, which are also the node ids. */
export const COMPOSE_SERVICES = ['n1', 'n2', 'n3'] as const;
/** Longest one compose command may take. */
const COMPOSE_TIMEOUT_MS = 120_000;
/** Client-side deadline of one status request. */
const STATUS_TIMEOUT_MS = 2_000;

/** Options of {@link ComposeCluster.create}. */
export interface ComposeClusterOptions {
  /** Part of the project name (`qkv<name><random>`; letters and digits). Default 'test'. */
  name?: string;
  image?: string;
  secret?: string;
}

/** A compose project of deploy/docker-compose.yml; see the file comment. */
export class ComposeCluster {
  private constructor(
    readonly project: string,
    readonly ports: Record<string, number>,
    private readonly env: NodeJS.ProcessEnv,
    private readonly tmpDir: string,
  ) {}

  /** Picks ports and writes the env file; starts nothing. */
  static async create(o: ComposeClusterOptions = {}): Promise<ComposeCluster> {
    const project = `qkv${(o.name ?? 'test').replace(/[^a-z0-9]/gi, '').toLowerCase()}${Math.random().toString(36).slice(2, 8)}`;
    const [p1, p2, p3] = await freePorts(3);
    const tmpDir = mkdtempSync(path.join(tmpdir(), 'qkv-compose-'));
    const envFile = path.join(tmpDir, 'cluster.env');
    // Plaintext on the compose network (the test talks HTTP to the published loopback ports): the
    // env file says so with QKV_INSECURE, and the TLS mounts point at empty directories.
    writeFileSync(envFile, `QKV_CLUSTER_SECRET=${o.secret ?? 'quorumkv-compose-test-secret-0123456789'}\nQKV_INSECURE=1\n`, { mode: 0o600 });
    for (const id of ['n1', 'n2', 'n3']) mkdirSync(path.join(tmpDir, 'tls', id), { recursive: true });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      QKV_TLS_DIR: path.join(tmpDir, 'tls'),
      QKV_IMAGE: o.image ?? NODE_IMAGE,
      QKV_ENV_FILE: envFile,
      QKV_PORT_N1: String(p1),
      QKV_PORT_N2: String(p2),
      QKV_PORT_N3: String(p3),
    };
    const c = new ComposeCluster(project, { n1: p1!, n2: p2!, n3: p3! }, env, tmpDir);
    trackComposeProject(project);
    return c;
  }

  private compose(...args: string[]): Promise<string> {
    const { cmd, prefix } = composeCommand();
    return run(cmd, [...prefix, '-f', COMPOSE_FILE, '-p', this.project, ...args], { env: this.env, timeoutMs: COMPOSE_TIMEOUT_MS });
  }

  /** `up -d`: creates (or re-creates) the three containers; volumes are reused when they exist. */
  async up(): Promise<void> {
    await this.compose('up', '-d');
  }

  /** `stop`: SIGTERM to every node, SIGKILL after the compose file's grace period. */
  async stop(): Promise<void> {
    await this.compose('stop');
  }

  /** `down`: removes the containers and the network, keeps the named volumes. */
  async down(): Promise<void> {
    await this.compose('down');
  }

  /** `down -v`: removes everything, volumes included, and the env file. Never throws. */
  async destroy(): Promise<void> {
    await this.compose('down', '-v', '--remove-orphans').catch(() => undefined);
    // Whatever `down` could not remove (it failed, or timed out), by the project's labels.
    removeComposeProjectNow(this.project);
    rmSync(this.tmpDir, { recursive: true, force: true });
    untrackComposeProject(this.project);
  }

  /** Ids of this project's containers (running or not), for `docker inspect`. */
  async containerIds(): Promise<string[]> {
    const out = await docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${this.project}`);
    return out.split('\n').map((s) => s.trim()).filter(Boolean);
  }

  /** Names of this project's volumes. */
  async volumes(): Promise<string[]> {
    const out = await docker('volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${this.project}`);
    return out.split('\n').map((s) => s.trim()).filter(Boolean);
  }

  /** `docker inspect` of this project's containers. */
  async inspect(): Promise<ContainerInspect[]> {
    const ids = await this.containerIds();
    if (ids.length === 0) return [];
    return JSON.parse(await docker('inspect', ...ids)) as ContainerInspect[];
  }

  /** Client endpoints on 127.0.0.1, in node order. */
  endpoints(): string[] {
    return COMPOSE_SERVICES.map((s) => `127.0.0.1:${this.ports[s]}`);
  }

  /** GET /v1/status of a node through its published port; undefined when it does not answer. */
  async status(id: string): Promise<NodeStatus | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.ports[id]}/v1/status`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
      return res.ok ? ((await res.json()) as NodeStatus) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Waits for a leader all three nodes agree on; returns its status. */
  async waitForLeader(timeoutMs = 30_000): Promise<NodeStatus> {
    return waitFor(
      'a leader agreed by the three compose nodes',
      async () => {
        const sts = await Promise.all(COMPOSE_SERVICES.map((s) => this.status(s)));
        const leader = sts.find((s) => s?.role === 'leader');
        return leader && sts.every((s) => s && s.leader === leader.id && s.term === leader.term) ? leader : undefined;
      },
      timeoutMs,
    );
  }

  // --- faults, by node id (= service name), for jepsen-lite ------------------------------------

  /** The container id of a service (throws when it has none: not up). */
  async containerOf(id: string): Promise<string> {
    const out = await docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${this.project}`, '--filter', `label=com.docker.compose.service=${id}`);
    const cid = out.split('\n').map((x) => x.trim()).find(Boolean);
    if (!cid) throw new Error(`compose project ${this.project} has no container for ${id}`);
    return cid;
  }

  /** The project's network (`<project>_quorumkv`). */
  async networkName(): Promise<string> {
    const out = await docker('network', 'ls', '--format', '{{.Name}}', '--filter', `label=com.docker.compose.project=${this.project}`);
    const name = out.split('\n').map((x) => x.trim()).find(Boolean);
    if (!name) throw new Error(`compose project ${this.project} has no network`);
    return name;
  }

  /**
   * `docker kill` (a crash). Note: the compose file's `restart: unless-stopped` does not restart
   * a killed container by itself (Docker treats kill as a manual stop); {@link start} does.
   */
  async kill(id: string): Promise<void> {
    await docker('kill', await this.containerOf(id));
  }

  /** `docker start` of a killed or stopped node, on its volume. */
  async start(id: string): Promise<void> {
    await docker('start', await this.containerOf(id));
  }

  /** `docker pause`: the node freezes (a gray failure). */
  async pause(id: string): Promise<void> {
    await docker('pause', await this.containerOf(id));
  }

  /** `docker unpause`. */
  async unpause(id: string): Promise<void> {
    await docker('unpause', await this.containerOf(id));
  }

  /** `docker network disconnect`: a silent partition of the node from its peers and the host. */
  async disconnect(id: string): Promise<void> {
    await docker('network', 'disconnect', await this.networkName(), await this.containerOf(id));
  }

  /** `docker network connect` with the service name as alias again, so peers resolve it. */
  async connect(id: string): Promise<void> {
    await docker('network', 'connect', '--alias', id, await this.networkName(), await this.containerOf(id));
  }

  /** Logs of every service (tail), for a failure message. */
  async describeLogs(lines = 30): Promise<string> {
    return this.compose('logs', '--no-color', `--tail=${lines}`).catch((e: Error) => `(no logs: ${e.message})`);
  }
}

/** The parts of `docker inspect` the compose test looks at. */
export interface ContainerInspect {
  Name: string;
  Config: { User: string; Labels: Record<string, string>; Healthcheck?: { Test: string[] } };
  State: { Status: string; ExitCode: number; Health?: { Status: string } };
  HostConfig: {
    RestartPolicy: { Name: string };
    PortBindings: Record<string, { HostIp: string; HostPort: string }[]>;
  };
  Mounts: { Type: string; Name?: string; Destination: string }[];
}
