// Client-side CLI commands: they talk HTTP to any node of --endpoints (or QKV_ENDPOINTS), trying
// the next endpoint when one cannot be reached. Followers forward writes to the leader.
import { parseArgs } from 'node:util';
import type { ConnectionOptions } from 'node:tls';
import { ConfigError } from './config.js';
import { fetchNode } from './node-fetch.js';
import { cliTls, CLI_TLS_FLAGS } from './cli-tls.js';
import { SNAPSHOT_USAGE, runSnapshotCommand } from './backup-cli.js';
import { runWatchCli } from './watch-cli.js';
import { isAdminPath } from './admin-auth.js';
import { cliAdminHeaders } from './cli-secret.js';
import { HEALTH_MAX_FSYNC_MS_DEFAULT, HEALTH_MAX_LAG_ENTRIES_DEFAULT, assessHealth, formatHealth, probeCluster } from './health-cli.js';

export const ADMIN_USAGE = `  member add ID HOST:PORT [--learner] [--zone Z] | member promote ID | member remove ID | member list
  member zone ID ZONE          record a member's failure domain (a node records its own --zone itself)
  leader transfer ID           hand leadership to ID
  health [--json] [--endpoints-only] [--max-lag-entries N] [--max-fsync-ms N]
                               ask every member; exit 1 unless there is one agreed leader and every
                               member answers, has storage and votes, keeps up and syncs in time
  snapshot-rate BYTES_PER_SEC  change the snapshot send rate limit on every node (0 = unlimited)
  snapshot-rate pause|resume   stop (and later restart) every catch-up snapshot send on every node
  maintenance on|off|status    freeze (or unfreeze) membership changes and automatic leader
                               transfers on every node; status shows each node's switch
${SNAPSHOT_USAGE}
  compact REVISION             compact history at REVISION on every node (through the log); reads
                               below it then fail QKV_COMPACTED
  watch KEY [--prefix] [--rev N] [--prev] [--count N] [--progress]
                               print each change of KEY (or of every key under it) as a JSON line,
                               from revision N (default: from now on); resumes on another endpoint
                               when a node goes away
  del KEY --prefix | del FROM TO
                               delete every key starting with KEY, or in [FROM, TO), at one revision
  txn [FILE|-] [--base64]      run a JSON transaction {compare, success, failure} read from FILE or
                               stdin (docs/transactions.md); prints the JSON answer

common options: --endpoints 127.0.0.1:7001,127.0.0.1:7002 (env QKV_ENDPOINTS; default 127.0.0.1:7001-7003)
                --timeout-ms N (default 5000)
                --cacert FILE (env QKV_CACERT): talk HTTPS, trusting the CAs in FILE; the node's
                certificate must name the endpoint's host. --cert FILE --key FILE (env QKV_CERT,
                QKV_KEY): a client certificate, for a cluster run with --client-cert-auth
                --cluster-secret-file PATH (env QKV_CLUSTER_SECRET_FILE, or QKV_CLUSTER_SECRET): the
                  secret that authenticates admin commands; default ./data/cluster-secret if present`;

interface Common {
  endpoints: string[];
  timeoutMs: number;
  /** HTTPS options from --cacert/--cert/--key; undefined = plain HTTP. */
  tls: ConnectionOptions | undefined;
  /** The cluster secret file named by --cluster-secret-file, read only by admin commands. */
  secretFile?: string;
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
}

function parseCommon(argv: string[], extra: Record<string, { type: 'string' | 'boolean' }> = {}): Common {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { endpoints: { type: 'string' }, 'timeout-ms': { type: 'string' }, 'cluster-secret-file': { type: 'string' }, ...CLI_TLS_FLAGS, ...extra },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const raw = (parsed.values.endpoints as string | undefined) ?? process.env.QKV_ENDPOINTS ?? '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003';
  const endpoints = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (endpoints.length === 0) throw new ConfigError('--endpoints is empty');
  const timeoutMs = Number(parsed.values['timeout-ms'] ?? 5000);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new ConfigError('--timeout-ms must be a positive integer');
  const tls = cliTls(parsed.values as Record<string, string | boolean | undefined>);
  const secretFile = parsed.values['cluster-secret-file'] as string | undefined;
  return { endpoints, timeoutMs, tls, ...(secretFile !== undefined ? { secretFile } : {}), positionals: parsed.positionals, values: parsed.values };
}

