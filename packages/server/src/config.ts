// Node configuration: command-line flags, QKV_* environment variables and an optional JSON
// config file, merged in that order of precedence (flag > env > file > default) and validated
// once with errors that name the setting.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { TlsFiles } from './tls-material.js';

export class ConfigError extends Error {
  readonly code = 'QKV_INVALID_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface PeerSpec {
  id: string;
  /** host:port — the peer's single port (peer RPC, client RPC and HTTP). */
  address: string;
}

export interface ServeConfig {
  id: string;
  /** host:port this node listens on. */
  listen: string;
  host: string;
  port: number;
  /**
   * With `initialClusterState: 'new'`: the founding voters (including this node). Otherwise the
   * current members, whose connections an empty node accepts until it learns the membership.
   * Ignored once membership is stored on disk.
   */
  peers: PeerSpec[];
  /**
   * etcd's flag. `new`: an empty data directory founds the cluster with `peers` — after the
   * founding handshake (founding.ts). `existing` (the default; `--join` is an alias): an empty
   * data directory starts empty and waits to be added. A data directory with state ignores it.
   */
  initialClusterState: 'new' | 'existing';
  dataDir: string;
  zone: string | undefined;
  /** The shared secret peers prove in every hello. Always required; never from argv. */
  clusterSecret: string;
  logLevel: string;
  /** Milliseconds per Raft tick. */
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  /** Writes waiting for commit; past it new writes get 503 QKV_BUSY. */
  maxPendingProposals: number;
  maxPendingProposalBytes: number;
  /** Linearizable reads waiting for their ReadIndex round. */
  maxPendingReads: number;
  maxKeyBytes: number;
  maxValueBytes: number;
  /** Server-side deadline of a request that names none. */
  requestTimeoutMs: number;
  /** Log compaction: snapshot after this many applied entries since the last one. */
  snapshotEntries: number;
  /** Entries kept behind a snapshot for slightly lagging followers. */
  snapshotKeepEntries: number;
  /**
   * Revisions of history kept readable: the leader compacts history below revision - this through
   * the log (history-retention.ts). 0 keeps all history (compact by hand).
   */
  historyRetainRevisions: number;
  /** Key changes the watch hub keeps in memory for watchers in step; slower ones read history (watch-hub.ts). */
  watchWindowChanges: number;
  /** Watch requests waiting at once on the node before QKV_BUSY. */
  maxWatchers: number;
  /** Watch requests waiting at once on one client connection (or one event stream) before QKV_BUSY. */
  maxWatchersPerConnection: number;
  /** Log compaction also when this many bytes of entries were applied since the last snapshot. */
  snapshotLogBytes: number;
  /** Outgoing snapshot bandwidth per node, bytes per second (0 = unlimited). */
  snapshotRateBytesPerSec: number;
  snapshotChunkBytes: number;
  maxConcurrentSnapshotSends: number;
  /**
   * How the catch-up send rate is set: 'adaptive' (catchup-throttle.ts: from the leader's commit
   * latency and fsync p99, within [min, snapshotRateBytesPerSec]) or 'fixed' (snapshotRateBytesPerSec).
   */
  catchupThrottle: CatchupThrottleMode;
  /** The adaptive throttle counts latency below this (ms) as steady, whatever it learnt. */
  catchupLatencyFloorMs: number;
  /**
   * Client sessions idle longer than this are forgotten (their retries get QKV_SESSION_EXPIRED).
   * Shapes replicated state: must be the same on every node.
   */
  sessionTtlMs: number;
  /**
   * How long an HTTP Idempotency-Key is remembered after its first use (replicated clock).
   * Shapes replicated state: must be the same on every node.
   */
  idempotencyTtlMs: number;
  /** Test-only fault injection (jepsen-lite): extra latency added to every synced write. */
  faultFsyncDelayMs: number;
  /** Test-only: serve PUT /v1/admin/faults (the harness changes faults at run time). */
  enableFaultInjection: boolean;
  /** Test-only: corrupt every Nth snapshot chunk sent, each chunk at most once (0 = off). */
  faultSnapshotCorruptEvery: number;
  /** Test-only: cut a snapshot connection after this many chunks, once per transfer (0 = off). */
  faultSnapshotCutAfterChunks: number;
  /** Bytes of rows all ranges on this node may hold at once (read, not yet answered). */
  maxRangeBytesInFlight: number;
  /** Bytes of request bodies (HTTP) and request frames (WebSocket) this node holds while serving them. */
  maxBufferedRequestBytes: number;
  /** Open connections on the node's port (HTTP and WebSocket, clients and peers). */
  maxConnections: number;
  /** Open connections from one remote address (IPv6: one /64). */
  maxConnectionsPerAddress: number;
  /** New client sessions one WebSocket connection may create. */
  maxSessionsPerConnection: number;
  /** New client sessions one remote address may create per --session-ttl-ms. */
  maxSessionsPerAddress: number;
  /** Bytes of entries kept behind a snapshot at most (fewer than snapshotKeepEntries when large). */
  snapshotKeepBytes: number;
  /** TLS on the node's port and its peer dials (docs/security.md); undefined = plaintext. */
  tls: TlsFiles | undefined;
  /** --insecure: serve plaintext on a non-loopback address anyway (tls.ts is not configured). */
  insecure: boolean;
}

