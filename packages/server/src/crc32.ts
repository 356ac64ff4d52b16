// CRC-32 of snapshot chunks (zlib's, native since Node 20.15).
import { crc32 as zcrc32 } from 'node:zlib';

export function crc32(data: Uint8Array): number {
  return zcrc32(data) >>> 0;
}
