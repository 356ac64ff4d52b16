// A process-cluster harness for the real-process tests (test/cluster) and the measurement script:
// it starts `node packages/server/dist/cli.js serve …` once per node on free loopback ports with
// temporary data directories, captures each node's log to a file, and offers the faults the tests
// need (kill -9, SIGTERM, SIGSTOP/SIGCONT, restart on the same data directory), small HTTP helpers
// over a keep-alive agent and a bounded write-load generator that records every acknowledged write.
//
// Teardown is guaranteed: every spawned process is registered globally and killed with SIGKILL on
// `teardown()`, on `process.on('exit')` of the test process, and on SIGINT/SIGTERM of it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, rmSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { adminAuthorization } from '@quorumkv/transport';

/** The repository root: the nearest directory above this file holding pnpm-workspace.yaml. */
export const REPO_ROOT = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));
/** The built CLI the harness runs; the root `pnpm test` builds it first. */
export const CLI_PATH = path.join(REPO_ROOT, 'packages', 'server', 'dist', 'cli.js');
/** A cluster secret long enough for both the config (>= 8) and the transport (>= 16). */
export const TEST_SECRET = 'quorumkv-test-secret-0123456789';
/** The environment for running the `quorumkv` CLI against a test cluster: its admin commands prove TEST_SECRET. */
export const CLI_ENV: NodeJS.ProcessEnv = { ...process.env, QKV_CLUSTER_SECRET: TEST_SECRET, QKV_CLUSTER_SECRET_FILE: '' };

/** Longest any single harness wait may take unless the caller says otherwise. */
const DEFAULT_WAIT_MS = 15_000;
/** Poll period of the wait helpers. */
const POLL_MS = 25;
/** Client-side deadline of one harness HTTP request: above the server's default of 5 s, so a
 *  server-side timeout arrives as its 504 rather than as a client-side abort. */
const DEFAULT_REQUEST_TIMEOUT_MS = 8_000;
/** How long `stop()` waits for a SIGTERMed node to exit before it uses SIGKILL. */
const STOP_GRACE_MS = 5_000;
/** Lines of each node log printed by `describeLogs()`. */
const LOG_TAIL_LINES = 40;