/**
 * The largest client frame (WebSocket) and transaction body (HTTP) a node accepts: room for the
 * largest key and value plus overhead, and never below 2 MiB.
 */
export function clientFrameBytesMax(cfg: Pick<ServeConfig, 'maxKeyBytes' | 'maxValueBytes'>): number {
  return Math.max(2 * 1024 * 1024, cfg.maxValueBytes + cfg.maxKeyBytes + 64 * 1024);
}

export const DEFAULTS = {
  logLevel: 'info',
  tickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 1,
  maxPendingProposals: 8192,
  maxPendingProposalBytes: 64 * 1024 * 1024,
  maxPendingReads: 16384,
  maxKeyBytes: 4096,
  maxValueBytes: 1024 * 1024,
  requestTimeoutMs: 5000,
  snapshotEntries: 20_000,
  snapshotKeepEntries: 5_000,
  historyRetainRevisions: 10_000,
  watchWindowChanges: 10_000,
  maxWatchers: 20_000,
  maxWatchersPerConnection: 1_000,
  snapshotLogBytes: 64 * 1024 * 1024,
  snapshotRateBytesPerSec: 32 * 1024 * 1024,
  snapshotChunkBytes: 1024 * 1024,
  maxConcurrentSnapshotSends: 1,
  catchupThrottle: 'adaptive',
  catchupLatencyFloorMs: 5,
  sessionTtlMs: 60 * 60 * 1000,
  idempotencyTtlMs: 10 * 60 * 1000,
  faultFsyncDelayMs: 0,
  faultSnapshotCorruptEvery: 0,
  faultSnapshotCutAfterChunks: 0,
  maxRangeBytesInFlight: 64 * 1024 * 1024,
  maxBufferedRequestBytes: 64 * 1024 * 1024,
  maxConnections: 8192,
  maxConnectionsPerAddress: 1024,
  maxSessionsPerConnection: 64,
  maxSessionsPerAddress: 1000,
  snapshotKeepBytes: 64 * 1024 * 1024,
} as const;

