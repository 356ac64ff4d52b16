// `quorumkv snapshot save|status|restore` (docs/server.md, "Backup and restore").
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { inspectSnapshotStream, openNodeStore } from '@quorumkv/storage';
import { BackupFileWriter, type BackupHeader, readBody, verifyBackupFile } from './backup-file.js';
import { BackupHeaders } from './backup-endpoint.js';
import { cliAdminHeaders } from './cli-secret.js';
import { ConfigError, type PeerSpec, parsePeers } from './config.js';
import { fsIdentityFiles } from './durable-file.js';
import { recordOrigin, writeClusterId } from './identity.js';
import { membershipFromPeers } from './membership.js';
import { CLI_TLS_FLAGS, cliTls } from './cli-tls.js';
import { fetchNode } from './node-fetch.js';
import type { ConnectionOptions } from 'node:tls';

export const SNAPSHOT_USAGE = `  snapshot save FILE [--endpoints E] [--cluster-secret-file PATH]
                                      stream a consistent backup of one node's state to FILE
                                      (over HTTPS with --cacert/--cert/--key)
  snapshot status FILE [--json]       verify FILE; print applied index, keys, bytes, hash
  snapshot restore FILE --data DIR --id ID --peers ID=HOST:PORT,...
                                      make DIR a member of a NEW cluster holding FILE's state`;

/** How long `save` waits for a node to start answering. */
const SAVE_CONNECT_TIMEOUT_MS = 10_000;
/** `save` gives up when no bytes arrive for this long (the stream as a whole has no deadline). */
const SAVE_IDLE_TIMEOUT_MS = 30_000;
/** Progress lines on stderr at most this often. */
const PROGRESS_INTERVAL_MS = 1_000;

/** Runs `quorumkv snapshot SUB ...`. A refused backup file is a message and exit code 1. */
export async function runSnapshotCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    if (sub === 'save') return await save(rest);
    if (sub === 'status') return await status(rest);
    if (sub === 'restore') return await restore(rest);
  } catch (e) {
    // A refused file, a file that cannot be read or written, a node that cannot serve or stalls:
    // a message and exit code 1. Usage errors go on to the caller (exit code 2).
    if (e instanceof ConfigError || !(e instanceof Error)) throw e;
    console.error(`quorumkv: ${(e as Error).message}`);
    return 1;
  }
  throw new ConfigError(`usage:\n${SNAPSHOT_USAGE}`);
}

function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean' }>, usage: string) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (parsed.positionals.length !== 1) throw new ConfigError(`usage: quorumkv ${usage}`);
  return { file: parsed.positionals[0]!, values: parsed.values as Record<string, string | boolean | undefined> };
}

async function save(argv: string[]): Promise<number> {
  const usage = 'snapshot save FILE [--endpoints HOST:PORT,...] [--cluster-secret-file PATH] [--cacert F --cert F --key F]';
  const { file, values } = parse(argv, { endpoints: { type: 'string' }, 'cluster-secret-file': { type: 'string' }, ...CLI_TLS_FLAGS }, usage);
  const endpoints = String(values.endpoints ?? process.env.QKV_ENDPOINTS ?? '127.0.0.1:7001').split(',').map((s) => s.trim()).filter(Boolean);
  const secretFile = values['cluster-secret-file'];
  const { res, endpoint, idle } = await openBackupStream(endpoints, cliTls(values), cliAdminHeaders(typeof secretFile === 'string' ? secretFile : undefined));
  const writer = await BackupFileWriter.create(file);
  try {
    let lastProgress = 0;
    const summary = await inspectSnapshotStream(
      (async function* () {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          idle.refresh();
          await writer.write(chunk);
          if (Date.now() - lastProgress >= PROGRESS_INTERVAL_MS) {
            lastProgress = Date.now();
            process.stderr.write(`snapshot save: ${writer.bodyBytes()} bytes from ${endpoint}\n`);
          }
          yield chunk;
        }
      })(),
    );
    const h = await writer.finish({
      clusterId: res.headers.get(BackupHeaders.clusterId) || null,
      sourceNode: res.headers.get(BackupHeaders.node) ?? '?',
      appliedIndex: summary.info.index,
      appliedTerm: summary.info.term,
      keys: summary.kvRecords,
      sessionRecords: summary.sessionRecords,
      createdAt: new Date().toISOString(),
    });
    process.stderr.write(`snapshot save: ${h.bytes} bytes, ${h.keys} keys at applied index ${h.appliedIndex} from ${h.sourceNode}\n`);
    console.log(`saved ${file}: applied index ${h.appliedIndex}, ${h.keys} keys, ${h.bytes} bytes, sha256 ${h.sha256}`);
    return 0;
  } catch (e) {
    await writer.abort();
    throw e;
  } finally {
    clearTimeout(idle);
  }
}

/**
 * GET /v1/admin/snapshot from the first endpoint that answers 200. `idle` aborts the stream once
 * it fires (SAVE_IDLE_TIMEOUT_MS); refresh it on every chunk and clear it when done.
 */
