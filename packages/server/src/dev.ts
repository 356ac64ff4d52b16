// `quorumkv dev`: a local cluster of real `quorumkv serve` processes on 127.0.0.1, for trying
// quorumkv out. Logs go to <data>/<id>.log; Ctrl-C stops every node.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, MIN_CLUSTER_SECRET_LENGTH } from './config.js';
import { writeDurably } from './durable-file.js';
import { initDevCerts } from './certs.js';
import { fetchNode } from './node-fetch.js';
import type { ConnectionOptions } from 'node:tls';

export const DEV_USAGE = `usage: quorumkv dev [--nodes 3] [--base-port 7001] [--data ./data] [--tls]

Starts a local cluster of N nodes (n1..nN) on 127.0.0.1:BASE..BASE+N-1 as child processes,
with data in DIR/nX and logs in DIR/nX.log. Ctrl-C stops them all. Restarting resumes the data.
The first start founds the cluster and makes a random cluster secret, kept in DIR/cluster-secret
(mode 0600) and handed to the nodes in their environment. --tls runs TLS on every link with
development certificates made once in DIR/tls (quorumkv certs init; talk to it with --cacert DIR/tls/ca.crt).`;

/** The file in the dev data directory that holds the generated cluster secret. */
const DEV_SECRET_FILE = 'cluster-secret';

/** The dev cluster's secret: made once (random, 24 bytes as hex), then read back. */
function devClusterSecret(dataDir: string): string {
  const f = join(dataDir, DEV_SECRET_FILE);
  if (existsSync(f)) {
    const secret = readFileSync(f, 'utf8').trim();
    if (secret.length < MIN_CLUSTER_SECRET_LENGTH) throw new ConfigError(`${f} holds no usable secret; delete it (and the data) to start over`);
    return secret;
  }
  const secret = randomBytes(24).toString('hex');
  writeDurably(dataDir, DEV_SECRET_FILE, `${secret}\n`, 0o600);
  return secret;
}

/** The dev cluster's certificates: made once in DIR/tls (kept across restarts, like the secret). */
function devCerts(dataDir: string, ids: string[]): string {
  const dir = join(dataDir, 'tls');
  if (!existsSync(join(dir, 'ca.crt'))) initDevCerts({ nodes: ids, outDir: dir });
  for (const id of ids) if (!existsSync(join(dir, `${id}.crt`))) throw new ConfigError(`${dir} has no certificate for ${id}; delete ${dir} to make new ones`);
  return dir;
}

/** The TLS flags of dev node `id` (its certificate as server and peer certificate), none without --tls. */
function devTlsArgs(tlsDir: string | undefined, id: string): string[] {
  if (tlsDir === undefined) return [];
  const f = (name: string) => join(tlsDir, name);
  return ['--cert-file', f(`${id}.crt`), '--key-file', f(`${id}.key`), '--peer-cert-file', f(`${id}.crt`), '--peer-key-file', f(`${id}.key`), '--peer-trusted-ca-file', f('ca.crt')];
}

export async function runDev(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { nodes: { type: 'string' }, 'base-port': { type: 'string' }, data: { type: 'string' }, tls: { type: 'boolean' } },
      strict: true,
    }));
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const n = Number(values.nodes ?? 3);
  const basePort = Number(values['base-port'] ?? 7001);
  if (!Number.isInteger(n) || n < 1 || n > 9) throw new ConfigError('--nodes must be 1..9');
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort + n > 65535) throw new ConfigError('--base-port must be 1024..65535');
  const dataDir = resolve(String(values.data ?? './data'));
  mkdirSync(dataDir, { recursive: true });
  const secret = devClusterSecret(dataDir);
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const tlsDir = values.tls === true ? devCerts(dataDir, ids) : undefined;
  const peers = ids.map((id, i) => `${id}=127.0.0.1:${basePort + i}`).join(',');
  const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
  const children: ChildProcess[] = [];
  let stopping = false;
  for (const [i, id] of ids.entries()) {
    const log = createWriteStream(join(dataDir, `${id}.log`), { flags: 'a' });
    // The founding flag founds on the first start and is ignored once the data directory has state.
    const args = [cli, 'serve', '--id', id, '--listen', `127.0.0.1:${basePort + i}`, '--peers', peers, '--data', join(dataDir, id), '--initial-cluster-state', 'new', ...devTlsArgs(tlsDir, id)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, QKV_CLUSTER_SECRET: secret, QKV_CLUSTER_SECRET_FILE: '' } });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    child.on('exit', (code, signal) => {
      if (!stopping) console.error(`quorumkv dev: ${id} exited (${signal ?? code}); see ${join(dataDir, `${id}.log`)}`);
    });
    children.push(child);
  }
  const endpoints = ids.map((_, i) => `127.0.0.1:${basePort + i}`);
  const first = endpoints[0]!;
  const ca = tlsDir === undefined ? undefined : join(tlsDir, 'ca.crt');
  await waitForLeader(endpoints, 15_000, ca === undefined ? undefined : { ca: readFileSync(ca) });
  const [scheme, curlCa, cliCa] = ca === undefined ? ['http', '', ''] : ['https', ` --cacert ${ca}`, ` --cacert ${ca}`];
  console.log(`quorumkv: ${n}-node cluster running${ca === undefined ? '' : ' with TLS'}
  endpoints: ${endpoints.join(' ')}
  data:      ${dataDir}   (logs: ${dataDir}/nX.log)

  try:
    curl${curlCa} -X PUT --data-binary hello ${scheme}://${first}/v1/kv/greeting
    curl${curlCa} ${scheme}://${endpoints[endpoints.length - 1]}/v1/kv/greeting
    curl${curlCa} ${scheme}://${first}/v1/status
    pnpm quorumkv status --endpoints ${endpoints.join(',')}${cliCa}

  Ctrl-C stops the cluster.`);
  await new Promise<void>((resolveStop) => {
    const stop = () => {
      if (stopping) return;
      stopping = true;
      console.log('\nquorumkv: stopping the cluster…');
      let left = children.length;
      for (const c of children) {
        c.once('exit', () => {
          if (--left === 0) resolveStop();
        });
        c.kill('SIGTERM');
      }
      setTimeout(() => {
        for (const c of children) c.kill('SIGKILL');
        resolveStop();
      }, 5000).unref();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

/** Waits until every node knows the leader (a node that started empty learns it a moment later). */
async function waitForLeader(endpoints: string[], timeoutMs: number, tls: ConnectionOptions | undefined): Promise<void> {
  const until = Date.now() + timeoutMs;
  const knowsLeader = async (ep: string): Promise<boolean> => {
    try {
      const r = await fetchNode(ep, '/v1/status', { signal: AbortSignal.timeout(500) }, tls);
      const s = (await r.json()) as { leader?: string | null };
      return Boolean(s.leader);
    } catch {
      return false; // not up yet
    }
  };
  while (Date.now() < until) {
    if ((await Promise.all(endpoints.map(knowsLeader))).every(Boolean)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  console.error('quorumkv dev: no leader after %d ms; check the logs', timeoutMs);
}
