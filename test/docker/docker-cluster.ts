// A quorumkv cluster of containers, made with testcontainers from the node image that
// deploy/build-images.sh builds: one Network, one container per node with the node id as its
// network alias, the node's port published on 127.0.0.1 at a fixed free host port (so it stays
// the same across `docker kill` + `docker start`), and the faults production has: kill (crash),
// start (recover from the volume), pause/unpause (a frozen, gray node), disconnect/connect (a
// silent partition: packets dropped, not refused).
//
// Used by test/docker/*.test.ts and meant for jepsen-lite's Docker environment too:
//
//   const cluster = await DockerCluster.start({ name: 'jepsen' });
//   const kv = await connect({ endpoints: cluster.endpoints() });
//   await cluster.disconnect('n2'); … await cluster.connect('n2');
//   await cluster.waitConverged();
//   await cluster.teardown();            // always, in a finally / afterAll
//
// Teardown is guaranteed: each container and the network are registered (docker-env.ts) and
// removed on teardown(), and on exit of the test process if it dies first.
import { execFile } from 'node:child_process';
import { GenericContainer, Network, Wait, type StartedNetwork, type StartedTestContainer } from 'testcontainers';
import {
  NODE_IMAGE,
  TEST_LABEL,
  docker,
  freePorts,
  trackContainer,
  trackNetwork,
  untrackContainer,
  untrackNetwork,
  waitFor,
} from './docker-env.js';

// The reaper image cannot be pulled without a registry, and the host override skips a helper
// image: read by testcontainers when it first talks to the engine, so set before any start.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= 'localhost';

/** The port every node listens on inside its container. */
export const NODE_PORT = 7001;
/** A cluster secret long enough for the config (>= 8) and the transport (>= 16). */
export const DOCKER_TEST_SECRET = 'quorumkv-docker-test-secret-0123456789';
/** Longest wait for containers to start and answer /health. */
const STARTUP_TIMEOUT_MS = 60_000;
/** Client-side deadline of one status request. */
const STATUS_TIMEOUT_MS = 2_000;
/** Seconds `docker stop` waits for SIGTERM to finish before SIGKILL, at teardown. */
const STOP_TIMEOUT_S = 5;
/** Default bound of the wait helpers. */
const DEFAULT_WAIT_MS = 30_000;

/** The fields of GET /v1/status the tests use. */
export interface NodeStatus {
  id: string;
  role: 'leader' | 'follower' | 'candidate' | 'learner';
  term: number;
  leader: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  appliedHash: string;
}

/** Options of {@link DockerCluster.start}. */
export interface DockerClusterOptions {
  /** Shows up in container names (`qkv-<name>-n1-<random>`). Default 'cluster'. */
  name?: string;
  /** Node image. Default QKV_IMAGE or quorumkv/node:local. */
  image?: string;
  /** Node ids. Default n1, n2, n3. */
  ids?: string[];
  secret?: string;
  /** Extra QKV_* environment for every node (QKV_TICK_MS, QKV_LOG_LEVEL, …). */
  env?: Record<string, string>;
}

/** One node: its container, its id (also its network alias) and its host port. */
export interface DockerNode {
  id: string;
  hostPort: number;
  container: StartedTestContainer;
}

/**
 * A testcontainers GenericContainer whose published ports bind to 127.0.0.1 only (testcontainers
 * itself binds every interface).
 */
class LoopbackContainer extends GenericContainer {
  protected override async beforeContainerCreated(): Promise<void> {
    for (const bindings of Object.values(this.hostConfig.PortBindings ?? {}) as { HostIp?: string }[][]) {
      for (const b of bindings) b.HostIp = '127.0.0.1';
    }
  }
}

/** A running cluster of node containers; see the file comment. */
export class DockerCluster {
  private readonly paused = new Set<string>();
  private readonly disconnected = new Set<string>();
  private tornDown = false;

  private constructor(
    readonly network: StartedNetwork,
    readonly nodes: DockerNode[],
  ) {}

