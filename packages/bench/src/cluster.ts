// Local three-member clusters of the systems under test, on 127.0.0.1, in temporary directories:
// quorumkv (`node packages/server/dist/cli.js serve`) and etcd (Debian's `etcd-server`).
// Both expose the same small surface so that run, compare and failover treat them alike.
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchJson, fetchText, freePorts, onCleanup, pollUntil, sleep, track } from './procs.js';

/** The systems the harness can drive. */
export type TargetName = 'quorumkv' | 'etcd';

/** What one member reports about itself. */
export interface MemberStatus {
  /** This member believes it is the leader. */
  isLeader: boolean;
  term: number;
  /** Highest log index applied to its state machine. */
  appliedIndex: number;
  /** Highest log index it knows to be committed (etcd: its raft index). */
  commitIndex: number;
}

/** Per member: counter name → value (null when the member did not answer). */
export type ServerCounters = Record<string, Record<string, number | null>>;

/** Histogram `_sum`/`_count` pairs each target exposes, under a common short name. */
const SERVER_HISTOGRAMS: Record<TargetName, Record<string, string>> = {
  quorumkv: { fsync: 'qkv_storage_fsync_seconds', batch: 'qkv_log_batch_entries' },
  etcd: { fsync: 'etcd_disk_wal_fsync_duration_seconds' },
};

/** Reads the `_sum` and `_count` of each of `histograms` (short name → metric) from an exposition (pure). */
export function histogramCounters(text: string, histograms: Record<string, string>): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [short, metric] of Object.entries(histograms)) {
    out[`${short}Sum`] = promCounter(text, `${metric}_sum`);
    out[`${short}Count`] = promCounter(text, `${metric}_count`);
  }
  return out;
}

/** One member of a local cluster. */
export interface Member {
  readonly name: string;
  /** The address clients use (host:port for quorumkv, http://host:port for etcd). */
  readonly clientEndpoint: string;
  /** Current process id, undefined while it is down. */
  pid(): number | undefined;
}

/** A local cluster the harness started and will stop. */
export interface LocalCluster {
  readonly target: TargetName;
  /** Temporary directory holding every member's data and log. */
  readonly dir: string;
  readonly members: readonly Member[];
  /** Client endpoints of all members, in the form the target's client library expects. */
  readonly endpoints: string[];
  /** The CA file clients must trust when the cluster runs TLS (quorumkv `--tls`), else undefined. */
  readonly tlsCaFile: string | undefined;
  /** The member's own view, or undefined when it does not answer within `timeoutMs`. */
  status(index: number, timeoutMs: number): Promise<MemberStatus | undefined>;
  /** Sum over live members of the target's leader-change counter, per member. */
  leaderChanges(): Promise<Record<string, number | null>>;
  /** Server-side counters of every live member (fsyncs, append batches), summed over label sets. */
  serverCounters(): Promise<ServerCounters>;
  /** kill -9 a member. */
  kill9(index: number): void;
  /** Starts a killed member again on its data directory. */
  restart(index: number): void;
  /** Stops every member and removes the data unless kept (or `keepForDebugging`). Idempotent. */
  stop(keepForDebugging?: boolean): Promise<void>;
}

/** Options shared by both cluster kinds. */
export interface ClusterOptions {
  /** Keep the data directory (and logs) after stop. */
  keepData: boolean;
  /** Extra arguments for every member (e.g. `--log-level warn`). */
  extraArgs: string[];
  /** quorumkv only: flags for `node` itself, before the script (e.g. `--cpu-prof --cpu-prof-dir D`). */
  nodeArgs: string[];
  /** Longest wait for a leader after start, in ms. */
  startTimeoutMs: number;
  /** quorumkv only: TLS on every link, with development certificates made in the cluster directory. */
  tls?: boolean;
}

/** Members per cluster. */
export const CLUSTER_SIZE = 3;
/** Timeout of one status probe while waiting for a cluster to form. */
const STATUS_PROBE_MS = 500;
/** Grace between SIGTERM and SIGKILL at stop. */
const STOP_GRACE_MS = 3000;

/** The quorumkv server CLI next to this package (packages/server/dist/cli.js). */
export function defaultServerCli(): string {
  return fileURLToPath(new URL('../../server/dist/cli.js', import.meta.url));
}

