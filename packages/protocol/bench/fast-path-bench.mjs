// µs per call of the server's per-request protocol work: decode + validate a request frame, and
// encode its answer. Not a test (no assertions on speed); each case runs about `seconds`.
// Run from the repository root (optionally against another build of the package, to compare):
//   pnpm exec tsc -b packages/protocol && node packages/protocol/bench/fast-path-bench.mjs [seconds] [distDir]
import { Packr } from 'msgpackr';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { measure } from '../../../scripts/microbench.mjs';

const SECONDS = Number(process.argv[2] ?? 0.5);
const dist = process.argv[3] ?? new URL('../dist/', import.meta.url).pathname;
const { decodeMsgpack, decodeRequestFrame, encodeFrame, validateRequest, DEFAULT_LIMITS } = await import(pathToFileURL(resolve(dist, 'index.js')).href);
const FRAMES = 1024;

// Frames as the client writes them (its put encoder writes msgpackr's bytes for this field order).
const packr = new Packr({ useRecords: false, moreTypes: false, encodeUndefinedAsNil: true });
const sessionId = randomUUID();
const putFrames = [];
const getFrames = [];
for (let i = 0; i < FRAMES; i++) {
  const key = Buffer.from(`key-${String(i % 1000).padStart(6, '0')}`);
  const value = new Uint8Array(100).fill(i & 0xff);
  const id = 100_000 + i;
  putFrames.push(Buffer.from(packr.pack({ op: 'put', key, value, session: { id: sessionId, seq: 5000 + i, ackedBelow: 4990 + i }, id, timeoutMs: 5000 })));
  getFrames.push(Buffer.from(packr.pack({ op: 'get', key, consistency: 'linearizable', id, timeoutMs: 5000 })));
}
const max = DEFAULT_LIMITS.maxFrameBytes;
const item = { key: Buffer.from('key-000001'), value: new Uint8Array(100).fill(1), createRevision: 1_234_567, modRevision: 2_345_678, version: 3 };

const cases = [
  ['decode+validate put (100 B value)', (i) => decodeRequestFrame(putFrames[i & (FRAMES - 1)], DEFAULT_LIMITS)],
  // The generic path alone (what every frame the fast path does not take costs).
  ['  generic path: msgpackr + validateRequest', (i) => validateRequest(decodeMsgpack(putFrames[i & (FRAMES - 1)], max), DEFAULT_LIMITS)],
  ['decode+validate get', (i) => decodeRequestFrame(getFrames[i & (FRAMES - 1)], DEFAULT_LIMITS)],
  ['encode put answer', (i) => encodeFrame({ id: 100_000 + i, ok: true, result: { revision: 2_000_000 + i, term: 3 } }, max)],
  ['encode delete answer', (i) => encodeFrame({ id: 100_000 + i, ok: true, result: { revision: 2_000_000 + i, deleted: true, term: 3 } }, max)],
  ['encode get answer (100 B value)', (i) => encodeFrame({ id: 100_000 + i, ok: true, result: { item } }, max)],
];

console.log(`build: ${dist}`);
for (const [name, fn] of cases) {
  const { us } = measure(fn, { seconds: SECONDS });
  console.log(`${name.padEnd(44)} ${us.toFixed(3)} µs`);
}