/** The flags of `quorumkv serve`; each also reads QKV_<NAME> (upper snake case) from the environment. */
const SERVE_FLAGS = {
  id: { type: 'string' },
  listen: { type: 'string' },
  peers: { type: 'string' },
  'initial-cluster-state': { type: 'string' },
  join: { type: 'boolean' },
  data: { type: 'string' },
  zone: { type: 'string' },
  'cluster-secret-file': { type: 'string' },
  config: { type: 'string' },
  'log-level': { type: 'string' },
  'tick-ms': { type: 'string' },
  'election-ticks': { type: 'string' },
  'heartbeat-ticks': { type: 'string' },
  'max-pending-proposals': { type: 'string' },
  'max-pending-proposal-bytes': { type: 'string' },
  'max-pending-reads': { type: 'string' },
  'max-key-bytes': { type: 'string' },
  'max-value-bytes': { type: 'string' },
  'request-timeout-ms': { type: 'string' },
  'snapshot-entries': { type: 'string' },
  'snapshot-keep-entries': { type: 'string' },
  'history-retain-revisions': { type: 'string' },
  'watch-window-changes': { type: 'string' },
  'max-watchers': { type: 'string' },
  'max-watchers-per-connection': { type: 'string' },
  'snapshot-log-bytes': { type: 'string' },
  'snapshot-rate': { type: 'string' },
  'snapshot-chunk-bytes': { type: 'string' },
  'max-concurrent-snapshot-sends': { type: 'string' },
  'catchup-throttle': { type: 'string' },
  'catchup-latency-floor-ms': { type: 'string' },
  'session-ttl-ms': { type: 'string' },
  'idempotency-ttl-ms': { type: 'string' },
  'fault-fsync-delay-ms': { type: 'string' },
  'enable-fault-injection': { type: 'boolean' },
  'fault-snapshot-corrupt-every': { type: 'string' },
  'fault-snapshot-cut-after-chunks': { type: 'string' },
  'max-range-bytes-in-flight': { type: 'string' },
  'max-buffered-request-bytes': { type: 'string' },
  'max-connections': { type: 'string' },
  'max-connections-per-address': { type: 'string' },
  'max-sessions-per-connection': { type: 'string' },
  'max-sessions-per-address': { type: 'string' },
  'snapshot-keep-bytes': { type: 'string' },
  'cert-file': { type: 'string' },
  'key-file': { type: 'string' },
  'trusted-ca-file': { type: 'string' },
  'client-cert-auth': { type: 'boolean' },
  'peer-cert-file': { type: 'string' },
  'peer-key-file': { type: 'string' },
  'peer-trusted-ca-file': { type: 'string' },
  insecure: { type: 'boolean' },
} as const;

