// Checksums of the store's own records. LevelDB checks its journal records and table blocks only
// as far as its options say, and classic-level exposes neither `paranoid_checks` nor
// `verify_checksums`: a damaged journal record is skipped with a log line nobody reads, and a table
// block is read unverified. So every record the consensus depends on (log segments and the meta
// records: hard state, log start, applied state, membership, generation) is *sealed*: its value is
// `crc32 (4 B, big-endian) ++ payload`, the CRC taken over the key and then the payload (a record
// moved under another key fails too). Reading verifies it; a mismatch is QKV_STORAGE_CORRUPT
// naming the record, never a silent skip. `kv` and `sessions` records are not sealed (see
// docs/storage.md).
import { crc32 as zlibCrc32 } from 'node:zlib';
import { StorageCorruptError } from './errors.js';

/** Bytes a seal adds in front of a record's payload. */
export const SEAL_BYTES = 4;

/** CRC-32 (zlib's polynomial) of `data`, continuing from `initial`. Native since Node 20.15. */
export function crc32(data: Uint8Array, initial = 0): number {
  return zlibCrc32(data, initial) >>> 0;
}

function recordCrc(key: Uint8Array, payload: Uint8Array): number {
  return crc32(payload, crc32(key));
}

/** The stored value of a record: crc32(key, payload) ++ payload. */
export function seal(key: Uint8Array, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(SEAL_BYTES + payload.length);
  writeCrc(out, recordCrc(key, payload));
  out.set(payload, SEAL_BYTES);
  return out;
}

function writeCrc(out: Uint8Array, crc: number): void {
  out[0] = crc >>> 24;
  out[1] = (crc >>> 16) & 0xff;
  out[2] = (crc >>> 8) & 0xff;
  out[3] = crc & 0xff;
}

/**
 * The payload of a sealed record, after checking its CRC. `what` names the record in the error
 * ("meta record \"hardState\"", "the log segment at index 41").
 */
export function unseal(location: string, what: string, key: Uint8Array, value: Uint8Array): Uint8Array {
  if (value.length < SEAL_BYTES) throw new StorageCorruptError(location, `${what} is shorter than its checksum (${value.length} bytes)`);
  const stored = ((value[0]! << 24) | (value[1]! << 16) | (value[2]! << 8) | value[3]!) >>> 0;
  const payload = value.subarray(SEAL_BYTES);
  const actual = recordCrc(key, payload);
  if (stored !== actual) {
    throw new StorageCorruptError(
      location,
      `${what} fails its checksum (stored crc32 ${hex(stored)}, computed ${hex(actual)}): the record was damaged on disk`,
    );
  }
  return payload;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