/** Sends one request to the first endpoint that answers; an admin request carries the admin token. */
export async function httpCall(c: Pick<Common, 'endpoints' | 'timeoutMs' | 'tls' | 'secretFile'>, method: string, path: string, body?: string | Uint8Array): Promise<Response> {
  let lastErr: unknown;
  const headers = isAdminPath(path.split('?')[0]!) ? cliAdminHeaders(c.secretFile) : {};
  for (const ep of c.endpoints) {
    try {
      return await fetchNode(ep, path, { method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(c.timeoutMs) }, c.tls);
    } catch (e) {
      lastErr = e;
    }
  }
  const hint = c.tls === undefined ? ' (a node serving TLS needs --cacert)' : '';
  throw new Error(`no endpoint answered (${c.endpoints.join(', ')}): ${(lastErr as Error)?.message ?? lastErr}${hint}`);
}

/**
 * Sends one request to EVERY endpoint (a per-node switch), printing each answer; exits 1 when any
 * endpoint failed or could not be reached (that node keeps its old setting: run it again).
 */
async function onEveryEndpoint(c: Common, method: string, path: string, body?: string): Promise<number> {
  let failures = 0;
  for (const ep of c.endpoints) {
    try {
      const r = await httpCall({ ...c, endpoints: [ep] }, method, path, body);
      console.log(`${ep}: ${r.status} ${await r.text()}`);
      if (!r.ok) failures++;
    } catch (e) {
      console.log(`${ep}: unreachable (${(e as Error).message})`);
      failures++;
    }
  }
  return failures === 0 ? 0 : 1;
}

async function printResult(r: Response, raw = false): Promise<number> {
  const text = await r.text();
  if (raw && r.ok) process.stdout.write(text + (text.endsWith('\n') ? '' : '\n'));
  else console.log(text);
  return r.ok ? 0 : 1;
}

const keyPath = (k: string) => `/v1/kv/${encodeURIComponent(k)}`;

function need(c: Common, n: number, usage: string): string[] {
  if (c.positionals.length !== n) throw new ConfigError(`usage: quorumkv ${usage}`);
  return c.positionals;
}

export async function runAdminCommand(cmd: string, argv: string[]): Promise<number> {
  switch (cmd) {
    case 'put': {
      const c = parseCommon(argv);
      const [k, v] = need(c, 2, 'put KEY VALUE');
      return printResult(await httpCall(c, 'PUT', keyPath(k!), v));
    }
    case 'get': {
      const c = parseCommon(argv, { stale: { type: 'boolean' }, rev: { type: 'string' } });
      const [k] = need(c, 1, 'get KEY [--stale] [--rev N]');
      const query = new URLSearchParams();
      if (c.values.stale) query.set('consistency', 'stale');
      if (typeof c.values.rev === 'string') query.set('revision', c.values.rev);
      const q = query.toString();
      return printResult(await httpCall(c, 'GET', keyPath(k!) + (q ? `?${q}` : '')), true);
    }
    case 'watch':
      return watch(argv);
    case 'compact': {
      const c = parseCommon(argv);
      const [revision] = need(c, 1, 'compact REVISION');
      return printResult(await httpCall(c, 'POST', `/v1/compact?revision=${encodeURIComponent(revision!)}`));
    }
    case 'del':
    case 'delete':
      return del(argv);
    case 'txn':
      return txn(argv);
    case 'status': {
      const c = parseCommon(argv);
      need(c, 0, 'status');
      return printStatus(c);
    }
    case 'member':
      return member(argv);
    case 'health':
      return health(argv);
    case 'leader': {
      const c = parseCommon(argv);
      const [sub, id] = c.positionals;
      if (sub !== 'transfer' || !id || c.positionals.length !== 2) throw new ConfigError('usage: quorumkv leader transfer ID');
      return printResult(await httpCall(c, 'POST', '/v1/admin/leader/transfer', JSON.stringify({ id })));
    }
    case 'snapshot':
      return runSnapshotCommand(argv);
    case 'snapshot-rate': {
      const c = parseCommon(argv);
      const [arg] = need(c, 1, 'snapshot-rate BYTES_PER_SEC|pause|resume');
      const body = arg === 'pause' || arg === 'resume' ? { paused: arg === 'pause' } : { bytesPerSecond: Number(arg) };
      if (!('paused' in body) && !/^\d+$/.test(arg!)) throw new ConfigError('snapshot-rate takes pause, resume or a non-negative integer (bytes per second)');
      return onEveryEndpoint(c, 'PUT', '/v1/admin/snapshot-rate', JSON.stringify(body));
    }
    case 'maintenance': {
      const c = parseCommon(argv);
      const [arg] = need(c, 1, 'maintenance on|off|status');
      if (arg === 'status') return onEveryEndpoint(c, 'GET', '/v1/admin/maintenance');
      if (arg !== 'on' && arg !== 'off') throw new ConfigError('usage: quorumkv maintenance on|off|status');
      return onEveryEndpoint(c, 'PUT', '/v1/admin/maintenance', JSON.stringify({ on: arg === 'on' }));
    }
    default:
      throw new ConfigError(`unknown command "${cmd}" (quorumkv --help)`);
  }
}