  /** Starts the network and one container per node; resolves when every node answers /health. */
  static async start(o: DockerClusterOptions = {}): Promise<DockerCluster> {
    const ids = o.ids ?? ['n1', 'n2', 'n3'];
    const suffix = Math.random().toString(36).slice(2, 8);
    const network = await new Network().start();
    trackNetwork(network.getId());
    const nodes: DockerNode[] = [];
    try {
      const ports = await freePorts(ids.length);
      const peers = ids.map((id) => `${id}=${id}:${NODE_PORT}`).join(',');
      const started = await Promise.allSettled(
        ids.map(async (id, i) => {
          const hostPort = ports[i]!;
          const container = await new LoopbackContainer(o.image ?? NODE_IMAGE)
            .withName(`qkv-${o.name ?? 'cluster'}-${id}-${suffix}`)
            .withLabels({ [TEST_LABEL]: o.name ?? 'cluster' })
            .withNetwork(network)
            .withNetworkAliases(id)
            .withEnvironment({
              QKV_ID: id,
              QKV_PEERS: peers,
              QKV_INITIAL_CLUSTER_STATE: 'new',
              QKV_CLUSTER_SECRET: o.secret ?? DOCKER_TEST_SECRET,
              QKV_ZONE: `zone-${i + 1}`,
              // Plaintext on a private Docker network; the node listens on 0.0.0.0, so it must be told.
              QKV_INSECURE: '1',
              ...o.env,
            })
            .withExposedPorts({ container: NODE_PORT, host: hostPort })
            .withWaitStrategy(Wait.forHttp('/health', NODE_PORT).forStatusCode(200))
            .withStartupTimeout(STARTUP_TIMEOUT_MS)
            .start();
          trackContainer(container.getId());
          nodes.push({ id, hostPort, container });
        }),
      );
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      nodes.sort((a, b) => ids.indexOf(a.id) - ids.indexOf(b.id));
      return new DockerCluster(network, nodes);
    } catch (e) {
      await new DockerCluster(network, nodes).teardown();
      throw e;
    }
  }

  /** Client endpoints, `127.0.0.1:<host port>` per node, in node order. */
  endpoints(): string[] {
    return this.nodes.map((n) => `127.0.0.1:${n.hostPort}`);
  }