export const SERVE_USAGE = `usage: QKV_CLUSTER_SECRET=… quorumkv serve --id ID --listen HOST:PORT --peers ID=HOST:PORT,... --data DIR [options]

  --id ID                    this node's id (letters, digits, - and _)
  --listen HOST:PORT         address to listen on (peers, clients and HTTP share it)
  --peers LIST               e.g. n1=127.0.0.1:7001,n2=127.0.0.1:7002: the founding voters with
                             --initial-cluster-state new (must include --id), else the current members
  --initial-cluster-state new|existing
                             new: an EMPTY data directory founds the cluster, once a majority of
                             --peers answers that it is not founded yet (harmless on a data directory
                             with state: it resumes). existing (default): an empty data directory
                             starts empty and waits for 'quorumkv member add'
  --join                     same as --initial-cluster-state existing
  --data DIR                 data directory (created if missing; reused on restart)
  --zone NAME                failure-domain label (status warns when one zone holds a quorum)
  --cluster-secret-file PATH file holding the shared secret peers authenticate with; or set the
                             environment variable QKV_CLUSTER_SECRET. Required. Never on the
                             command line (argv is visible to every local user in ps)
  --config FILE              JSON file with any of these settings (camelCase keys)
  --log-level LEVEL          trace|debug|info|warn|error (default info)
  --tick-ms N                milliseconds per Raft tick (default ${DEFAULTS.tickMs})
  --election-ticks N         election timeout in ticks, randomized up to 2x (default ${DEFAULTS.electionTicks})
  --heartbeat-ticks N        heartbeat interval in ticks (default ${DEFAULTS.heartbeatTicks})
  --max-pending-proposals N  writes waiting for commit before QKV_BUSY (default ${DEFAULTS.maxPendingProposals})
  --max-pending-proposal-bytes N
  --max-pending-reads N
  --max-key-bytes N          (default ${DEFAULTS.maxKeyBytes})
  --max-value-bytes N        (default ${DEFAULTS.maxValueBytes})
  --request-timeout-ms N     (default ${DEFAULTS.requestTimeoutMs})
  --snapshot-entries N       applied entries between snapshots (default ${DEFAULTS.snapshotEntries})
  --snapshot-keep-entries N  log entries kept behind a snapshot (default ${DEFAULTS.snapshotKeepEntries})
  --history-retain-revisions N
                             revisions of history kept readable; the leader compacts below them
                             through the log, 0 = keep all (default ${DEFAULTS.historyRetainRevisions})
  --watch-window-changes N   recent changes kept in memory for watchers; slower ones read history
                             (default ${DEFAULTS.watchWindowChanges})
  --max-watchers N           watch requests waiting at once before QKV_BUSY (default ${DEFAULTS.maxWatchers})
  --max-watchers-per-connection N
                             the same per client connection (default ${DEFAULTS.maxWatchersPerConnection})
  --snapshot-log-bytes N     also snapshot after this many bytes of log (default ${DEFAULTS.snapshotLogBytes})
  --snapshot-rate BYTES/S    snapshot send rate limit, 0 = unlimited (default ${DEFAULTS.snapshotRateBytesPerSec})
  --snapshot-chunk-bytes N
  --max-concurrent-snapshot-sends N
  --catchup-throttle adaptive|fixed
                             adaptive: the leader slows catch-up sends when its commit latency or
                             fsync p99 rises, within --snapshot-rate; fixed: always --snapshot-rate
                             (default ${DEFAULTS.catchupThrottle})
  --catchup-latency-floor-ms N
                             latency the adaptive throttle always counts as steady (default ${DEFAULTS.catchupLatencyFloorMs})
  --session-ttl-ms N         forget client sessions idle this long (default ${DEFAULTS.sessionTtlMs});
                             must be the same on every node
  --idempotency-ttl-ms N     remember an HTTP Idempotency-Key this long after its first use
                             (default ${DEFAULTS.idempotencyTtlMs}; must be the same on every node)
  --max-range-bytes-in-flight N
                             bytes of rows all ranges may hold at once; past it ranges wait
                             briefly, then get QKV_BUSY (default ${DEFAULTS.maxRangeBytesInFlight})
  --max-buffered-request-bytes N
                             bytes of HTTP bodies + WebSocket request frames held at once; past it
                             requests get QKV_BUSY before their body is read (default ${DEFAULTS.maxBufferedRequestBytes})
  --max-connections N        open connections on the port (default ${DEFAULTS.maxConnections})
  --max-connections-per-address N
                             open connections from one address (default ${DEFAULTS.maxConnectionsPerAddress})
  --max-sessions-per-connection N
                             new client sessions per WebSocket connection (default ${DEFAULTS.maxSessionsPerConnection})
  --max-sessions-per-address N
                             new client sessions per address per session TTL (default ${DEFAULTS.maxSessionsPerAddress})
  --snapshot-keep-bytes N    at most this many bytes of log entries kept behind a snapshot, in
                             memory and on disk (default ${DEFAULTS.snapshotKeepBytes})

TLS (etcd's flag names; docs/security.md). All five of --cert-file, --key-file, --peer-cert-file,
--peer-key-file and --peer-trusted-ca-file, or none. Files are reloaded when they change and on SIGHUP.
  --cert-file PATH           certificate clients see (PEM)
  --key-file PATH            its private key
  --trusted-ca-file PATH     CAs that sign client certificates (required with --client-cert-auth)
  --client-cert-auth         clients (HTTP and WebSocket) must present a certificate those CAs signed
  --peer-cert-file PATH      certificate this node presents to peers; its SAN must name --id
  --peer-key-file PATH       its private key
  --peer-trusted-ca-file PATH
                             CAs that sign peer certificates (a peer is accepted only with one)
  --insecure                 listen on a non-loopback address without TLS (refused otherwise)

Every flag can also be given as an environment variable: --cluster-secret-file = QKV_CLUSTER_SECRET_FILE.
Test-only fault injection (for jepsen-lite and tests; never in production):
  --fault-fsync-delay-ms N, --fault-snapshot-corrupt-every N, --fault-snapshot-cut-after-chunks N,
  --enable-fault-injection (serves PUT /v1/admin/faults {"fsyncDelayMs": N})`;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** Shortest cluster secret accepted (the transport's minimum). */
export const MIN_CLUSTER_SECRET_LENGTH = 16;
/** deploy/cluster.env.example's placeholder: a secret everyone can read in the repository. */
export const PLACEHOLDER_CLUSTER_SECRET = 'change-me-to-a-long-random-string';
/** Where the secret may come from, for error messages. */
const SECRET_SOURCES = 'set the environment variable QKV_CLUSTER_SECRET or pass --cluster-secret-file PATH (or "clusterSecretFile" in --config)';

/** Parses "host:port" (IPv6 as [::1]:7001); throws ConfigError naming `what`. */
export function parseHostPort(v: string, what: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(v.trim());
  if (!m) throw new ConfigError(`${what}: expected HOST:PORT, got "${v}"`);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new ConfigError(`${what}: port must be 1-65535, got ${port}`);
  return { host, port };
}

export function parsePeers(v: string): PeerSpec[] {
  const peers: PeerSpec[] = [];
  for (const part of v.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--peers: expected ID=HOST:PORT, got "${part}"`);
    const id = part.slice(0, eq);
    const address = part.slice(eq + 1);
    if (!ID_RE.test(id)) throw new ConfigError(`--peers: bad node id "${id}"`);
    parseHostPort(address, `--peers ${id}`);
    if (peers.some((p) => p.id === id)) throw new ConfigError(`--peers: node id "${id}" appears twice`);
    peers.push({ id, address });
  }
  return peers;
}

function intSetting(name: string, raw: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return n;
}

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const envName = (flag: string) => `QKV_${flag.replace(/-/g, '_').toUpperCase()}`;

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`--config: cannot read ${path}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`--config: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`--config: ${path} must hold a JSON object`);
  const known = new Set(Object.keys(SERVE_FLAGS).map(camel));
  if ('clusterSecret' in v) throw new ConfigError(`"clusterSecret" in ${path} is not read: ${SECRET_SOURCES}`);
  for (const k of Object.keys(v)) if (!known.has(k)) throw new ConfigError(`--config: unknown setting "${k}" in ${path}`);
  return v as Record<string, unknown>;
}

/** Parses `quorumkv serve` arguments + environment into a validated ServeConfig. */
export function parseServeConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeConfig {
  refuseRemovedFlags(argv);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: SERVE_FLAGS, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const file = typeof values.config === 'string' ? readConfigFile(values.config) : typeof env.QKV_CONFIG === 'string' ? readConfigFile(env.QKV_CONFIG) : {};
  const get = (flag: keyof typeof SERVE_FLAGS): unknown => {
    const v = values[flag];
    if (v !== undefined) return v;
    const e = env[envName(flag)];
    if (e !== undefined && e !== '') return SERVE_FLAGS[flag].type === 'boolean' ? e === '1' || e === 'true' : e;
    return file[camel(flag)];
  };
  const str = (flag: keyof typeof SERVE_FLAGS): string | undefined => {
    const v = get(flag);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new ConfigError(`--${flag} must be a string`);
    return v;
  };
  const num = (flag: keyof typeof SERVE_FLAGS, def: number, min: number, max?: number) => {
    const v = get(flag);
    return v === undefined ? def : intSetting(`--${flag}`, v, min, max);
  };

  const id = str('id');
  if (!id) throw new ConfigError('--id is required (or QKV_ID)');
  if (!ID_RE.test(id)) throw new ConfigError(`--id: bad node id "${id}" (letters, digits, - and _; at most 64)`);
  const listen = str('listen');
  if (!listen) throw new ConfigError('--listen is required (or QKV_LISTEN)');
  const { host, port } = parseHostPort(listen, '--listen');
  const dataDir = str('data');
  if (!dataDir) throw new ConfigError('--data is required (or QKV_DATA)');
  const initialClusterState = parseInitialClusterState(str('initial-cluster-state'), get('join') === true);
  const peersRaw = str('peers');
  const peers = peersRaw ? parsePeers(peersRaw) : [];
  if (initialClusterState === 'new') {
    if (peers.length === 0) throw new ConfigError('--initial-cluster-state new needs --peers (the founding voters)');
    if (!peers.some((p) => p.id === id)) throw new ConfigError(`--peers must include this node (${id}) when founding`);
  }
  const secret = clusterSecret(env, str('cluster-secret-file'));
  const electionTicks = num('election-ticks', DEFAULTS.electionTicks, 2, 10_000);
  const heartbeatTicks = num('heartbeat-ticks', DEFAULTS.heartbeatTicks, 1, 10_000);
  if (heartbeatTicks >= electionTicks) {
    throw new ConfigError(`--heartbeat-ticks (${heartbeatTicks}) must be less than --election-ticks (${electionTicks})`);
  }
  const logLevel = str('log-level') ?? DEFAULTS.logLevel;
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) {
    throw new ConfigError(`--log-level: unknown level "${logLevel}"`);
  }
  const snapshotEntries = num('snapshot-entries', DEFAULTS.snapshotEntries, 10);
  const snapshotKeepEntries = num('snapshot-keep-entries', DEFAULTS.snapshotKeepEntries, 0);
  return {
    id,
    listen,
    host,
    port,
    peers,
    initialClusterState,
    dataDir,
    zone: str('zone'),
    clusterSecret: secret,
    logLevel,
    tickMs: num('tick-ms', DEFAULTS.tickMs, 1, 60_000),
    electionTicks,
    heartbeatTicks,
    maxPendingProposals: num('max-pending-proposals', DEFAULTS.maxPendingProposals, 1),
    maxPendingProposalBytes: num('max-pending-proposal-bytes', DEFAULTS.maxPendingProposalBytes, 1024),
    maxPendingReads: num('max-pending-reads', DEFAULTS.maxPendingReads, 1),
    maxKeyBytes: num('max-key-bytes', DEFAULTS.maxKeyBytes, 1, 64 * 1024),
    // One entry is always sent whole in one transport frame (4 MiB): values stay well below it.
    maxValueBytes: num('max-value-bytes', DEFAULTS.maxValueBytes, 0, 2 * 1024 * 1024),
    requestTimeoutMs: num('request-timeout-ms', DEFAULTS.requestTimeoutMs, 1, 600_000),
    snapshotEntries,
    snapshotKeepEntries,
    historyRetainRevisions: num('history-retain-revisions', DEFAULTS.historyRetainRevisions, 0),
    watchWindowChanges: num('watch-window-changes', DEFAULTS.watchWindowChanges, 1),
    maxWatchers: num('max-watchers', DEFAULTS.maxWatchers, 1),
    maxWatchersPerConnection: num('max-watchers-per-connection', DEFAULTS.maxWatchersPerConnection, 1),
    snapshotLogBytes: num('snapshot-log-bytes', DEFAULTS.snapshotLogBytes, 1024),
    snapshotRateBytesPerSec: num('snapshot-rate', DEFAULTS.snapshotRateBytesPerSec, 0),
    // A chunk travels in one transport frame (4 MiB at most), with room for the frame's fields.
    snapshotChunkBytes: num('snapshot-chunk-bytes', DEFAULTS.snapshotChunkBytes, 1024, 2 * 1024 * 1024),
    maxConcurrentSnapshotSends: num('max-concurrent-snapshot-sends', DEFAULTS.maxConcurrentSnapshotSends, 1, 64),
    catchupThrottle: throttleMode(str('catchup-throttle')),
    catchupLatencyFloorMs: num('catchup-latency-floor-ms', DEFAULTS.catchupLatencyFloorMs, 1, 60_000),
    sessionTtlMs: num('session-ttl-ms', DEFAULTS.sessionTtlMs, 1000),
    idempotencyTtlMs: num('idempotency-ttl-ms', DEFAULTS.idempotencyTtlMs, 1000),
    faultFsyncDelayMs: num('fault-fsync-delay-ms', DEFAULTS.faultFsyncDelayMs, 0, 60_000),
    enableFaultInjection: get('enable-fault-injection') === true,
    faultSnapshotCorruptEvery: num('fault-snapshot-corrupt-every', DEFAULTS.faultSnapshotCorruptEvery, 0),
    faultSnapshotCutAfterChunks: num('fault-snapshot-cut-after-chunks', DEFAULTS.faultSnapshotCutAfterChunks, 0),
    ...admissionLimits(num),
    ...tlsSettings(str, get, host),
  };
}

type StrSetting = (flag: keyof typeof SERVE_FLAGS) => string | undefined;

/** The five files that turn TLS on; all or none. */
const TLS_REQUIRED_FLAGS = ['cert-file', 'key-file', 'peer-cert-file', 'peer-key-file', 'peer-trusted-ca-file'] as const;

/**
 * The TLS settings, and the safe-by-default rule: a node listening on a non-loopback address
 * without TLS refuses to start unless --insecure says that is intended. (The cluster secret is
 * always required, see clusterSecret.) The files themselves are read and checked at start
 * (tls-material.ts), with errors that name the flag.
 */
function tlsSettings(str: StrSetting, get: (flag: keyof typeof SERVE_FLAGS) => unknown, host: string): { tls: TlsFiles | undefined; insecure: boolean } {
  const insecure = get('insecure') === true;
  const given = TLS_REQUIRED_FLAGS.filter((f) => str(f) !== undefined);
  const trustedCaFile = str('trusted-ca-file');
  const clientCertAuth = get('client-cert-auth') === true;
  if (given.length === 0) {
    if (clientCertAuth || trustedCaFile !== undefined) throw new ConfigError('--client-cert-auth and --trusted-ca-file need TLS: also give ' + TLS_REQUIRED_FLAGS.map((f) => `--${f}`).join(' '));
    if (!insecure && !isLoopbackHost(host)) {
      throw new ConfigError(`refusing to listen on ${host} without TLS: give --cert-file, --key-file, --peer-cert-file, --peer-key-file and --peer-trusted-ca-file (see 'quorumkv certs init'), or pass --insecure to serve plaintext anyway`);
    }
    return { tls: undefined, insecure };
  }
  const missing = TLS_REQUIRED_FLAGS.filter((f) => !given.includes(f));
  if (missing.length > 0) throw new ConfigError(`TLS is partly configured: also give ${missing.map((f) => `--${f}`).join(', ')} (all five or none)`);
  if (clientCertAuth && trustedCaFile === undefined) throw new ConfigError('--client-cert-auth needs --trusted-ca-file (the CAs that sign client certificates)');
  return {
    tls: {
      certFile: str('cert-file')!,
      keyFile: str('key-file')!,
      trustedCaFile,
      clientCertAuth,
      peerCertFile: str('peer-cert-file')!,
      peerKeyFile: str('peer-key-file')!,
      peerTrustedCaFile: str('peer-trusted-ca-file')!,
    },
    insecure,
  };
}

/** True for 127.0.0.0/8, ::1 and localhost: addresses other machines cannot reach. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** How the catch-up send rate is set (--catchup-throttle). */
export type CatchupThrottleMode = 'adaptive' | 'fixed';

function throttleMode(v: string | undefined): CatchupThrottleMode {
  if (v === undefined) return DEFAULTS.catchupThrottle;
  if (v === 'adaptive' || v === 'fixed') return v;
  throw new ConfigError(`--catchup-throttle must be adaptive or fixed (got "${v}")`);
}

type NumSetting = (flag: keyof typeof SERVE_FLAGS, def: number, min: number, max?: number) => number;

/**
 * The admission limits (src/admission.ts). A range holds two rows of the largest size while it
 * reads, and a request frame holds one key and value: each budget must fit at least that.
 */
function admissionLimits(num: NumSetting) {
  // Parsed again (same flags, same checks) so these limits stay one self-contained block.
  const maxKeyBytes = num('max-key-bytes', DEFAULTS.maxKeyBytes, 1, 64 * 1024);
  const maxValueBytes = num('max-value-bytes', DEFAULTS.maxValueBytes, 0, 2 * 1024 * 1024);
  const twoRows = 2 * (maxKeyBytes + maxValueBytes + 64);
  const oneFrame = maxKeyBytes + maxValueBytes + 64 * 1024;
  return {
    maxRangeBytesInFlight: num('max-range-bytes-in-flight', DEFAULTS.maxRangeBytesInFlight, twoRows),
    maxBufferedRequestBytes: num('max-buffered-request-bytes', DEFAULTS.maxBufferedRequestBytes, oneFrame),
    maxConnections: num('max-connections', DEFAULTS.maxConnections, 1),
    maxConnectionsPerAddress: num('max-connections-per-address', DEFAULTS.maxConnectionsPerAddress, 1),
    maxSessionsPerConnection: num('max-sessions-per-connection', DEFAULTS.maxSessionsPerConnection, 1),
    maxSessionsPerAddress: num('max-sessions-per-address', DEFAULTS.maxSessionsPerAddress, 1),
    snapshotKeepBytes: num('snapshot-keep-bytes', DEFAULTS.snapshotKeepBytes, 0),
  };
}

/**
 * Flags that no longer exist get an error that says what to do instead, before the generic
 * "unknown option". `--cluster-secret` is refused because argv is visible to every local user.
 */
function refuseRemovedFlags(argv: string[]): void {
  for (const a of argv) {
    if (a === '--cluster-secret' || a.startsWith('--cluster-secret=')) {
      throw new ConfigError(`--cluster-secret is not accepted: a secret on the command line is visible to every local user (ps). Instead ${SECRET_SOURCES}`);
    }
  }
}

function parseInitialClusterState(raw: string | undefined, join: boolean): 'new' | 'existing' {
  if (raw !== undefined && raw !== 'new' && raw !== 'existing') {
    throw new ConfigError(`--initial-cluster-state must be "new" or "existing", got "${raw}"`);
  }
  if (raw === 'new' && join) throw new ConfigError('--join means --initial-cluster-state existing; it cannot be combined with "new"');
  return raw ?? 'existing';
}

/** The cluster secret from QKV_CLUSTER_SECRET or a file; validated (length, placeholder). */
export function clusterSecret(env: NodeJS.ProcessEnv, file: string | undefined): string {
  const fromEnv = env.QKV_CLUSTER_SECRET;
  if (fromEnv !== undefined && fromEnv !== '' && file !== undefined) {
    throw new ConfigError('both QKV_CLUSTER_SECRET and --cluster-secret-file are set: give the cluster secret one way');
  }
  let secret: string;
  if (file !== undefined) {
    try {
      secret = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new ConfigError(`--cluster-secret-file: cannot read ${file}: ${(e as Error).message}`);
    }
  } else if (fromEnv !== undefined && fromEnv !== '') secret = fromEnv;
  else throw new ConfigError(`no cluster secret: the peer endpoint always requires one; ${SECRET_SOURCES}`);
  const where = file !== undefined ? `the secret in ${file}` : 'QKV_CLUSTER_SECRET';
  if (secret === PLACEHOLDER_CLUSTER_SECRET || /^change-?me/i.test(secret)) {
    throw new ConfigError(`${where} is the placeholder from deploy/cluster.env.example; generate one, e.g. \`openssl rand -hex 24\``);
  }
  if (secret.length < MIN_CLUSTER_SECRET_LENGTH) throw new ConfigError(`${where} must be at least ${MIN_CLUSTER_SECRET_LENGTH} characters`);
  return secret;
}
