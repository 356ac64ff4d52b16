// Corruption tools: flip one bit of, or truncate, a chosen file in a stopped node's data
// directory — LevelDB's write-ahead logs (NNNNNN.log), tables (*.ldb), MANIFEST-*, CURRENT, and
// the project's own files (CLUSTER_ID, INCARNATION, ORIGIN, HIGH_WATER, …). Seeded: the same
// seed and directory give the same damage. The node must be stopped: a running node may rewrite
// the file and hide the damage.
//
//   const d = corruptDataDir(dataDir, createRng(seed), { kinds: ['wal'], action: 'flip' });
//   // d = { file: '…/000012.log', kind: 'wal', action: 'flip', offset: 4711, bit: 3, sizeBytes: 9000 }

import { closeSync, openSync, readdirSync, readSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Rng } from './random.js';

/** What a data-directory file is, for choosing what to damage. */
export type DataFileKind = 'wal' | 'table' | 'manifest' | 'current' | 'identity' | 'high-water';

/** Every kind, in a fixed order. */
export const DATA_FILE_KINDS: readonly DataFileKind[] = ['wal', 'table', 'manifest', 'current', 'identity', 'high-water'];

/** The project's own identity files in a data directory (packages/server/src/identity.ts). */
export const IDENTITY_FILES: readonly string[] = ['CLUSTER_ID', 'INCARNATION', 'PEER_INCARNATIONS', 'FOUNDING_PROMISED', 'ORIGIN'];

/** A damage that could not be done (no such file, empty file, bad argument). */
export class CorruptionError extends Error {
  readonly code = 'JL_CORRUPTION';
}

/** One damage done: enough to name it in a report and to reproduce it. */
export interface Corruption {
  file: string;
  kind: DataFileKind;
  action: 'flip' | 'truncate';
  /** flip: the byte whose bit was flipped; truncate: the new length. */
  offset: number;
  /** flip only: the bit (0–7) flipped. */
  bit?: number;
  /** The file's length before the damage. */
  sizeBytes: number;
}

/** The kind of a file name in a data directory, or null for files nothing depends on (LOCK, LOG, …). */
export function classifyDataFile(name: string): DataFileKind | null {
  if (/^\d+\.log$/.test(name)) return 'wal';
  if (/^\d+\.(ldb|sst)$/.test(name)) return 'table';
  if (/^MANIFEST-\d+$/.test(name)) return 'manifest';
  if (name === 'CURRENT') return 'current';
  if (name === 'HIGH_WATER') return 'high-water';
  if (IDENTITY_FILES.includes(name)) return 'identity';
  return null;
}

/** The non-empty files of `dataDir` of the given kinds, sorted by name (deterministic). */
export function damageableFiles(dataDir: string, kinds: readonly DataFileKind[] = DATA_FILE_KINDS): Array<{ file: string; kind: DataFileKind }> {
  const out: Array<{ file: string; kind: DataFileKind }> = [];
  for (const name of readdirSync(dataDir).sort()) {
    const kind = classifyDataFile(name);
    const file = join(dataDir, name);
    if (kind !== null && kinds.includes(kind) && statSync(file).isFile() && statSync(file).size > 0) out.push({ file, kind });
  }
  return out;
}

/** Flips bit `bit` of byte `offset` of `file` in place. */
export function flipBit(file: string, offset: number, bit: number): void {
  const size = statSync(file).size;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset >= size) throw new CorruptionError(`offset ${offset} is outside ${file} (${size} bytes)`);
  if (!Number.isInteger(bit) || bit < 0 || bit > 7) throw new CorruptionError(`bit must be 0–7, got ${bit}`);
  const fd = openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, offset);
    b[0] = b[0]! ^ (1 << bit);
    writeSync(fd, b, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

/** Truncates `file` to `length` bytes (shorter than it is). */
export function truncateTo(file: string, length: number): void {
  const size = statSync(file).size;
  if (!Number.isSafeInteger(length) || length < 0 || length >= size) throw new CorruptionError(`cannot truncate ${file} (${size} bytes) to ${length}`);
  truncateSync(file, length);
}

/** Options of {@link corruptDataDir}. */
export interface CorruptOptions {
  /** Kinds of file to choose from. Default: every kind present. */
  kinds?: readonly DataFileKind[];
  /** Default: flip or truncate, drawn from the rng. */
  action?: 'flip' | 'truncate';
}

/** Damages one file of the stopped node's `dataDir`, chosen with `rng`; returns what was done. */
export function corruptDataDir(dataDir: string, rng: Rng, options: CorruptOptions = {}): Corruption {
  const files = damageableFiles(dataDir, options.kinds);
  if (files.length === 0) throw new CorruptionError(`no file of kinds ${(options.kinds ?? DATA_FILE_KINDS).join(', ')} in ${dataDir}`);
  const { file, kind } = rng.pick(files);
  const sizeBytes = statSync(file).size;
  const action = options.action ?? (rng.chance(0.5) ? 'flip' : 'truncate');
  if (action === 'flip') {
    const offset = rng.int(0, sizeBytes - 1);
    const bit = rng.int(0, 7);
    flipBit(file, offset, bit);
    return { file, kind, action, offset, bit, sizeBytes };
  }
  const offset = rng.int(0, sizeBytes - 1);
  truncateTo(file, offset);
  return { file, kind, action, offset, sizeBytes };
}