  /** The node with this id (throws on an unknown id: a bug in the test). */
  node(id: string): DockerNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** GET /v1/status through the published port; undefined when the node does not answer in time. */
  async status(id: string, timeoutMs = STATUS_TIMEOUT_MS): Promise<NodeStatus | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.node(id).hostPort}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
      return res.ok ? ((await res.json()) as NodeStatus) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * GET /v1/status from inside the node's container (`docker exec`): works while the node is
   * disconnected from the network, when the host cannot reach it.
   */
  async statusInside(id: string): Promise<NodeStatus> {
    const out = await this.httpInside(id, 'GET', '/v1/status');
    if (out.status !== 200) throw new Error(`status of ${id} inside its container: HTTP ${out.status} ${out.body}`);
    return JSON.parse(out.body) as NodeStatus;
  }

  /**
   * An HTTP request from inside the node's container to its own port. `status` is 0 when the
   * request did not finish within `timeoutMs`.
   */
  async httpInside(id: string, method: string, urlPath: string, body?: string, timeoutMs = 3_000): Promise<{ status: number; body: string }> {
    const script =
      'const [m,p,b,t]=process.argv.slice(1);' +
      `fetch('http://127.0.0.1:${NODE_PORT}'+p,{method:m,body:b||undefined,signal:AbortSignal.timeout(Number(t))})` +
      '.then(async r=>console.log(JSON.stringify({status:r.status,body:await r.text()})))' +
      ".catch(e=>console.log(JSON.stringify({status:0,body:String(e&&e.message)})))";
    const out = await docker('exec', this.node(id).container.getId(), 'node', '-e', script, method, urlPath, body ?? '', String(timeoutMs));
    return JSON.parse(out.trim()) as { status: number; body: string };
  }

  /** Statuses of every node that answers through its port (paused or disconnected ones do not). */
  async statuses(): Promise<NodeStatus[]> {
    const all = await Promise.all(this.nodes.map((n) => this.status(n.id)));
    return all.filter((s): s is NodeStatus => s !== undefined);
  }

  /**
   * Waits for a leader that every answering node among `among` (default: all not paused or
   * disconnected, at least a majority) agrees on, optionally one other than `not` or with a term
   * above `aboveTerm`. Returns the leader's status.
   */
  async waitForLeader(o: { among?: string[]; not?: string; aboveTerm?: number; timeoutMs?: number } = {}): Promise<NodeStatus> {
    const among = o.among ?? this.nodes.map((n) => n.id).filter((id) => !this.paused.has(id) && !this.disconnected.has(id));
    const majority = Math.floor(this.nodes.length / 2) + 1;
    return waitFor(
      `a leader agreed by ${among.join(', ')}${o.not ? ` other than ${o.not}` : ''}`,
      async () => {
        const sts = (await Promise.all(among.map((id) => this.status(id)))).filter((s): s is NodeStatus => s !== undefined);
        if (sts.length < Math.min(majority, among.length)) return undefined;
        const leader = sts.find((s) => s.role === 'leader');
        if (!leader || leader.id === o.not || (o.aboveTerm !== undefined && leader.term <= o.aboveTerm)) return undefined;
        return sts.every((s) => s.leader === leader.id && s.term === leader.term) ? leader : undefined;
      },
      o.timeoutMs ?? DEFAULT_WAIT_MS,
    );
  }

  /**
   * Waits until every node answers with the same applied index and applied hash, at or past the
   * leader's commit index: the replicas hold identical state. Returns the statuses.
   */
  async waitConverged(timeoutMs = DEFAULT_WAIT_MS): Promise<NodeStatus[]> {
    return waitFor(
      'every node to apply the same entries (equal appliedIndex and appliedHash)',
      async () => {
        const sts = await this.statuses();
        if (sts.length !== this.nodes.length) return undefined;
        const leader = sts.find((s) => s.role === 'leader');
        if (!leader) return undefined;
        const same = sts.every((s) => s.appliedIndex === leader.appliedIndex && s.appliedHash === leader.appliedHash);
        return same && leader.appliedIndex >= leader.commitIndex ? sts : undefined;
      },
      timeoutMs,
    );
  }

  // --- faults ------------------------------------------------------------------------------------

  /** `docker kill`: SIGKILL, a crash. The container and its volume stay. */
  async kill(id: string): Promise<void> {
    await docker('kill', this.node(id).container.getId());
  }

  /** `docker start` after a kill: the same container, volume and host port; waits for /health. */
  async start(id: string, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    const n = this.node(id);
    await docker('start', n.container.getId());
    await waitFor(`${id} to answer /health after start`, async () => {
      const res = await fetch(`http://127.0.0.1:${n.hostPort}/health`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
      return res.ok ? true : undefined;
    }, timeoutMs);
  }

  /** `docker pause`: every process of the node is frozen (a gray failure). */
  async pause(id: string): Promise<void> {
    await docker('pause', this.node(id).container.getId());
    this.paused.add(id);
  }

  /** `docker unpause`. */
  async unpause(id: string): Promise<void> {
    await docker('unpause', this.node(id).container.getId());
    this.paused.delete(id);
  }

  /** `docker network disconnect`: the node can reach no peer and no peer it (nor the host). */
  async disconnect(id: string): Promise<void> {
    await docker('network', 'disconnect', this.network.getName(), this.node(id).container.getId());
    this.disconnected.add(id);
  }

  /** `docker network connect` with the node's alias again, so peers resolve its name. */
  async connect(id: string): Promise<void> {
    await docker('network', 'connect', '--alias', id, this.network.getName(), this.node(id).container.getId());
    this.disconnected.delete(id);
  }

  /** The last `lines` lines of a node's log (stdout and stderr). */
  async logs(id: string, lines = 40): Promise<string> {
    return new Promise<string>((resolve) => {
      execFile('docker', ['logs', '--tail', String(lines), this.node(id).container.getId()], { timeout: 10_000, maxBuffer: 8 * 1024 * 1024 }, (e, out, err) =>
        resolve(e && !out ? `(no logs: ${e.message})` : `${out.toString()}${err.toString()}`),
      );
    });
  }

  /** Every node's log tail, for a failure message. */
  async describeLogs(lines = 30): Promise<string> {
    const parts = await Promise.all(this.nodes.map(async (n) => `--- ${n.id} (last ${lines} lines) ---\n${await this.logs(n.id, lines)}`));
    return parts.join('\n');
  }

  /**
   * Removes every container (with its volume) and the network. Heals faults first so that
   * `docker stop` can deliver SIGTERM. Safe to call twice; never throws.
   */
  async teardown(): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    for (const id of [...this.paused]) await this.unpause(id).catch(() => undefined);
    await Promise.all(
      this.nodes.map(async (n) => {
        await n.container.stop({ timeout: STOP_TIMEOUT_S * 1000, remove: true, removeVolumes: true }).catch(async () => {
          await docker('rm', '-f', '-v', n.container.getId()).catch(() => undefined);
        });
        untrackContainer(n.container.getId());
      }),
    );
    await this.network.stop().catch(async () => {
      await docker('network', 'rm', this.network.getId()).catch(() => undefined);
    });
    untrackNetwork(this.network.getId());
  }
}
