// Do two builds of the state machine apply alike? One seeded workload (puts, deletes, cas, session
// retries, expiry, membership items, bad commands) goes to a memory-twin store of each build; every
// batch's results must be equal, and so must the writes each batch hands the backend (compared as
// sets of namespace/key/value: the order of ops inside one atomic batch does not matter). For
// refactors of the state machine: replicas running either build must build the same state.
// Not a test. Run from the repository root:
//   pnpm exec tsc -b packages/storage && node packages/storage/bench/compare-builds.mjs <distA> <distB> [batches] [seed]
import { resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { pathToFileURL } from 'node:url';

const [distA, distB] = process.argv.slice(2, 4);
if (!distA || !distB) throw new Error('usage: compare-builds.mjs <distA> <distB> [batches] [seed]');
const BATCHES = Number(process.argv[4] ?? 2000);
const SEED = Number(process.argv[5] ?? 1);
const libs = await Promise.all([distA, distB].map((d) => import(pathToFileURL(resolve(d, 'index.js')).href)));

/** xorshift32, as @quorumkv/testkit's. */
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

/** The workload's batches, as plain descriptions (each build encodes its own commands). */
function workload() {
  const rand = rng(SEED);
  const int = (n) => Math.floor(rand() * n);
  const seqs = new Map();
  const clients = [];
  let sessionNames = 0;
  let timeMs = 1_000;
  let index = 0;
  const batches = [];
  for (let b = 0; b < BATCHES; b++) {
    const items = [];
    for (let i = 0, n = 1 + int(20); i < n; i++) {
      index++;
      const r = rand();
      if (r < 0.02) items.push({ index, membership: { voters: [{ id: `n${int(3)}`, address: '127.0.0.1:1' }], learners: [] } });
      else if (r < 0.04) items.push({ index, bytes: Uint8Array.from({ length: int(6) }, () => int(256)) });
      else items.push({ index, command: command() });
    }
    batches.push(items);
  }
  return batches;

  function command() {
    const key = new Uint8Array([0x61 + int(20)]);
    const base = {};
    if (rand() < 0.7) {
      // 24 clients; now and then one starts a new session (as a client does after QKV_SESSION_EXPIRED).
      const c = int(24);
      if (rand() < 0.03) clients[c] = `s${++sessionNames}`;
      const id = (clients[c] ??= `s${++sessionNames}`);
      const last = seqs.get(id) ?? 0;
      const seq = rand() < 0.15 && last > 0 ? Math.max(1, last - int(3)) : last + 1; // some retries
      seqs.set(id, Math.max(seq, last));
      base.session = { id, seq, ackedBelow: Math.min(seq, Math.max(1, last - 1 - int(6))) };
    }
    if (rand() < 0.7) base.timeMs = timeMs += rand() < 0.0005 ? 3_000 : int(30);
    const value = () => Uint8Array.from({ length: rand() < 0.2 ? 150 : int(10) }, () => int(4));
    const r = rand();
    if (r < 0.5) return { op: 'put', key, value: value(), ...base };
    if (r < 0.65) return { op: 'del', key, ...base };
    const cond = rand() < 0.4 ? { modRevision: int(index + 1) } : rand() < 0.5 ? { absent: true } : { value: new Uint8Array([int(4)]) };
    return { op: 'cas', key, cond, then: rand() < 0.7 ? { op: 'put', value: value() } : { op: 'del' }, ...base };
  }
}

/** A batch's writes as a sorted list of "ns key value" strings. */
function opSet(ops) {
  const hex = (b) => Buffer.from(b).toString('hex');
  return ops.map((op) => `${op.ns} ${hex(op.key)} ${op.type === 'put' ? hex(op.value) : '-'}`).sort();
}

const kv = { sessionTtlMs: 2_000, maxResultsPerSession: 6, maxSessions: 30, recordCacheBytes: 4096 };
const stores = [];
for (const lib of libs) {
  const disk = new lib.MemoryDisk();
  disk.recordWrites();
  stores.push({ lib, disk, store: await lib.openMemoryNodeStore(disk, { kv }) });
}
let ops = 0;
const batches = workload();
for (const [b, batch] of batches.entries()) {
  const outcomes = [];
  for (const s of stores) {
    const journal = s.disk.journal;
    const before = journal.length;
    const items = batch.map((x) =>
      x.membership
        ? { kind: 'membership', index: x.index, term: 1, data: new Uint8Array([1]), membership: x.membership }
        : { kind: 'entry', index: x.index, term: 1, data: x.bytes ?? s.lib.encodeCommand(x.command) },
    );
    const results = await s.store.kv.apply(items);
    const written = journal.slice(before).flatMap((w) => w.ops);
    outcomes.push({ results, writes: opSet(written), applied: s.store.kv.applied() });
  }
  const [a, bOut] = outcomes;
  if (!isDeepStrictEqual(a.results, bOut.results)) throw new Error(`batch ${b} (seed ${SEED}): results differ\n${JSON.stringify(a.results)}\n${JSON.stringify(bOut.results)}`);
  if (!isDeepStrictEqual(a.writes, bOut.writes)) throw new Error(`batch ${b} (seed ${SEED}): writes differ\n${a.writes.join('\n')}\n---\n${bOut.writes.join('\n')}`);
  if (!isDeepStrictEqual(a.applied, bOut.applied)) throw new Error(`batch ${b} (seed ${SEED}): applied position differs`);
  ops += a.writes.length;
}
const hashes = await Promise.all(stores.map((s) => s.store.kv.stateHash()));
if (hashes[0] !== hashes[1]) throw new Error(`state hashes differ (seed ${SEED})`);
console.log(`${BATCHES} batches (seed ${SEED}): equal results, equal writes (${ops} ops), equal state hash ${hashes[0].slice(0, 16)}…`);
for (const s of stores) await s.store.close();
