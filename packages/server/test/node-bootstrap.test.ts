// Bootstrap (node-bootstrap.ts): a node's parts restored from its world — the core starts at the
// stored applied index with commit at least that far, an empty data directory with the founding
// flag waits for the founding handshake, and a restart keeps its incarnation.
import { describe, expect, it } from 'vitest';
import { EntryType, type Entry } from '@quorumkv/raft';
import { MemoryDisk, openMemoryNodeStore } from '@quorumkv/storage';
import { DEFAULTS, type ServeConfig } from '../src/config.js';
import { memoryIdentityFiles, type NodeWorld } from '../src/host-world.js';
import { createLogger } from '../src/logger.js';
import { restoreNode } from '../src/node-bootstrap.js';

const cfg: ServeConfig = {
  ...DEFAULTS,
  id: 'n1',
  listen: 'mem:n1',
  host: 'mem',
  port: 0,
  peers: [{ id: 'n1', address: 'mem-n1:1' }],
  initialClusterState: 'new',
  dataDir: 'memory:n1',
  zone: undefined,
  clusterSecret: 'test-secret',
  logLevel: 'silent',
} as ServeConfig;

const log = createLogger('n1', 'silent');

/** The parts of a world restoreNode reads: the store, the identity files, randomness. */
function world(files: Map<string, string>, store: NodeWorld['store']): NodeWorld {
  let n = 0;
  return {
    store,
    identity: memoryIdentityFiles(files),
    newIncarnation: () => (++n).toString(16).padStart(32, '0'),
    random: { int: () => 0 },
  } as unknown as NodeWorld;
}

function entries(n: number): Entry[] {
  return Array.from({ length: n }, (_, i) => ({ index: i + 1, term: 1, type: EntryType.Normal, data: new Uint8Array(0) }));
}

describe('restoreNode', () => {
  it('an empty data directory with the founding flag waits for the founding handshake', async () => {
    const disk = new MemoryDisk();
    const files = new Map<string, string>();
    const parts = await restoreNode(cfg, log, world(files, await openMemoryNodeStore(disk)));
    expect(parts.foundingPending).toBe(true);
    expect(parts.raw.raft.log.applied).toBe(0);
    expect(parts.members).toEqual({ voters: [], learners: [] });
    expect(parts.clusterId).toBeNull();
    await parts.store.close();
  });

  it('restarts at the stored applied index, commit at least that far, with the same incarnation', async () => {
    const disk = new MemoryDisk();
    const files = new Map<string, string>();
    const first = await restoreNode(cfg, log, world(files, await openMemoryNodeStore(disk)));
    await first.store.log.append({ hardState: { term: 1, vote: 'n1', commit: 0 }, entries: entries(3), sync: true });
    await first.store.kv.apply(entries(2).map((e) => ({ kind: 'entry' as const, index: e.index, term: e.term, data: e.data })));
    await first.store.close();
    const again = await restoreNode(cfg, log, world(files, await openMemoryNodeStore(disk)));
    expect(again.foundingPending).toBe(false); // it has state: --initial-cluster-state new is ignored
    expect(again.raw.raft.log.applied).toBe(2);
    expect(again.persisted.commit).toBe(2); // the stored commit (0) trails what was applied
    expect(again.mem.lastIndex()).toBe(3);
    expect(again.incarnation).toBe(first.incarnation);
    await again.store.close();
  });
});
