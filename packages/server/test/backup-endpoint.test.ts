// GET /v1/admin/snapshot's server side (backup-endpoint.ts): it streams a stream that verifies as
// a snapshot of the store, with the applied position in the response headers; a second backup
// while one streams is refused with QKV_BUSY; the slot is free again once the first ends.
import { Writable } from 'node:stream';
import type { ServerResponse } from 'node:http';
import { describe, expect, test } from 'vitest';
import { BusyError } from '@quorumkv/protocol';
import { encodeCommand, inspectSnapshotStream, openMemoryNodeStore } from '@quorumkv/storage';
import { BackupEndpoint, BackupHeaders } from '../src/backup-endpoint.js';

/** A ServerResponse stand-in that collects what is written. */
function sink(): { res: ServerResponse; chunks: Uint8Array[]; headers: Record<string, string> } {
  const chunks: Uint8Array[] = [];
  const headers: Record<string, string> = {};
  const w = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  const res = Object.assign(w, {
    writeHead(_status: number, h: Record<string, string>) {
      Object.assign(headers, h);
      return res;
    },
  });
  return { res: res as unknown as ServerResponse, chunks, headers };
}

describe('backup endpoint', () => {
  test('streams a verifiable snapshot, one at a time', async () => {
    const store = await openMemoryNodeStore();
    await store.kv.apply([{ kind: 'entry', index: 1, term: 3, data: encodeCommand({ op: 'put', key: new Uint8Array([1]), value: new Uint8Array([2]) }) }]);
    const ep = new BackupEndpoint({ store, id: 'n2', clusterId: 'c'.repeat(32) });
    const first = sink();
    const running = ep.serve(first.res);
    expect(ep.active()).toBe(true);
    await expect(ep.serve(sink().res)).rejects.toBeInstanceOf(BusyError);
    await running;
    expect(ep.active()).toBe(false);
    expect(first.headers[BackupHeaders.appliedIndex]).toBe('1');
    expect(first.headers[BackupHeaders.node]).toBe('n2');
    const summary = await inspectSnapshotStream(first.chunks);
    expect(summary.info.index).toBe(1);
    expect(summary.kvRecords).toBe(1);
    const again = sink();
    await ep.serve(again.res);
    expect(again.chunks.length).toBeGreaterThan(0);
    await store.close();
  });
});