class ManagedMember implements Member {
  child: ChildProcess | undefined;
  constructor(
    readonly name: string,
    readonly clientEndpoint: string,
    readonly command: string,
    readonly args: () => string[],
    readonly logFile: string,
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  pid(): number | undefined {
    const c = this.child;
    return c && c.exitCode === null && c.signalCode === null ? c.pid : undefined;
  }

  start(): void {
    if (this.pid() !== undefined) return;
    const fd = openSync(this.logFile, 'a');
    try {
      // The log goes straight to a file: the harness process never copies server output.
      this.child = track(spawn(this.command, this.args(), { stdio: ['ignore', fd, fd], env: this.env }));
    } finally {
      closeSync(fd);
    }
    this.child.on('error', (e) => process.stderr.write(`bench: ${this.name}: ${e.message}\n`));
  }

  kill9(): void {
    this.child?.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    await Promise.race([exited, sleep(STOP_GRACE_MS)]);
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await Promise.race([exited, sleep(STOP_GRACE_MS)]);
    }
  }
}

abstract class BaseCluster implements LocalCluster {
  abstract readonly target: TargetName;
  protected readonly managed: ManagedMember[] = [];
  private stopped = false;
  private readonly unregister: () => void;
  tlsCaFile: string | undefined;
  /** The CA's PEM when the cluster runs TLS (status and metrics requests trust it). */
  protected ca: Buffer | undefined;

  constructor(
    readonly dir: string,
    protected readonly opts: ClusterOptions,
  ) {
    this.unregister = onCleanup(() => this.stop());
  }

  get members(): readonly Member[] {
    return this.managed;
  }
  get endpoints(): string[] {
    return this.managed.map((m) => m.clientEndpoint);
  }

  abstract status(index: number, timeoutMs: number): Promise<MemberStatus | undefined>;
  abstract leaderChanges(): Promise<Record<string, number | null>>;
  protected abstract metricsUrl(m: ManagedMember): string;

  async serverCounters(): Promise<ServerCounters> {
    const texts = await Promise.all(this.managed.map((m) => (m.pid() === undefined ? undefined : fetchText(this.metricsUrl(m), 2000, this.ca))));
    const out: ServerCounters = {};
    this.managed.forEach((m, i) => {
      const text = texts[i];
      out[m.name] = text === undefined ? {} : histogramCounters(text, SERVER_HISTOGRAMS[this.target]);
    });
    return out;
  }

  kill9(index: number): void {
    this.member(index).kill9();
  }
  restart(index: number): void {
    this.member(index).start();
  }

  protected member(index: number): ManagedMember {
    const m = this.managed[index];
    if (!m) throw new Error(`no member ${index}`);
    return m;
  }

  /** Starts all members and waits until one is leader and every member answers. */
  async startAll(): Promise<void> {
    for (const m of this.managed) m.start();
    const ok = await pollUntil(
      async () => {
        const all = await Promise.all(this.managed.map((_, i) => this.status(i, STATUS_PROBE_MS)));
        return all.every((s) => s !== undefined) && all.some((s) => s?.isLeader) ? true : undefined;
      },
      this.opts.startTimeoutMs,
      100,
    );
    if (!ok) {
      const dead = this.managed.filter((m) => m.pid() === undefined).map((m) => m.name);
      await this.stop(true);
      throw new Error(
        `${this.target} cluster did not elect a leader within ${this.opts.startTimeoutMs} ms` +
          (dead.length ? ` (exited: ${dead.join(', ')})` : '') +
          `; logs kept in ${this.dir}`,
      );
    }
  }

  async stop(keepForDebugging = false): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unregister();
    await Promise.all(this.managed.map((m) => m.stop()));
    if (!this.opts.keepData && !keepForDebugging) rmSync(this.dir, { recursive: true, force: true });
  }
}

function num(v: unknown): number {
  const n = typeof v === 'string' ? Number(v) : typeof v === 'number' ? v : NaN;
  return Number.isFinite(n) ? n : 0;
}

/** Sums the samples of a Prometheus counter in a text exposition (pure). */
export function promCounter(text: string, name: string): number | null {
  let sum: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const v = Number(line.trim().split(/\s+/).pop());
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}

