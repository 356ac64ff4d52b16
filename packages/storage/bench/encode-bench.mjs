// ns per call of msgpackr's generic pack() vs the hand-written encoders, for each hot record shape.
// Not a test (no assertions on speed); each case runs about `seconds` (default 0.3) per encoder.
// Run from the repository root:
//   pnpm exec tsc -b packages/storage && node packages/storage/bench/encode-bench.mjs [seconds]
import { pack } from '../dist/codec.js';
import { encodeKvRecord, encodeSessionHeader } from '../dist/kv-layout.js';
import { encodeSegment } from '../dist/log-segments.js';
import { encodeApplyResult, packPlain } from '../dist/msgpack-writer.js';

const SECONDS = Number(process.argv[2] ?? 0.3);
const MAX_CALLS = 20_000_000;

const value = new Uint8Array(256).fill(3);
const record = { value, createRevision: 1_234_567, modRevision: 2_345_678, version: 17 };
const putResult = { op: 'put', revision: 2_345_678, term: 3 };
const delResult = { op: 'del', deleted: true, revision: 2_345_678, term: 3 };
const casFailed = {
  op: 'cas',
  succeeded: false,
  revision: 2_345_678,
  current: { key: new Uint8Array(16).fill(1), ...record },
  term: 3,
};
const errorResult = { op: 'error', code: 'QKV_SESSION_EXPIRED', message: 'session client-7: the result of seq 3 was already discarded' };
const seqs = [101, 102, 103, 104, 105];
const header = { lastActiveMs: 1_763_791_000_000, discardedBelow: 100, seqs, inline: new Map(seqs.map((s) => [s, pack({ op: 'put', revision: 1000 + s, term: 3 })])) };
const applied = { index: 2_345_678, term: 3, hash: new Uint8Array(32).fill(9), clockMs: 1_763_791_000_000 };
const entry = (i) => ({ index: 1000 + i, term: 3, type: 0, data: new Uint8Array(300).fill(i) });
const entries1 = [entry(0)];
const entries20 = Array.from({ length: 20 }, (_, i) => entry(i));

/** [name, msgpackr (what the call site did before), hand-written]. */
const cases = [
  ['kv record (256 B value)', () => pack([record.value, record.createRevision, record.modRevision, record.version]), () => encodeKvRecord(record)],
  ['put result', () => pack(putResult), () => encodeApplyResult(putResult)],
  ['del result', () => pack(delResult), () => encodeApplyResult(delResult)],
  ['cas failed + current', () => pack(casFailed), () => encodeApplyResult(casFailed)],
  ['error result', () => pack(errorResult), () => encodeApplyResult(errorResult)],
  [
    'session header (5 inline)',
    () => pack([header.lastActiveMs, header.discardedBelow, header.seqs, header.seqs.map((s) => header.inline.get(s) ?? null)]),
    () => encodeSessionHeader(header),
  ],
  ['applied meta', () => pack(applied), () => packPlain(applied)],
  ['segment, 1 entry of 300 B', () => pack(entries1.map((e) => [e.term, e.type, e.data])), () => encodeSegment(entries1)],
  ['segment, 20 entries of 300 B', () => pack(entries20.map((e) => [e.term, e.type, e.data])), () => encodeSegment(entries20)],
];

let sink = 0;
function nsPerCall(fn) {
  for (let i = 0; i < 20_000; i++) sink += fn().length; // warm-up
  let calls = 0;
  const start = process.hrtime.bigint();
  const deadlineNs = start + BigInt(Math.round(SECONDS * 1e9));
  while (calls < MAX_CALLS) {
    for (let i = 0; i < 1000; i++) sink += fn().length;
    calls += 1000;
    if (process.hrtime.bigint() >= deadlineNs) break;
  }
  return Number(process.hrtime.bigint() - start) / calls;
}

console.log('shape'.padEnd(32), 'msgpackr ns'.padStart(12), 'hand ns'.padStart(10), 'speed-up'.padStart(9));
for (const [name, before, after] of cases) {
  const a = nsPerCall(before);
  const b = nsPerCall(after);
  console.log(name.padEnd(32), a.toFixed(0).padStart(12), b.toFixed(0).padStart(10), `${(a / b).toFixed(2)}x`.padStart(9));
}
if (sink === 0) console.log('(sink)');
