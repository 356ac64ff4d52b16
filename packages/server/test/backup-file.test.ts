// The backup file format (backup-file.ts): a file written from a store's snapshot stream reads
// back verified with the right header; every kind of damage — a flipped byte in the header, the
// body or the trailer, a truncated file, bytes appended, a foreign file — is refused with a
// message naming it; an existing FILE is never overwritten and an aborted save leaves no FILE.part.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type NodeStore, encodeCommand, openMemoryNodeStore } from '@quorumkv/storage';
import { BACKUP_HEADER_BYTES, BackupFileError, BackupFileWriter, readBody, verifyBackupFile } from '../src/backup-file.js';

const b = (s: string) => new TextEncoder().encode(s);
const KEYS = 25;

/** `x` with the byte at `at` XORed with `mask`. */
function flip(x: Buffer, at: number, mask: number): Buffer {
  x[at] = x[at]! ^ mask;
  return x;
}

/** A store with KEYS keys, written through one session (so the stream has session records). */
async function populated(): Promise<NodeStore> {
  const store = await openMemoryNodeStore();
  const items = Array.from({ length: KEYS }, (_, i) => ({
    kind: 'entry' as const,
    index: i + 1,
    term: 2,
    data: encodeCommand({ op: 'put', key: b(`k${i}`), value: b(`v${i}`), session: { id: 'c1', seq: i + 1, ackedBelow: i + 1 }, timeMs: 1_700_000_000_000 + i }),
  }));
  await store.kv.apply(items);
  return store;
}

/** Saves `store` to `file` as `quorumkv snapshot save` does (minus HTTP). */
async function save(store: NodeStore, file: string): Promise<void> {
  const reader = await store.openSnapshotReader({ chunkBytes: 97 });
  const w = await BackupFileWriter.create(file);
  try {
    for await (const c of reader) await w.write(c);
  } finally {
    await reader.close();
  }
  await w.finish({ clusterId: 'ab'.repeat(16), sourceNode: 'n2', appliedIndex: KEYS, appliedTerm: 2, keys: KEYS, sessionRecords: 0, createdAt: 'now' });
}

describe('backup file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'qkv-backup-unit-'));
  const file = path.join(dir, 'good.qkv');
  let store: NodeStore;
  beforeAll(async () => {
    store = await populated();
    await save(store, file);
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A copy of the good file with `damage` applied; the message verifyBackupFile refuses it with. */
  async function refusal(name: string, damage: (bytes: Buffer) => Buffer): Promise<string> {
    const f = path.join(dir, name);
    writeFileSync(f, damage(readFileSync(file)));
    const err = await verifyBackupFile(f).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(BackupFileError);
    return (err as Error).message;
  }

  test('round trip: header says what the body holds, and the body installs to the same state', async () => {
    const { header, summary } = await verifyBackupFile(file);
    expect(header).toMatchObject({ format: 1, appliedIndex: KEYS, appliedTerm: 2, keys: KEYS, sourceNode: 'n2' });
    expect(summary.sessionRecords).toBeGreaterThan(0);
    expect(readFileSync(file).length).toBe(BACKUP_HEADER_BYTES + header.bytes + 42);
    const target = await openMemoryNodeStore();
    const w = await target.openSnapshotWriter({ index: header.appliedIndex, term: header.appliedTerm });
    for await (const c of readBody(file, header)) await w.write(c);
    const membership = { voters: [{ id: 'r1', address: '127.0.0.1:1' }], learners: [] };
    await w.install({ membership });
    expect(await target.kv.stateHash()).toBe(await store.kv.stateHash());
    expect(target.kv.membership()).toEqual(membership);
    await target.close();
  });

  test('a flipped byte in the body is refused', async () => {
    expect(await refusal('body.qkv', (x) => flip(x, BACKUP_HEADER_BYTES + 40, 0x04))).toMatch(/body is damaged|checksum mismatch/);
  });

  test('a flipped byte anywhere in the header (JSON, CRC line, padding) is refused', async () => {
    expect(await refusal('hdr.qkv', (x) => flip(x, 12, 0x20))).toContain('CRC-32 mismatch');
    // In a field nothing else checks: the source node's name.
    expect(await refusal('src.qkv', (x) => flip(x, x.indexOf('"n2"') + 1, 0x01))).toContain('CRC-32 mismatch');
    expect(await refusal('pad.qkv', (x) => flip(x, BACKUP_HEADER_BYTES - 1, 0x01))).toContain('bad padding');
  });

  test('a flipped byte in the trailing SHA-256 is refused', async () => {
    expect(await refusal('trl.qkv', (x) => flip(x, x.length - 1, 0x80))).toContain('checksum mismatch');
  });

  test('a truncated file, bytes appended, and a foreign file are refused', async () => {
    expect(await refusal('cut.qkv', (x) => x.subarray(0, x.length - 7))).toContain('truncated');
    expect(await refusal('long.qkv', (x) => Buffer.concat([x, Buffer.from('extra')]))).toContain('5 bytes after the trailer');
    const foreign = path.join(dir, 'foreign.qkv');
    writeFileSync(foreign, 'hello');
    await expect(verifyBackupFile(foreign)).rejects.toThrow('truncated or not a backup file');
    writeFileSync(foreign, Buffer.alloc(BACKUP_HEADER_BYTES + 100, 1));
    await expect(verifyBackupFile(foreign)).rejects.toThrow('bad magic');
  });

  test('an existing FILE is not overwritten; an aborted save leaves no FILE.part', async () => {
    await expect(BackupFileWriter.create(file)).rejects.toThrow('refusing to overwrite');
    const f = path.join(dir, 'aborted.qkv');
    const w = await BackupFileWriter.create(f);
    await w.write(b('partial'));
    expect(existsSync(`${f}.part`)).toBe(true);
    await w.abort();
    expect(existsSync(`${f}.part`)).toBe(false);
    expect(existsSync(f)).toBe(false);
  });
});