/** Three `quorumkv serve` processes. */
class QuorumkvCluster extends BaseCluster {
  readonly target = 'quorumkv' as const;

  constructor(dir: string, opts: ClusterOptions, serverCli: string, ports: number[]) {
    super(dir, opts);
    const ids = ports.map((_, i) => `n${i + 1}`);
    const peers = ids.map((id, i) => `${id}=127.0.0.1:${ports[i]!}`).join(',');
    // The secret travels in the environment, never on argv; the founding flag is ignored on restart.
    const env = { ...process.env, QKV_CLUSTER_SECRET: randomBytes(24).toString('hex'), QKV_CLUSTER_SECRET_FILE: '' };
    const certs = join(dir, 'certs');
    if (opts.tls) {
      const made = spawnSync(process.execPath, [serverCli, 'certs', 'init', '--nodes', ids.join(','), '--out', certs], { encoding: 'utf8' });
      if (made.status !== 0) throw new Error(`certs init failed: ${made.stderr}`);
      this.tlsCaFile = join(certs, 'ca.crt');
      this.ca = readFileSync(this.tlsCaFile);
    }
    for (const [i, id] of ids.entries()) {
      const listen = `127.0.0.1:${ports[i]!}`;
      const f = (name: string) => join(certs, name);
      const tls = opts.tls
        ? ['--cert-file', f(`${id}.crt`), '--key-file', f(`${id}.key`), '--peer-cert-file', f(`${id}.crt`), '--peer-key-file', f(`${id}.key`), '--peer-trusted-ca-file', f('ca.crt')]
        : [];
      const args = ['serve', '--id', id, '--listen', listen, '--peers', peers, '--data', join(dir, id), '--initial-cluster-state', 'new', ...tls, ...opts.extraArgs];
      this.managed.push(new ManagedMember(id, listen, process.execPath, () => [...opts.nodeArgs, serverCli, ...args], join(dir, `${id}.log`), env));
    }
  }

  async status(index: number, timeoutMs: number): Promise<MemberStatus | undefined> {
    const m = this.member(index);
    if (m.pid() === undefined) return undefined;
    const j = (await fetchJson(`${this.scheme}://${m.clientEndpoint}/v1/status`, timeoutMs, {}, this.ca)) as Record<string, unknown> | undefined;
    if (!j || typeof j !== 'object') return undefined;
    return { isLeader: j.role === 'leader', term: num(j.term), appliedIndex: num(j.appliedIndex), commitIndex: num(j.commitIndex) };
  }

  protected metricsUrl(m: ManagedMember): string {
    return `${this.scheme}://${m.clientEndpoint}/metrics`;
  }

  private get scheme(): string {
    return this.ca ? 'https' : 'http';
  }

  async leaderChanges(): Promise<Record<string, number | null>> {
    const out: Record<string, number | null> = {};
    for (const m of this.managed) {
      const text = m.pid() === undefined ? undefined : await fetchText(this.metricsUrl(m), 2000, this.ca);
      out[m.name] = text === undefined ? null : promCounter(text, 'qkv_raft_leader_changes_total');
    }
    return out;
  }
}

/** Three etcd members (Debian `etcd-server`), default heartbeat/election settings. */
class EtcdCluster extends BaseCluster {
  readonly target = 'etcd' as const;

  constructor(dir: string, opts: ClusterOptions, etcdBin: string, ports: number[]) {
    super(dir, opts);
    const names = [0, 1, 2].map((i) => `m${i + 1}`);
    const peerUrl = (i: number) => `http://127.0.0.1:${ports[CLUSTER_SIZE + i]!}`;
    const initialCluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
    for (const [i, name] of names.entries()) {
      const clientUrl = `http://127.0.0.1:${ports[i]!}`;
      const args = [
        '--name', name, '--data-dir', join(dir, `${name}.data`),
        '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl(i), '--initial-advertise-peer-urls', peerUrl(i),
        '--initial-cluster', initialCluster, '--initial-cluster-token', `qkv-bench-${ports[0]!}`,
        '--initial-cluster-state', 'new', '--logger', 'zap', '--log-outputs', 'stderr',
        ...opts.extraArgs,
      ];
      this.managed.push(new ManagedMember(name, clientUrl, etcdBin, () => args, join(dir, `${name}.log`)));
    }
  }

