// GET /v1/admin/snapshot: streams a consistent snapshot of this node's state (the storage
// snapshot stream, packages/storage/src/snapshot.ts) for `quorumkv snapshot save`. One at a
// time per node; memory stays at one chunk (each write waits for the socket to drain), and a
// reader that stops reading is cut off after BACKUP_STALL_MS (the open LevelDB snapshot pins
// old files on disk).
import type { ServerResponse } from 'node:http';
import { BusyError } from '@quorumkv/protocol';
import type { NodeStore } from '@quorumkv/storage';

/** Chunk size of a backup stream, bytes: the most it holds in memory beyond the socket buffer. */
export const BACKUP_CHUNK_BYTES = 256 * 1024;
/** A backup reader that reads nothing for this long is disconnected. */
export const BACKUP_STALL_MS = 30_000;
/** Retry-After of the refusal of a second concurrent backup. */
const BACKUP_BUSY_RETRY_MS = 5_000;

/** Response headers naming the snapshot's position (the CLI writes them into the file header). */
export const BackupHeaders = {
  clusterId: 'x-qkv-cluster-id',
  node: 'x-qkv-node',
  appliedIndex: 'x-qkv-applied-index',
  appliedTerm: 'x-qkv-applied-term',
} as const;

/** Serves backup streams for one node, one at a time. */
export class BackupEndpoint {
  private busy = false;

  constructor(private readonly source: { readonly store: NodeStore; readonly id: string; readonly clusterId: string | null }) {}

  /** True while a backup is streaming. */
  active(): boolean {
    return this.busy;
  }

  async serve(res: ServerResponse): Promise<true> {
    if (this.busy) throw new BusyError(BACKUP_BUSY_RETRY_MS, 'a backup is already streaming from this node (one at a time); retry later or use another node');
    this.busy = true;
    try {
      const reader = await this.source.store.openSnapshotReader({ chunkBytes: BACKUP_CHUNK_BYTES });
      try {
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          [BackupHeaders.clusterId]: this.source.clusterId ?? '',
          [BackupHeaders.node]: this.source.id,
          [BackupHeaders.appliedIndex]: String(reader.info.index),
          [BackupHeaders.appliedTerm]: String(reader.info.term),
        });
        for await (const chunk of reader) {
          if (res.destroyed) return true;
          if (!res.write(chunk)) await drained(res, BACKUP_STALL_MS);
        }
        res.end();
      } catch {
        res.destroy(); // mid-stream: the reader sees a truncated stream and refuses it
      } finally {
        await reader.close();
      }
      return true;
    } finally {
      this.busy = false;
    }
  }
}

/** Resolves when `res` drains; rejects when it closes or stalls for `stallMs`. */
function drained(res: ServerResponse, stallMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      res.off('drain', onDrain);
      res.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new Error('backup reader disconnected'));
    const timer = setTimeout(() => done(new Error(`backup reader stalled for ${stallMs} ms`)), stallMs);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}
