// What durability costs, A/B in one run (rounds alternate, so load on the machine hits both):
//
//  1. the node's pipeline: a synced log append of batch i+1 runs while batch i applies (as the
//     host loop does); the apply batch unsynced (A: the old default) or synced (B: the default now,
//     because LevelDB does not sync the old journal file when it switches to a new one);
//  2. a synced log append of 10 entries: the LevelDB batch alone (A: what an append cost before the
//     high-water mark) or the store's append, which also writes and fdatasyncs the mark file, concurrently (B).
//
// Not a test. Run from the repository root:
//   pnpm exec tsc -b packages/storage && node packages/storage/bench/durability-bench.mjs [seconds-per-round] [rounds]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelBackend } from '../dist/backend.js';
import { u64be } from '../dist/codec.js';
import { encodeCommand, openNodeStore } from '../dist/index.js';
import { sealSegment } from '../dist/log-segments.js';
import { MetaKey, metaPut } from '../dist/meta.js';

const SECONDS = Number(process.argv[2] ?? 3);
const ROUNDS = Number(process.argv[3] ?? 3);
const BATCH = 100;
const KEYS = 10_000;
const SESSIONS = 50;
const APPEND_ENTRIES = 10;
const value = new Uint8Array(256).fill(3);

function commandBatch(state) {
  const entries = [];
  for (let i = 0; i < BATCH; i++) {
    const index = ++state.index;
    const s = index % SESSIONS;
    const seq = ++state.seqs[s];
    const key = new TextEncoder().encode(`key-${(index * 7919) % KEYS}`);
    const data = encodeCommand({ op: 'put', key, value, session: { id: `client-${s}`, seq, ackedBelow: Math.max(1, seq - 4) }, timeMs: Date.now() });
    entries.push({ index, term: 1, type: 0, data });
  }
  return entries;
}

/** Entries/s through append(i+1) ‖ apply(i), the apply synced or not. */
async function pipeline(syncApply) {
  const dir = mkdtempSync(join(tmpdir(), 'qkv-bench-durability-'));
  const store = await openNodeStore(dir);
  const state = { index: 0, seqs: new Array(SESSIONS).fill(0) };
  let prev = commandBatch(state);
  await store.log.append({ entries: prev, sync: true });
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(SECONDS * 1e9);
  let applied = 0;
  while (process.hrtime.bigint() < deadline) {
    const next = commandBatch(state);
    const items = prev.map((e) => ({ kind: 'entry', index: e.index, term: e.term, data: e.data }));
    await Promise.all([store.log.append({ entries: next, sync: true }), store.kv.apply(items, { sync: syncApply })]);
    applied += prev.length;
    prev = next;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return applied / seconds;
}

/** Appends/s of synced 10-entry appends: the bare LevelDB batch, or the store's append (batch + mark). */
async function appends(withMark) {
  const dir = mkdtempSync(join(tmpdir(), 'qkv-bench-durability-'));
  const store = withMark ? await openNodeStore(dir) : undefined;
  const backend = withMark ? undefined : await LevelBackend.open(dir, { createIfMissing: true, hooks: {} });
  let index = 0;
  let n = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(SECONDS * 1e9);
  while (process.hrtime.bigint() < deadline) {
    const entries = [];
    for (let i = 0; i < APPEND_ENTRIES; i++) entries.push({ index: ++index, term: 1, type: 0, data: value });
    const hardState = { term: 1, vote: 'n1', commit: index - APPEND_ENTRIES };
    if (store) await store.log.append({ hardState, entries, sync: true });
    else {
      const ops = [metaPut(MetaKey.hardState, hardState), { type: 'put', ns: 'log', key: u64be(entries[0].index), value: sealSegment(entries) }];
      await backend.write(ops, { sync: true, label: 'bench' });
    }
    n++;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await (store ?? backend).close();
  rmSync(dir, { recursive: true, force: true });
  return n / seconds;
}

const fmt = (xs) => xs.map((x) => x.toFixed(0)).join(' / ');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const res = { applyUnsynced: [], applySynced: [], appendBare: [], appendMark: [] };
console.log(`${ROUNDS} rounds of ${SECONDS} s per case, alternating A/B, dir under ${tmpdir()}`);
for (let r = 0; r < ROUNDS; r++) {
  res.applyUnsynced.push(await pipeline(false));
  res.applySynced.push(await pipeline(true));
  res.appendBare.push(await appends(false));
  res.appendMark.push(await appends(true));
}
console.log(`pipeline, apply unsynced (A): ${fmt(res.applyUnsynced)} entries/s (median ${median(res.applyUnsynced).toFixed(0)})`);
console.log(`pipeline, apply synced   (B): ${fmt(res.applySynced)} entries/s (median ${median(res.applySynced).toFixed(0)})`);
console.log(`append ×${APPEND_ENTRIES}, batch only  (A): ${fmt(res.appendBare)} appends/s (median ${median(res.appendBare).toFixed(0)})`);
console.log(`append ×${APPEND_ENTRIES}, with mark   (B): ${fmt(res.appendMark)} appends/s (median ${median(res.appendMark).toFixed(0)})`);