  async status(index: number, timeoutMs: number): Promise<MemberStatus | undefined> {
    const m = this.member(index);
    if (m.pid() === undefined) return undefined;
    // The gRPC gateway of etcd 3.4; uint64 fields arrive as decimal strings, compared as strings.
    const j = (await fetchJson(`${m.clientEndpoint}/v3/maintenance/status`, timeoutMs, { method: 'POST', body: '{}' })) as
      | { header?: { member_id?: string; raft_term?: string }; leader?: string; raftIndex?: string; raftAppliedIndex?: string; raftTerm?: string }
      | undefined;
    if (!j || !j.header) return undefined;
    return {
      isLeader: j.leader !== undefined && j.leader === j.header.member_id,
      term: num(j.raftTerm ?? j.header.raft_term),
      appliedIndex: num(j.raftAppliedIndex ?? j.raftIndex),
      commitIndex: num(j.raftIndex),
    };
  }

  protected metricsUrl(m: ManagedMember): string {
    return `${m.clientEndpoint}/metrics`;
  }

  async leaderChanges(): Promise<Record<string, number | null>> {
    const out: Record<string, number | null> = {};
    for (const m of this.managed) {
      const text = m.pid() === undefined ? undefined : await fetchText(`${m.clientEndpoint}/metrics`, 2000);
      out[m.name] = text === undefined ? null : promCounter(text, 'etcd_server_leader_changes_seen_total');
    }
    return out;
  }
}

/** The message printed when etcd is not installed. */
export const ETCD_INSTALL_HINT =
  'etcd is not installed. On Debian/Ubuntu: `sudo apt-get install -y etcd-server etcd-client` ' +
  '(the baseline used 3.4.23), or pass --etcd-bin PATH, or point at a running cluster with --endpoints.';

/** Finds the etcd binary: the given path, else `etcd` on PATH, else /usr/bin/etcd. */
export function findEtcd(explicit: string | undefined): string | undefined {
  if (explicit) return existsSync(explicit) ? explicit : undefined;
  const r = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' });
  const onPath = r.status === 0 ? r.stdout.trim() : '';
  if (onPath) return onPath;
  return existsSync('/usr/bin/etcd') ? '/usr/bin/etcd' : undefined;
}

/** Where to find the programs under test. */
export interface Programs {
  serverCli: string;
  etcdBin: string | undefined;
}

/** The program that runs members of `target`; throws a message saying how to get it when missing. */
export function checkProgram(target: TargetName, programs: Programs): string {
  if (target === 'quorumkv') {
    if (!existsSync(programs.serverCli)) {
      throw new Error(`${programs.serverCli} not found; build it first: pnpm exec tsc -b packages/server packages/client`);
    }
    return programs.serverCli;
  }
  const etcd = findEtcd(programs.etcdBin);
  if (!etcd) throw new Error(ETCD_INSTALL_HINT);
  return etcd;
}

/** Starts a fresh local 3-member cluster of `target` in a new temporary directory. */
export async function startCluster(target: TargetName, programs: Programs, opts: ClusterOptions): Promise<LocalCluster> {
  const program = checkProgram(target, programs);
  const ports = await freePorts(CLUSTER_SIZE * 2);
  const dir = mkdtempSync(join(tmpdir(), `qkv-bench-${target}-`));
  const cluster: BaseCluster =
    target === 'quorumkv'
      ? new QuorumkvCluster(dir, opts, program, ports.slice(0, CLUSTER_SIZE))
      : new EtcdCluster(dir, opts, program, ports);
  await cluster.startAll();
  return cluster;
}

/** The index of a member that says it is leader (first found), or undefined. */
export async function findLeader(c: LocalCluster, timeoutMs: number): Promise<{ index: number; status: MemberStatus } | undefined> {
  const all = await Promise.all(c.members.map((_, i) => c.status(i, timeoutMs)));
  const index = all.findIndex((s) => s?.isLeader);
  const status = all[index];
  return index >= 0 && status ? { index, status } : undefined;
}
