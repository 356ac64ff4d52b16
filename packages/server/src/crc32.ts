// CRC-32 of snapshot chunks: the storage package's (zlib's, native since Node 20.15).
export { crc32 } from '@quorumkv/storage';
