// The backup file of `quorumkv snapshot save|status|restore` (docs/server.md, "Backup and restore").
//
//   offset 0            header: MAGIC ++ JSON (BackupHeader) ++ '\ncrc32 XXXXXXXX\n' (over the JSON),
//                       padded with spaces to HEADER_BYTES
//   HEADER_BYTES        body: the storage snapshot stream, byte for byte (packages/storage/src/snapshot.ts:
//                       header record, kv and session records, trailer record with its own SHA-256)
//   HEADER_BYTES+bytes  trailer: TRAILER_MAGIC ++ SHA-256 over the body (32 bytes)
//
// The body is not a second format: it is what a leader streams to a follower. The header is
// written last (in place), once the body's key count, size and digest are known; the file is
// written as FILE.part, fsynced and renamed, so FILE exists only complete.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { inspectSnapshotStream, type SnapshotStreamSummary } from '@quorumkv/storage';
import { crc32 } from './crc32.js';

/** Version of the backup file layout (the header's `format`). */
export const BACKUP_FORMAT_VERSION = 1;
/** Size of the header region, bytes. */
export const BACKUP_HEADER_BYTES = 4096;
const MAGIC = Buffer.from('QKVBACKUP\n');
const TRAILER_MAGIC = Buffer.from('QKVSHA256\n');
const DIGEST_BYTES = 32;
const TRAILER_BYTES = TRAILER_MAGIC.length + DIGEST_BYTES;
const PAD = 0x20;

/** What the header of a backup file says. */
export interface BackupHeader {
  format: number;
  /** The source cluster's id (null when the source node did not know it). */
  clusterId: string | null;
  /** The node the backup was read from. */
  sourceNode: string;
  appliedIndex: number;
  appliedTerm: number;
  /** The store's revision at the applied index, when the state machine keeps one. */
  revision?: number;
  keys: number;
  sessionRecords: number;
  /** Body bytes. */
  bytes: number;
  /** SHA-256 (hex) of the body; the trailer holds the same digest. */
  sha256: string;
  createdAt: string;
}

/** A backup file is damaged, truncated, or not a backup file. */
export class BackupFileError extends Error {
  readonly code = 'QKV_BACKUP_CORRUPT';
  constructor(path: string, what: string) {
    super(`${path}: ${what}; refusing it`);
    this.name = 'BackupFileError';
  }
}

/** Writes a backup file: FILE.part, body streamed in, then header + trailer, fsync, rename. */
export class BackupFileWriter {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private done = false;

  private constructor(
    readonly path: string,
    private readonly part: string,
    private readonly fh: FileHandle,
  ) {}

  /** Opens FILE.part for writing. Refuses an existing FILE (a backup is never overwritten). */
  static async create(path: string): Promise<BackupFileWriter> {
    if (existsSync(path)) throw new Error(`${path} exists; refusing to overwrite a backup`);
    const part = `${path}.part`;
    const fh = await open(part, 'w', 0o600);
    await fh.write(Buffer.alloc(BACKUP_HEADER_BYTES, PAD), 0, BACKUP_HEADER_BYTES, 0);
    return new BackupFileWriter(path, part, fh);
  }

  /** Appends body bytes. */
  async write(chunk: Uint8Array): Promise<void> {
    this.hash.update(chunk);
    await this.fh.write(chunk, 0, chunk.length, BACKUP_HEADER_BYTES + this.bytes);
    this.bytes += chunk.length;
  }

  /** Body bytes written so far. */
  bodyBytes(): number {
    return this.bytes;
  }

  /** Writes trailer and header, fsyncs, renames FILE.part to FILE and fsyncs the directory. */
  async finish(meta: Omit<BackupHeader, 'format' | 'bytes' | 'sha256'>): Promise<BackupHeader> {
    const digest = this.hash.digest();
    const header: BackupHeader = { format: BACKUP_FORMAT_VERSION, ...meta, bytes: this.bytes, sha256: digest.toString('hex') };
    await this.fh.write(Buffer.concat([TRAILER_MAGIC, digest]), 0, TRAILER_BYTES, BACKUP_HEADER_BYTES + this.bytes);
    await this.fh.write(encodeHeader(header), 0, BACKUP_HEADER_BYTES, 0);
    await this.fh.sync();
    await this.fh.close();
    this.done = true;
    await rename(this.part, this.path);
    await syncDir(dirname(this.path));
    return header;
  }

