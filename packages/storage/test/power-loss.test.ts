// Apply durability under power loss. LevelDB does not sync the old journal file when it switches
// to a new one, so an unsynced batch can be lost while a LATER synced batch survives: "a synced
// write makes every earlier write durable" does not hold. The memory twin's power-loss model
// (MemoryDisk.powerLoss) loses unsynced batches in any position. After such a failure the node
// restarts from what is on disk and re-applies the log after the applied index; the state must
// then be exactly the state of a replica that never failed.
import { describe, expect, test } from 'vitest';
import { type ApplyItem, type Command, type LogEntry, MemoryDisk, encodeCommand, openMemoryNodeStore } from '@quorumkv/storage';
import { xorshift32 } from '@quorumkv/testkit';

const SEED = Number(process.env['QKV_SEED'] ?? 7);
/** Entries of the workload, appended and applied in batches of BATCH. */
const ENTRIES = 400;
const BATCH = 20;

/** Seeded commands over few keys and sessions, so batches depend on earlier ones (versions, cas, dedup). */
function workload(seed: number): LogEntry[] {
  const rand = xorshift32(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const seqs = [0, 0, 0];
  const entries: LogEntry[] = [];
  for (let index = 1; index <= ENTRIES; index++) {
    const key = new TextEncoder().encode(`k${int(8)}`);
    const s = int(3);
    const seq = ++seqs[s]!;
    const session = { id: `c${s}`, seq, ackedBelow: Math.max(0, seq - 2) };
    const r = rand();
    const cmd: Command =
      r < 0.6
        ? { op: 'put', key, value: new Uint8Array([index & 0xff]), session, timeMs: index }
        : r < 0.8
          ? { op: 'del', key, session, timeMs: index }
          : { op: 'cas', key, cond: { absent: true }, then: { op: 'put', value: new Uint8Array([1]) }, session, timeMs: index };
    entries.push({ index, term: 1, type: 0, data: encodeCommand(cmd) });
  }
  return entries;
}

const asItems = (entries: LogEntry[]): ApplyItem[] => entries.map((e) => ({ kind: 'entry', index: e.index, term: e.term, data: e.data }));

describe('apply durability under power loss', () => {
  test(`no apply batch can be lost behind a later applied index (seed ${SEED})`, async () => {
    const entries = workload(SEED);
    const reference = await openMemoryNodeStore();
    await reference.kv.apply(asItems(entries));
    const want = { applied: reference.kv.appliedIndex(), hash: await reference.kv.stateHash() };

    const disk = new MemoryDisk();
    let store = await openMemoryNodeStore(disk);
    disk.recordWrites();
    for (let i = 0; i < entries.length; i += BATCH) {
      const batch = entries.slice(i, i + BATCH);
      await store.log.append({ entries: batch, sync: true });
      await store.kv.apply(asItems(batch)); // the node's call: default options
    }
    await store.close();
    // Every other unsynced batch is lost, in the middle of the journal, later ones survive.
    let unsynced = 0;
    disk.powerLoss((batch) => batch.label === 'kv.apply' && unsynced++ % 2 === 0);

    // Restart as the node does: re-apply whatever the log holds after the applied index.
    store = await openMemoryNodeStore(disk);
    const { entries: log } = await store.log.load();
    await store.kv.apply(asItems(log.filter((e) => e.index > store.kv.appliedIndex())));
    expect({ applied: store.kv.appliedIndex(), hash: await store.kv.stateHash() }, `replay: QKV_SEED=${SEED}`).toEqual(want);
    await store.close();
  });
});