/** `del KEY`, `del KEY --prefix` (every key starting with KEY) or `del FROM TO` ([FROM, TO)). */
async function del(argv: string[]): Promise<number> {
  const c = parseCommon(argv, { prefix: { type: 'boolean' } });
  const usage = 'del KEY [--prefix] | del FROM TO';
  if (c.positionals.length === 2 && !c.values.prefix) {
    const [from, to] = c.positionals as [string, string];
    return printResult(await httpCall(c, 'DELETE', `/v1/kv?${new URLSearchParams({ start: from, end: to }).toString()}`));
  }
  const [k] = need(c, 1, usage);
  if (c.values.prefix) return printResult(await httpCall(c, 'DELETE', `/v1/kv?${new URLSearchParams({ prefix: k! }).toString()}`));
  return printResult(await httpCall(c, 'DELETE', keyPath(k!)));
}

/** Most bytes of a transaction read from a file or stdin (the server's own body limit is about as large). */
export const TXN_INPUT_BYTES_MAX = 4 * 1024 * 1024;

/** `txn [FILE|-] [--base64]`: posts the JSON transaction in FILE (or stdin) to /v1/txn. */
async function txn(argv: string[]): Promise<number> {
  const c = parseCommon(argv, { base64: { type: 'boolean' } });
  if (c.positionals.length > 1) throw new ConfigError('usage: quorumkv txn [FILE|-] [--base64]');
  const file = c.positionals[0] ?? '-';
  const body = await readInput(file, TXN_INPUT_BYTES_MAX);
  const q = c.values.base64 ? '?encoding=base64' : '';
  return printResult(await httpCall(c, 'POST', `/v1/txn${q}`, body));
}

/** A file's bytes, or stdin's for '-', refusing more than `maxBytes`. */
async function readInput(file: string, maxBytes: number): Promise<Uint8Array> {
  const stream = file === '-' ? process.stdin : (await import('node:fs')).createReadStream(file);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const b = chunk as Buffer;
      size += b.length;
      if (size > maxBytes) throw new ConfigError(`the transaction in ${file === '-' ? 'stdin' : file} is larger than ${maxBytes} bytes`);
      chunks.push(b);
    }
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`cannot read ${file}: ${(e as Error).message}`);
  } finally {
    if (file !== '-') (stream as { destroy?: () => void }).destroy?.();
  }
  return new Uint8Array(Buffer.concat(chunks));
}

async function health(argv: string[]): Promise<number> {
  const c = parseCommon(argv, {
    json: { type: 'boolean' },
    'endpoints-only': { type: 'boolean' },
    'max-lag-entries': { type: 'string' },
    'max-fsync-ms': { type: 'string' },
  });
  need(c, 0, 'health [--json] [--endpoints-only] [--max-lag-entries N] [--max-fsync-ms N]');
  const limit = (flag: string, dflt: number) => {
    const v = Number(c.values[flag] ?? dflt);
    if (!Number.isInteger(v) || v < 0) throw new ConfigError(`--${flag} must be a non-negative integer`);
    return v;
  };
  const limits = { maxLagEntries: limit('max-lag-entries', HEALTH_MAX_LAG_ENTRIES_DEFAULT), maxFsyncSeconds: limit('max-fsync-ms', HEALTH_MAX_FSYNC_MS_DEFAULT) / 1000 };
  const probes = await probeCluster({ endpoints: c.endpoints, timeoutMs: c.timeoutMs, endpointsOnly: c.values['endpoints-only'] === true, tls: c.tls });
  const h = assessHealth(probes, limits);
  console.log(c.values.json ? JSON.stringify(h, null, 2) : formatHealth(h));
  return h.healthy ? 0 : 1;
}