  /** Drops FILE.part (after a failure). Safe to call after finish. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.fh.close().catch(() => undefined);
    await unlink(this.part).catch(() => undefined);
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const crcHex = (b: Buffer) => crc32(b).toString(16).padStart(8, '0');

/** The header region: MAGIC, the JSON, its CRC-32 line, spaces. */
export function encodeHeader(h: BackupHeader): Buffer {
  const json = Buffer.from(JSON.stringify(h));
  const text = Buffer.concat([json, Buffer.from(`\ncrc32 ${crcHex(json)}\n`)]);
  if (MAGIC.length + text.length > BACKUP_HEADER_BYTES) throw new Error(`backup header of ${text.length} bytes does not fit in ${BACKUP_HEADER_BYTES}`);
  const out = Buffer.alloc(BACKUP_HEADER_BYTES, PAD);
  MAGIC.copy(out, 0);
  text.copy(out, MAGIC.length);
  return out;
}

/** Parses and validates a header region; `fail` names what is wrong. */
export function decodeHeader(region: Buffer, fail: (what: string) => never): BackupHeader {
  if (region.length < BACKUP_HEADER_BYTES) fail(`shorter than a backup header (${region.length} bytes): truncated or not a backup file`);
  if (!region.subarray(0, MAGIC.length).equals(MAGIC)) fail('not a quorumkv backup file (bad magic)');
  const end = region.indexOf(0x0a, MAGIC.length);
  const crcEnd = end < 0 ? -1 : region.indexOf(0x0a, end + 1);
  if (crcEnd < 0 || region.subarray(crcEnd + 1, BACKUP_HEADER_BYTES).some((b) => b !== PAD)) fail('the header is damaged (bad padding)');
  const json = region.subarray(MAGIC.length, end);
  if (region.subarray(end + 1, crcEnd).toString('latin1') !== `crc32 ${crcHex(json)}`) fail('the header is damaged (CRC-32 mismatch)');
  let h: unknown;
  try {
    h = JSON.parse(json.toString('utf8'));
  } catch {
    fail('the header is damaged (not JSON)');
  }
  const r = h as Partial<BackupHeader>;
  if (typeof r !== 'object' || r === null) fail('the header is damaged (not an object)');
  if (r.format !== BACKUP_FORMAT_VERSION) fail(`unsupported backup format ${String(r.format)} (this version reads ${BACKUP_FORMAT_VERSION})`);
  for (const k of ['appliedIndex', 'appliedTerm', 'keys', 'sessionRecords', 'bytes'] as const) {
    if (!Number.isSafeInteger(r[k]) || (r[k] as number) < 0) fail(`the header is damaged (${k})`);
  }
  if (typeof r.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(r.sha256)) fail('the header is damaged (sha256)');
  return r as BackupHeader;
}

/** A verified backup file: its header and what its body holds. */
export interface VerifiedBackup {
  header: BackupHeader;
  summary: SnapshotStreamSummary;
}

/**
 * Reads a whole backup file and verifies it: header, size, trailer digest = header digest =
 * SHA-256 of the body, and the body as a snapshot stream (records, its own checksum) agreeing
 * with the header. Throws BackupFileError naming what is wrong.
 */
export async function verifyBackupFile(path: string): Promise<VerifiedBackup> {
  const fail = (what: string): never => {
    throw new BackupFileError(path, what);
  };
  const size = (await stat(path)).size;
  const fh = await open(path, 'r');
  let header: BackupHeader;
  let trailer: Buffer;
  try {
    const region = Buffer.alloc(Math.min(size, BACKUP_HEADER_BYTES));
    await fh.read(region, 0, region.length, 0);
    header = decodeHeader(region, fail);
    const expected = BACKUP_HEADER_BYTES + header.bytes + TRAILER_BYTES;
    if (size < expected) fail(`truncated: ${size} bytes, the header promises ${expected}`);
    if (size > expected) fail(`${size - expected} bytes after the trailer`);
    trailer = Buffer.alloc(TRAILER_BYTES);
    await fh.read(trailer, 0, TRAILER_BYTES, BACKUP_HEADER_BYTES + header.bytes);
  } finally {
    await fh.close();
  }
  if (!trailer.subarray(0, TRAILER_MAGIC.length).equals(TRAILER_MAGIC)) fail('the trailer is damaged (bad magic)');
  const hash = createHash('sha256');
  let summary: SnapshotStreamSummary;
  try {
    summary = await inspectSnapshotStream(hashing(readBody(path, header), hash));
  } catch (e) {
    fail(`the body is damaged: ${(e as Error).message}`);
  }
  const digest = hash.digest();
  if (!digest.equals(trailer.subarray(TRAILER_MAGIC.length))) fail('checksum mismatch: the body does not match the trailing SHA-256');
  if (digest.toString('hex') !== header.sha256) fail('checksum mismatch: the header digest differs from the trailer');
  if (summary!.kvRecords !== header.keys || summary!.info.index !== header.appliedIndex || summary!.info.term !== header.appliedTerm) {
    fail('the header does not match the body (keys or applied index)');
  }
  return { header, summary: summary! };
}

/** The body of a backup file as chunks (read it after verifyBackupFile). */
export async function* readBody(path: string, header: BackupHeader): AsyncGenerator<Uint8Array> {
  if (header.bytes === 0) return;
  for await (const chunk of createReadStream(path, { start: BACKUP_HEADER_BYTES, end: BACKUP_HEADER_BYTES + header.bytes - 1, highWaterMark: 1024 * 1024 })) {
    yield chunk as Buffer;
  }
}

async function* hashing(chunks: AsyncIterable<Uint8Array>, hash: Hash): AsyncGenerator<Uint8Array> {
  for await (const c of chunks) {
    hash.update(c);
    yield c;
  }
}