async function openBackupStream(endpoints: string[], tls: ConnectionOptions | undefined, headers: Record<string, string>): Promise<{ res: Response; endpoint: string; idle: NodeJS.Timeout }> {
  const errors: string[] = [];
  for (const ep of endpoints) {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`no answer within ${SAVE_CONNECT_TIMEOUT_MS} ms`)), SAVE_CONNECT_TIMEOUT_MS);
    try {
      const res = await fetchNode(ep, '/v1/admin/snapshot', { headers, signal: ac.signal }, tls);
      clearTimeout(timer);
      if (res.ok && res.body) {
        const idle = setTimeout(() => ac.abort(new Error(`no bytes from ${ep} for ${SAVE_IDLE_TIMEOUT_MS} ms`)), SAVE_IDLE_TIMEOUT_MS);
        return { res, endpoint: ep, idle };
      }
      errors.push(`${ep}: ${res.status} ${await res.text()}`);
    } catch (e) {
      clearTimeout(timer);
      errors.push(`${ep}: ${(e as Error).message}`);
    }
  }
  throw new Error(`no node served a backup: ${errors.join('; ')}`);
}

async function status(argv: string[]): Promise<number> {
  const { file, values } = parse(argv, { json: { type: 'boolean' } }, 'snapshot status FILE [--json]');
  const { header: h, summary } = await verifyBackupFile(file);
  const out = { ...h, appliedHash: Buffer.from(summary.info.hash).toString('hex'), voters: summary.info.membership?.voters.map((m) => m.id) ?? [] };
  if (values.json) console.log(JSON.stringify(out));
  else {
    console.log(`file           ${file} (format ${h.format}, verified)`);
    console.log(`cluster        ${h.clusterId ?? '-'} (read from ${h.sourceNode} at ${h.createdAt})`);
    console.log(`applied index  ${h.appliedIndex} (term ${h.appliedTerm})${h.revision === undefined ? '' : `  revision ${h.revision}`}`);
    console.log(`keys           ${h.keys} (+ ${h.sessionRecords} session records)`);
    console.log(`bytes          ${h.bytes}`);
    console.log(`sha256         ${h.sha256}`);
  }
  return 0;
}

async function restore(argv: string[]): Promise<number> {
  const usage = 'snapshot restore FILE --data DIR --id ID --peers ID=HOST:PORT,...';
  const { file, values } = parse(argv, { data: { type: 'string' }, id: { type: 'string' }, peers: { type: 'string' } }, usage);
  const dataDir = values.data as string | undefined;
  const id = values.id as string | undefined;
  if (!dataDir || !id || !values.peers) throw new ConfigError(`usage: quorumkv ${usage}`);
  const peers = parsePeers(String(values.peers));
  if (!peers.some((p) => p.id === id)) throw new ConfigError(`--id ${id} is not one of --peers`);
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) throw new ConfigError(`${dataDir} is not empty; restore only into a new, empty data directory`);
  // Built beside DIR and renamed into place at the end: DIR never holds half a restore.
  const staging = `${dataDir.replace(/\/+$/, '')}.restoring`;
  if (existsSync(staging)) throw new ConfigError(`${staging} exists (an interrupted restore?); remove it and run restore again`);
  const { header } = await verifyBackupFile(file);
  mkdirSync(staging, { recursive: true });
  const store = await openNodeStore(staging);
  try {
    const writer = await store.openSnapshotWriter({ index: header.appliedIndex, term: header.appliedTerm });
    for await (const chunk of readBody(file, header)) await writer.write(chunk);
    await writer.install({ hardState: { term: header.appliedTerm, vote: null, commit: header.appliedIndex }, membership: membershipFromPeers(peers) });
  } finally {
    await store.close();
  }
  const clusterId = restoredClusterId(header, peers);
  const files = fsIdentityFiles(staging);
  writeClusterId(files, clusterId);
  // A founder: it votes on the restored membership, which records no incarnations yet (identity.ts).
  recordOrigin(files, true);
  if (existsSync(dataDir)) rmdirSync(dataDir); // empty (checked above)
  renameSync(staging, dataDir);
  syncDirectory(dirname(resolve(dataDir)));
  console.log(`restored ${file} into ${dataDir} as ${id}: applied index ${header.appliedIndex}, ${header.keys} keys, new cluster ${clusterId}`);
  return 0;
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The id of a cluster restored from a backup: the same for every member restored from the same
 * file with the same --peers, and never the source's (that is a hash of founding voters only).
 */
export function restoredClusterId(header: BackupHeader, peers: PeerSpec[]): string {
  const canon = [...peers].sort((a, b) => (a.id < b.id ? -1 : 1)).map((p) => `${p.id}=${p.address}`).join('\n');
  return createHash('sha256').update(`restored\n${header.sha256}\n${canon}`).digest('hex').slice(0, 32);
}