function findRepoRoot(start: string): string {
  let dir = start;
  for (let i = 0; i < 10; i++) {
    if (existsSync(path.join(dir, 'pnpm-workspace.yaml'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`no pnpm-workspace.yaml above ${start}`);
}

// ---------------------------------------------------------------------------------------------
// Global process registry: nothing the harness spawns may outlive the test process.

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAllNow(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAllNow();
      process.kill(process.pid, sig);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Small utilities.

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Asks the OS for `count` distinct free loopback TCP ports (held open together, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/**
 * Polls `fn` every POLL_MS until it returns a value other than undefined, or throws after
 * `timeoutMs` with `what` and the last error seen.
 */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
    }
    await sleep(POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP.

/** A finished HTTP exchange. */
export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Options of {@link httpRequest}. */
export interface RequestOptions {
  body?: Uint8Array | string;
  /**
   * Request headers. An admin request (`/v1/admin/…`, `/v1/compact`) without an `authorization`
   * header gets TEST_SECRET's admin token; pass `authorization: ''` to send none.
   */
  headers?: http.OutgoingHttpHeaders;
  timeoutMs?: number;
  agent?: http.Agent;
  /** HTTPS with these (a TLS cluster): the CA and, under --client-cert-auth, a client certificate. */
  tls?: HarnessTls;
}

/** TLS material of the harness's HTTPS requests (PEM). */
export interface HarnessTls {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** The keep-alive agent of the harness's HTTPS requests. */
export const keepAliveHttpsAgent = new https.Agent({ keepAlive: true, maxSockets: 128 });

/** The keep-alive agent shared by the harness helpers. */
export const keepAliveAgent = new http.Agent({ keepAlive: true, maxSockets: 128 });

/** The admin token header for admin paths (TEST_SECRET's), so the harness's admin calls pass. */
function adminHeaderFor(urlPath: string): http.OutgoingHttpHeaders {
  const path = urlPath.split('?')[0]!;
  return path.startsWith('/v1/admin/') || path === '/v1/compact' ? { authorization: adminAuthorization(TEST_SECRET) } : {};
}

function withoutEmptyAuthorization(h: http.OutgoingHttpHeaders): http.OutgoingHttpHeaders {
  if (h.authorization === '') delete h.authorization;
  return h;
}

/** One HTTP request to 127.0.0.1:port; rejects on a network error or the client-side timeout. */
export function httpRequest(port: number, method: string, urlPath: string, opts: RequestOptions = {}): Promise<HttpResult> {
  const body = typeof opts.body === 'string' ? Buffer.from(opts.body) : opts.body;
  return new Promise<HttpResult>((resolve, reject) => {
    const req = (opts.tls ? https.request : http.request)(
      {
        host: '127.0.0.1',
        port,
        method,
        path: urlPath,
        agent: opts.agent ?? (opts.tls ? keepAliveHttpsAgent : keepAliveAgent),
        ...opts.tls,
        headers: withoutEmptyAuthorization({ ...(body ? { 'content-length': body.length } : {}), ...adminHeaderFor(urlPath), ...opts.headers }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${urlPath} on port ${port} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Parses a JSON response body (throws with the body text if it is not JSON). */
export function jsonOf<T = Record<string, unknown>>(r: HttpResult): T {
  try {
    return JSON.parse(r.body.toString('utf8')) as T;
  } catch {
    throw new Error(`expected JSON, got ${r.status}: ${r.body.toString('utf8').slice(0, 200)}`);
  }
}

/** The JSON of GET /v1/status (the fields the tests use). */
export interface NodeStatus {
  id: string;
  role: 'leader' | 'follower' | 'candidate' | 'learner';
  term: number;
  leader: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  appliedHash: string;
  /** Why the node neither campaigns nor votes now (docs/server.md, "Who may vote"), or null. */
  votingSuspended: 'identity' | 'storage' | null;
  votingSuspendedReason: string | null;
  members: { id: string; address: string; voter: boolean; matchIndex: number | null; lastContactMs: number | null }[];
}

// ---------------------------------------------------------------------------------------------
// The cluster.

/** Options of {@link ProcessCluster.start}. */
export interface ClusterOptions {
  /** Number of nodes (ids n1…nN). Default 3. */
  nodes?: number;
  /** --tick-ms; undefined = the server default. */
  tickMs?: number;
  /** --election-ticks; undefined = the server default. */
  electionTicks?: number;
  /** The cluster secret, passed in QKV_CLUSTER_SECRET (never on argv). Default TEST_SECRET. */
  secret?: string;
  /**
   * --initial-cluster-state; default `new` on every start (a data directory with state ignores
   * it, as a founding flag left in a compose file is). `existing` = start empty and wait to be added.
   */
  initialClusterState?: 'new' | 'existing';
  /** Extra `serve` flags for every node. */
  extraArgs?: string[];
  /** Extra `serve` flags for one node, by id (after `extraArgs`), e.g. its `--zone`. */
  nodeArgs?: Record<string, string[]>;
  /** --log-level. Default info. */
  logLevel?: string;
  /** Prefix of the temporary directory. */
  name?: string;
  /**
   * TLS everywhere: the harness makes a development CA and node certificates (`quorumkv certs
   * init`) in `<dir>/certs`, starts every node with them, and talks HTTPS. `clientCertAuth` also
   * starts nodes with --client-cert-auth (the harness then presents the client certificate).
   */
  tls?: boolean | { clientCertAuth?: boolean };
  /** Runs once ports and data-directory paths are known, before any node starts (e.g. to restore a backup into them). */
  prepare?: (nodes: ClusterNode[], peersFlag: string) => Promise<void>;
}

/** Per-run settings of one node that differ from the cluster's. */
export type NodeOverride = Pick<ClusterOptions, 'secret' | 'extraArgs' | 'initialClusterState'>;

/** One node of a ProcessCluster. */
export interface ClusterNode {
  readonly id: string;
  readonly port: number;
  /** host:port */
  readonly address: string;
  readonly dataDir: string;
  readonly logPath: string;
  /** The running process, or null while the node is down. */
  proc: ChildProcess | null;
  /** True between pause() and resume(). */
  paused: boolean;
}

/** A cluster of real `quorumkv serve` processes on 127.0.0.1. */
export class ProcessCluster {
  readonly nodes: ClusterNode[];
  readonly dir: string;
  readonly opts: ClusterOptions;
  private tornDown = false;
  /** Set by guard() when a test body failed; teardown() then keeps the logs. */
  failed = false;

  private constructor(dir: string, nodes: ClusterNode[], opts: ClusterOptions) {
    this.dir = dir;
    this.nodes = nodes;
    this.opts = opts;
  }

  /** Picks ports, makes data directories and starts every node (it does not wait for a leader). */
  static async start(opts: ClusterOptions = {}): Promise<ProcessCluster> {
    if (!existsSync(CLI_PATH)) {
      throw new Error(`${CLI_PATH} is missing: run \`pnpm exec tsc -b packages/server\` (the root \`pnpm test\` builds first)`);
    }
    installExitHook();
    const count = opts.nodes ?? 3;
    const dir = mkdtempSync(path.join(tmpdir(), `${opts.name ?? 'qkv-cluster'}-`));
    const ports = await freePorts(count);
    const nodes: ClusterNode[] = ports.map((port, i) => ({
      id: `n${i + 1}`,
      port,
      address: `127.0.0.1:${port}`,
      dataDir: path.join(dir, `n${i + 1}`),
      logPath: path.join(dir, `n${i + 1}.log`),
      proc: null,
      paused: false,
    }));
    const cluster = new ProcessCluster(dir, nodes, opts);
    if (opts.tls) cluster.makeCerts();
    await opts.prepare?.(nodes, cluster.peersFlag);
    for (const n of nodes) cluster.spawnNode(n);
    try {
      await cluster.waitListening(nodes.map((n) => n.id));
    } catch (e) {
      await cluster.teardown({ keepOnFailure: true });
      throw new Error(`${(e as Error).message}\n${cluster.describeLogs()}`);
    }
    return cluster;
  }

  /** Where `tls` clusters keep their certificates (ca.crt, nID.crt/key, client.crt/key). */
  get certsDir(): string {
    return path.join(this.dir, 'certs');
  }

  /**
   * TLS material for HTTPS and client connections to this cluster (undefined without `tls`): the
   * files in certsDir as last read — call reloadClientTls() after replacing them.
   */
  get clientTls(): HarnessTls | undefined {
    if (!this.opts.tls) return undefined;
    this.tlsCache ??= this.readClientTls();
    return this.tlsCache;
  }

  private tlsCache: HarnessTls | undefined;

  /** Reads ca.crt (and client.crt/key under clientCertAuth) again, e.g. after a rotation step. */
  reloadClientTls(): void {
    this.tlsCache = this.readClientTls();
  }

  private readClientTls(): HarnessTls {
    const read = (f: string) => readFileSync(path.join(this.certsDir, f));
    const withCert = typeof this.opts.tls === 'object' && this.opts.tls.clientCertAuth === true;
    return { ca: read('ca.crt'), ...(withCert ? { cert: read('client.crt'), key: read('client.key') } : {}) };
  }

  private makeCerts(): void {
    execFileSync(process.execPath, [CLI_PATH, 'certs', 'init', '--nodes', this.nodes.map((n) => n.id).join(','), '--out', this.certsDir], { stdio: 'pipe' });
  }

  /** The TLS flags of node `id` (its certificate as both server and peer certificate, one CA). */
  tlsArgs(id: string): string[] {
    if (!this.opts.tls) return [];
    const f = (name: string) => path.join(this.certsDir, name);
    const a = ['--cert-file', f(`${id}.crt`), '--key-file', f(`${id}.key`), '--peer-cert-file', f(`${id}.crt`), '--peer-key-file', f(`${id}.key`), '--peer-trusted-ca-file', f('ca.crt'), '--trusted-ca-file', f('ca.crt')];
    if (typeof this.opts.tls === 'object' && this.opts.tls.clientCertAuth) a.push('--client-cert-auth');
    return a;
  }

  /** One HTTP(S) request to a node of this cluster (HTTPS with the cluster's CA when `tls`). */
  request(port: number, method: string, urlPath: string, opts: RequestOptions = {}): Promise<HttpResult> {
    const tls = this.clientTls;
    return httpRequest(port, method, urlPath, tls ? { tls, ...opts } : opts);
  }

  /** The `--peers` value of this cluster. */
  get peersFlag(): string {
    return this.nodes.map((n) => `${n.id}=${n.address}`).join(',');
  }

  node(id: string): ClusterNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Ids of nodes whose process runs and is not paused. */
  liveIds(): string[] {
    return this.nodes.filter((n) => n.proc !== null && !n.paused).map((n) => n.id);
  }

  private args(n: ClusterNode, override: NodeOverride = {}): string[] {
    const o = { ...this.opts, ...override };
    const a = ['serve', '--id', n.id, '--listen', n.address, '--peers', this.peersFlag, '--data', n.dataDir, '--log-level', o.logLevel ?? 'info'];
    a.push('--initial-cluster-state', o.initialClusterState ?? 'new');
    if (o.tickMs !== undefined) a.push('--tick-ms', String(o.tickMs));
    if (o.electionTicks !== undefined) a.push('--election-ticks', String(o.electionTicks));
    return [...a, ...this.tlsArgs(n.id), ...(o.extraArgs ?? []), ...(this.opts.nodeArgs?.[n.id] ?? [])];
  }

  private spawnNode(n: ClusterNode, override: NodeOverride = {}): void {
    if (n.proc) throw new Error(`node ${n.id} is already running (pid ${n.proc.pid})`);
    const fd = openSync(n.logPath, 'a');
    try {
      const proc = spawn(process.execPath, [CLI_PATH, ...this.args(n, override)], {
        cwd: REPO_ROOT,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, QKV_CLUSTER_SECRET: override.secret ?? this.opts.secret ?? TEST_SECRET, QKV_CLUSTER_SECRET_FILE: '' },
      });
      live.add(proc);
      n.proc = proc;
      n.paused = false;
      proc.once('exit', () => {
        live.delete(proc);
        if (n.proc === proc) {
          n.proc = null;
          n.paused = false;
        }
      });
    } finally {
      closeSync(fd);
    }
  }

  /** Waits until each node answers GET /health. */
  async waitListening(ids: string[], timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    await Promise.all(
      ids.map((id) =>
        waitFor(`${id} to answer /health`, async () => {
          const n = this.node(id);
          if (!n.proc) throw new Error(`${id} exited (see ${n.logPath})`);
          const r = await this.request(n.port, 'GET', '/health', { timeoutMs: 1000 });
          return r.status === 200 ? true : undefined;
        }, timeoutMs),
      ),
    );
  }

  /** GET /v1/status of one node, or null if it does not answer within `timeoutMs`. */
  async status(id: string, timeoutMs = 1000): Promise<NodeStatus | null> {
    const n = this.node(id);
    if (!n.proc || n.paused) return null;
    try {
      const r = await this.request(n.port, 'GET', '/v1/status', { timeoutMs });
      return r.status === 200 ? jsonOf<NodeStatus>(r) : null;
    } catch {
      return null;
    }
  }

  /** Statuses of every live node (nodes that do not answer are left out). */
  async statuses(): Promise<NodeStatus[]> {
    const all = await Promise.all(this.liveIds().map((id) => this.status(id)));
    return all.filter((s): s is NodeStatus => s !== null);
  }

  /**
   * Waits until the live nodes (or `among`) agree on one leader that itself reports role leader,
   * in a term above `minTerm` when given. Returns that leader's status.
   */
  async waitForLeader(opts: { among?: string[]; minTerm?: number; exclude?: string; timeoutMs?: number } = {}): Promise<NodeStatus> {
    return waitFor(
      'one agreed leader',
      async () => {
        const ids = (opts.among ?? this.liveIds()).filter((id) => id !== opts.exclude);
        const sts = await Promise.all(ids.map((id) => this.status(id)));
        if (sts.some((s) => s === null)) return undefined;
        const leaders = (sts as NodeStatus[]).filter((s) => s.role === 'leader');
        if (leaders.length !== 1) return undefined;
        const l = leaders[0]!;
        if (opts.minTerm !== undefined && l.term <= opts.minTerm) return undefined;
        if (opts.exclude !== undefined && l.id === opts.exclude) return undefined;
        // A node that started empty (not founding) learns the membership from the leader a moment
        // after it learns of the leader: agreement includes it.
        const agreed = (sts as NodeStatus[]).every((s) => s.leader === l.id && s.term === l.term && s.members.length > 0);
        return agreed ? l : undefined;
      },
      opts.timeoutMs ?? DEFAULT_WAIT_MS,
    );
  }

  /** Waits until every live node has applied up to the leader's commit index and reports one hash. */
  async waitConverged(timeoutMs = DEFAULT_WAIT_MS): Promise<NodeStatus[]> {
    return waitFor(
      'all nodes to apply the same log',
      async () => {
        const ids = this.liveIds();
        const sts = await Promise.all(ids.map((id) => this.status(id)));
        if (sts.some((s) => s === null)) return undefined;
        const all = sts as NodeStatus[];
        const leader = all.find((s) => s.role === 'leader');
        if (!leader) return undefined;
        const ok = all.every((s) => s.appliedIndex === leader.appliedIndex && s.appliedHash === leader.appliedHash && s.appliedIndex >= leader.commitIndex);
        return ok ? all : undefined;
      },
      timeoutMs,
    );
  }

  // --- faults ----------------------------------------------------------------------------------

  /** Sends `signal` to a node's process. */
  signal(id: string, signal: NodeJS.Signals): void {
    const n = this.node(id);
    if (!n.proc) throw new Error(`node ${id} is not running`);
    n.proc.kill(signal);
  }

  /** kill -9 and wait for the process to be gone. */
  async kill9(id: string): Promise<void> {
    const n = this.node(id);
    const p = n.proc;
    if (!p) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await exited;
  }

  /** kill -9 several nodes at (nearly) the same instant. */
  async kill9All(ids: string[] = this.nodes.map((n) => n.id)): Promise<void> {
    const procs = ids.map((id) => this.node(id).proc).filter((p): p is ChildProcess => p !== null);
    const exited = procs.map((p) => new Promise<void>((r) => p.once('exit', () => r())));
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(exited);
  }

  /** SIGTERM (graceful stop); SIGKILL if it has not exited after STOP_GRACE_MS. Returns the exit code. */
  async stop(id: string): Promise<number | null> {
    const n = this.node(id);
    const p = n.proc;
    if (!p) return null;
    if (n.paused) this.resume(id);
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), STOP_GRACE_MS);
    try {
      return await exited;
    } finally {
      clearTimeout(t);
    }
  }

  /** SIGSTOP: the process freezes with its sockets open (a "silent" node). */
  pause(id: string): void {
    this.signal(id, 'SIGSTOP');
    this.node(id).paused = true;
  }

  /** SIGCONT after pause(). */
  resume(id: string): void {
    this.signal(id, 'SIGCONT');
    this.node(id).paused = false;
  }

  /**
   * Starts a stopped node again on its data directory and waits until it answers /health;
   * `override` replaces the secret or extra flags for this run only.
   */
  async restart(id: string, override: NodeOverride = {}): Promise<void> {
    const n = this.node(id);
    if (n.proc) throw new Error(`node ${id} is still running`);
    this.spawnNode(n, override);
    try {
      await this.waitListening([id]);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${this.describeLogs()}`);
    }
  }

  /** Starts a stopped node without waiting for it (for a node expected to refuse to start). */
  launch(id: string, override: NodeOverride = {}): ChildProcess {
    const n = this.node(id);
    if (n.proc) throw new Error(`node ${id} is still running`);
    this.spawnNode(n, override);
    return n.proc!;
  }

  /** Waits for a node's process to exit (bounded); returns its exit code. */
  async waitExit(id: string, timeoutMs = DEFAULT_WAIT_MS): Promise<number | null> {
    const p = this.node(id).proc;
    if (!p) throw new Error(`node ${id} is not running`);
    return new Promise<number | null>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${id} did not exit within ${timeoutMs} ms`)), timeoutMs);
      p.once('exit', (code) => {
        clearTimeout(t);
        resolve(code);
      });
    });
  }

  /** Deletes a stopped node's data directory (a lost disk). */
  wipe(id: string): void {
    const n = this.node(id);
    if (n.proc) throw new Error(`node ${id} is still running`);
    rmSync(n.dataDir, { recursive: true, force: true });
  }

  /** The incarnation id in a node's data directory (packages/server/src/identity.ts's format). */
  incarnationOf(id: string): string {
    return readFileSync(path.join(this.node(id).dataDir, 'INCARNATION'), 'utf8').split('\n', 1)[0]!;
  }

  /**
   * Replaces a member that lost its disk — the runbook of docs/server.md, through the admin HTTP
   * API: remove it (on the leader), start it empty WITHOUT the founding flag, add it as a
   * learner, and promote it once it caught up and its incarnation is recorded. The node must be
   * stopped (its data directory is wiped here).
   */
  async replaceNode(id: string, timeoutMs = 30_000): Promise<void> {
    const n = this.node(id);
    const admin = async (method: string, urlPath: string, body?: unknown): Promise<HttpResult> => {
      const leader = await this.waitForLeader({ exclude: id, among: this.liveIds().filter((x) => x !== id), timeoutMs });
      return this.request(this.node(leader.id).port, method, urlPath, { ...(body ? { body: JSON.stringify(body) } : {}), timeoutMs: 10_000 });
    };
    const removed = await admin('DELETE', `/v1/admin/members/${id}`);
    if (removed.status !== 200 && removed.status !== 404) throw new Error(`member remove ${id}: ${removed.status} ${removed.body.toString()}`);
    this.wipe(id);
    await this.restart(id, { initialClusterState: 'existing' });
    const added = await admin('POST', '/v1/admin/members', { id, address: n.address, learner: true });
    if (added.status !== 200) throw new Error(`member add ${id}: ${added.status} ${added.body.toString()}`);
    await waitFor(`${id} to be promoted`, async () => ((await admin('POST', `/v1/admin/members/${id}/promote`)).status === 200 ? true : undefined), timeoutMs);
  }

  // --- key-value helpers ------------------------------------------------------------------------

  /** PUT /v1/kv/{key} on one node. */
  put(id: string, key: string, value: string | Uint8Array, timeoutMs?: number): Promise<HttpResult> {
    return this.request(this.node(id).port, 'PUT', `/v1/kv/${encodeURIComponent(key)}`, { body: value, ...(timeoutMs ? { timeoutMs } : {}) });
  }

  /** GET /v1/kv/{key} on one node. */
  get(id: string, key: string, consistency: 'linearizable' | 'stale' = 'linearizable', timeoutMs?: number): Promise<HttpResult> {
    const q = consistency === 'stale' ? '?consistency=stale' : '';
    return this.request(this.node(id).port, 'GET', `/v1/kv/${encodeURIComponent(key)}${q}`, timeoutMs ? { timeoutMs } : {});
  }

  /** Every key/value under `prefix` from one node, following `more` pages. */
  async list(id: string, prefix: string, consistency: 'linearizable' | 'stale' = 'linearizable'): Promise<Map<string, { value: string; modRevision: number }>> {
    const out = new Map<string, { value: string; modRevision: number }>();
    let after: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const q = new URLSearchParams({ prefix, limit: '1000', consistency, ...(after !== undefined ? { after } : {}) });
      const r = await this.request(this.node(id).port, 'GET', `/v1/kv?${q.toString()}`, { timeoutMs: 10_000 });
      if (r.status !== 200) throw new Error(`list on ${id}: ${r.status} ${r.body.toString()}`);
      const j = jsonOf<{ items: { key: string; value: string; modRevision: number }[]; more: boolean }>(r);
      for (const it of j.items) out.set(it.key, { value: it.value, modRevision: it.modRevision });
      if (!j.more || j.items.length === 0) return out;
      after = j.items[j.items.length - 1]!.key;
    }
    throw new Error(`list on ${id}: more than 1000 pages`);
  }

  // --- diagnostics and teardown -----------------------------------------------------------------

  /** The log file paths and the tail of each log, for failure messages. */
  describeLogs(lines = LOG_TAIL_LINES): string {
    const parts = [`cluster dir: ${this.dir}`];
    for (const n of this.nodes) {
      let tail = '';
      try {
        tail = readFileSync(n.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        tail = '(no log)';
      }
      parts.push(`--- ${n.id} (${n.address}) log ${n.logPath}:\n${tail}`);
    }
    return parts.join('\n');
  }

  /**
   * Wraps a test body: on failure it marks the cluster failed (teardown keeps the logs) and adds
   * the log paths and tails to the error message.
   */
  guard(fn: () => Promise<void>): () => Promise<void> {
    return async () => {
      try {
        await fn();
      } catch (e) {
        this.failed = true;
        const err = e instanceof Error ? e : new Error(String(e));
        err.message = `${err.message}\n${this.describeLogs()}`;
        throw err;
      }
    };
  }

  /**
   * Kills every node (SIGKILL; a stopped process dies too) and removes the temporary directory,
   * unless `keepOnFailure` (default: whether a guarded test failed): then the logs stay and their
   * paths are printed.
   */
  async teardown(opts: { keepOnFailure?: boolean } = {}): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    const procs = this.nodes.map((n) => n.proc).filter((p): p is ChildProcess => p !== null);
    const exited = procs.map((p) => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r()))));
    for (const p of procs) {
      try {
        p.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    await Promise.race([Promise.all(exited), sleep(5000)]);
    if (opts.keepOnFailure ?? this.failed) {
      console.error(`quorumkv test cluster kept for inspection; logs:\n${this.nodes.map((n) => `  ${n.logPath}`).join('\n')}`);
    } else {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** Kills every process any ProcessCluster in this process started (for afterAll hooks). */
export function killAllClusterProcesses(): void {
  killAllNow();
}

// ---------------------------------------------------------------------------------------------
// The write-load generator.

/** One acknowledged write. */
export interface AckedWrite {
  key: string;
  value: string;
  revision: number;
  /** The node the request was sent to. */
  sentTo: string;
  /** The leader that answered when a follower forwarded (x-qkv-forwarded-to), else sentTo. */
  servedBy: string;
  sentAtMs: number;
  ackedAtMs: number;
}

/** Options of {@link WriteLoad}. */
export interface WriteLoadOptions {
  /** Concurrent writers (closed loop each). */
  writers: number;
  /** Nodes the writers send to; writer i starts at targets[i % n] and moves on after a failure. */
  targets: () => string[];
  /** Key prefix; keys are `${prefix}${writer}-${seq}`, each written once. */
  prefix: string;
  /** Upper bound on writes per writer (the load stops by itself). */
  maxWritesPerWriter: number;
  /** Value size in bytes (the value starts with the key). Default 64. */
  valueBytes?: number;
  /** Client-side timeout per request. Default 3000 ms. */
  requestTimeoutMs?: number;
  /** Pause after a failed attempt. Default 20 ms. */
  backoffMs?: number;
}

/**
 * Closed-loop writers over HTTP, each writing fresh keys, recording every acknowledged write and
 * counting failures. A write whose answer was lost (timeout, connection reset, 5xx) is recorded
 * as "unknown": it may or may not have been applied, and it is never retried under the same key.
 */
export class WriteLoad {
  readonly acked: AckedWrite[] = [];
  /** Keys whose outcome is unknown (no acknowledgement). */
  readonly unknown: string[] = [];
  readonly failuresByKind = new Map<string, number>();
  private stopping = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly opts: WriteLoadOptions,
  ) {}

  /** Starts the writers. */
  start(): this {
    if (this.running) throw new Error('already started');
    this.running = Promise.all(Array.from({ length: this.opts.writers }, (_, w) => this.writer(w))).then(() => undefined);
    return this;
  }

  /** Asks the writers to stop after their current request and waits for them. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  /** Resolves once at least `n` writes are acknowledged (bounded by `timeoutMs`). */
  async waitAcked(n: number, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    await waitFor(`${n} acknowledged writes (have ${this.acked.length})`, () => (this.acked.length >= n ? true : undefined), timeoutMs);
  }

  private count(kind: string): void {
    this.failuresByKind.set(kind, (this.failuresByKind.get(kind) ?? 0) + 1);
  }

  private async writer(w: number): Promise<void> {
    let turn = w;
    for (let seq = 0; seq < this.opts.maxWritesPerWriter && !this.stopping; seq++) {
      const targets = this.opts.targets();
      if (targets.length === 0) {
        await sleep(this.opts.backoffMs ?? 20);
        continue;
      }
      const sentTo = targets[turn % targets.length]!;
      const key = `${this.opts.prefix}${w}-${seq}`;
      const value = padValue(`${key}:`, this.opts.valueBytes ?? 64);
      const sentAtMs = Date.now();
      let ok = false;
      try {
        const r = await this.cluster.put(sentTo, key, value, this.opts.requestTimeoutMs ?? 3000);
        if (r.status === 200) {
          const revision = (jsonOf<{ revision: number }>(r)).revision;
          const fwd = r.headers['x-qkv-forwarded-to'];
          this.acked.push({ key, value, revision, sentTo, servedBy: typeof fwd === 'string' ? fwd : sentTo, sentAtMs, ackedAtMs: Date.now() });
          ok = true;
        } else {
          this.count(`${r.status} ${jsonCode(r)}`);
          this.unknown.push(key);
        }
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        this.count(`error ${code ?? (/timed out/.test((e as Error).message) ? 'client timeout' : (e as Error).message.slice(0, 40))}`);
        this.unknown.push(key);
      }
      if (!ok) {
        turn++;
        await sleep(this.opts.backoffMs ?? 20);
      }
    }
  }
}

function jsonCode(r: HttpResult): string {
  try {
    return String((JSON.parse(r.body.toString('utf8')) as { code?: string }).code);
  } catch {
    return '?';
  }
}

/** `prefix` padded with '.' to exactly `bytes` bytes (or `prefix` if longer). */
export function padValue(prefix: string, bytes: number): string {
  return prefix.length >= bytes ? prefix : prefix + '.'.repeat(bytes - prefix.length);
}

/**
 * Checks every acknowledged write against one node: GET returns 200, the acked value and the
 * acked revision as x-qkv-mod-revision (keys are written once). Returns the problems found.
 */
export async function verifyAcked(cluster: ProcessCluster, id: string, acked: AckedWrite[], consistency: 'linearizable' | 'stale' = 'linearizable', concurrency = 16): Promise<string[]> {
  const problems: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < acked.length) {
      const a = acked[next++]!;
      let r: HttpResult | undefined;
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          r = await cluster.get(id, a.key, consistency);
          if (r.status !== 503 && r.status !== 504) break;
        } catch {
          r = undefined;
        }
        await sleep(50);
      }
      if (!r) problems.push(`${id}: ${a.key}: no answer`);
      else if (r.status !== 200) problems.push(`${id}: ${a.key} (acked rev ${a.revision} by ${a.servedBy}): HTTP ${r.status} ${r.body.toString().slice(0, 100)}`);
      else if (r.body.toString('utf8') !== a.value) problems.push(`${id}: ${a.key}: value differs`);
      else if (Number(r.headers['x-qkv-mod-revision']) !== a.revision) {
        problems.push(`${id}: ${a.key}: mod revision ${String(r.headers['x-qkv-mod-revision'])} != acked ${a.revision}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return problems;
}