async function member(argv: string[]): Promise<number> {
  const c = parseCommon(argv, { learner: { type: 'boolean' }, zone: { type: 'string' } });
  const [sub, id, address] = c.positionals;
  switch (sub) {
    case 'add':
      if (!id || !address || c.positionals.length !== 3) throw new ConfigError('usage: quorumkv member add ID HOST:PORT [--learner] [--zone Z]');
      return printResult(
        await httpCall(c, 'POST', '/v1/admin/members', JSON.stringify({ id, address, learner: c.values.learner === true, ...(c.values.zone ? { zone: c.values.zone } : {}) })),
      );
    case 'promote':
      if (!id || c.positionals.length !== 2) throw new ConfigError('usage: quorumkv member promote ID');
      return printResult(await httpCall(c, 'POST', `/v1/admin/members/${encodeURIComponent(id)}/promote`));
    case 'remove':
      if (!id || c.positionals.length !== 2) throw new ConfigError('usage: quorumkv member remove ID');
      return printResult(await httpCall(c, 'DELETE', `/v1/admin/members/${encodeURIComponent(id)}`));
    case 'zone':
      if (!id || !address || c.positionals.length !== 3) throw new ConfigError('usage: quorumkv member zone ID ZONE');
      return printResult(await httpCall(c, 'PUT', `/v1/admin/members/${encodeURIComponent(id)}/zone`, JSON.stringify({ zone: address })));
    case 'list':
      return printStatus(c, true);
    default:
      throw new ConfigError('usage: quorumkv member add|promote|remove|zone|list …');
  }
}

/**
 * Recorded incarnation per member id, from GET /v1/admin/members (empty when it cannot be read);
 * `unauthorized` when the node refused the CLI's admin token (no or another cluster secret).
 */
async function recordedIncarnations(c: Common): Promise<{ byId: Map<string, string>; unauthorized: boolean }> {
  const byId = new Map<string, string>();
  try {
    const r = await httpCall(c, 'GET', '/v1/admin/members');
    if (r.status === 401) return { byId, unauthorized: true };
    const m = (await r.json()) as { voters?: { id: string; incarnation?: string }[]; learners?: { id: string; incarnation?: string }[] };
    for (const x of [...(m.voters ?? []), ...(m.learners ?? [])]) if (x.incarnation) byId.set(x.id, x.incarnation);
  } catch {
    // an older node: no incarnations to show
  }
  return { byId, unauthorized: false };
}

async function printStatus(c: Common, withIncarnations = false): Promise<number> {
  const r = await httpCall(c, 'GET', '/v1/status');
  if (!r.ok) return printResult(r);
  const known = withIncarnations ? await recordedIncarnations(c) : { byId: new Map<string, string>(), unauthorized: false };
  const incarnations = known.byId;
  const unknownIncarnation = known.unauthorized ? '(needs the cluster secret)' : '(not recorded yet)';
  const s = (await r.json()) as {
    id: string;
    role: string;
    term: number;
    leader: string | null;
    commitIndex: number;
    appliedIndex: number;
    members: { id: string; address: string; voter: boolean; zone: string | null; matchIndex: number | null; lastContactMs: number | null }[];
    warnings?: string[];
  };
  console.log(`node ${s.id}: ${s.role}, term ${s.term}, leader ${s.leader ?? '(none)'}, commit ${s.commitIndex}, applied ${s.appliedIndex}`);
  for (const m of s.members) {
    console.log(
      `  ${m.id.padEnd(6)} ${m.address.padEnd(22)} ${m.voter ? 'voter  ' : 'learner'} zone=${m.zone ?? '-'} match=${m.matchIndex ?? '-'} lastContactMs=${m.lastContactMs ?? '-'}` +
        (withIncarnations ? ` incarnation=${incarnations.get(m.id)?.slice(0, 8) ?? unknownIncarnation}` : ''),
    );
  }
  for (const w of s.warnings ?? []) console.log(`warning: ${w}`);
  return 0;
}

/** `quorumkv watch KEY [--prefix] [--rev N] [--prev] [--count N] [--progress]` (watch-cli.ts). */
function watch(argv: string[]): Promise<number> {
  const c = parseCommon(argv, { prefix: { type: 'boolean' }, rev: { type: 'string' }, prev: { type: 'boolean' }, count: { type: 'string' }, progress: { type: 'boolean' } });
  const [key] = need(c, 1, 'watch KEY [--prefix] [--rev N] [--prev] [--count N] [--progress]');
  const positive = (name: string): number | undefined => {
    const v = c.values[name];
    if (typeof v !== 'string') return undefined;
    if (!/^\d{1,15}$/.test(v) || Number(v) < 1) throw new ConfigError(`--${name} must be a positive integer`);
    return Number(v);
  };
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  return runWatchCli(
    { endpoints: c.endpoints, key: key!, prefix: c.values.prefix === true, startRevision: positive('rev'), prevValue: c.values.prev === true, count: positive('count'), progress: c.values.progress === true, tls: c.tls },
    undefined,
    ac.signal,
  );
}
