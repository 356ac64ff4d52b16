// µs per proposed write of the command encoding the leader does (encode + what apply takes back):
// encodeCommand({...cmd, timeMs}) or encodeCommandAt(cmd, timeMs), then decodeCommandOnce.
// Not a test (no assertions on speed); each case runs about `seconds`.
// Run from the repository root (optionally against another build of the package, to compare):
//   pnpm exec tsc -b packages/storage && node packages/storage/bench/command-bench.mjs [seconds] [distDir]
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { measure } from '../../../scripts/microbench.mjs';

const SECONDS = Number(process.argv[2] ?? 0.5);
const dist = process.argv[3] ?? new URL('../dist/', import.meta.url).pathname;
const commands = await import(pathToFileURL(resolve(dist, 'commands.js')).href);
const N = 1024;

const sessionId = randomUUID();
const puts = [];
const dels = [];
for (let i = 0; i < N; i++) {
  const key = Buffer.from(`key-${String(i % 1000).padStart(6, '0')}`);
  const session = { id: sessionId, seq: 5000 + i, ackedBelow: 4990 + i };
  puts.push({ op: 'put', key, value: new Uint8Array(100).fill(i & 0xff), session });
  dels.push({ op: 'del', key, session });
}

// The call node.write makes: the spread before this change, encodeCommandAt after it.
const encodeAt = commands.encodeCommandAt ?? ((cmd, timeMs) => commands.encodeCommand({ ...cmd, timeMs }));
const cases = [
  // Always with decodeCommandOnce, as apply does: encoded commands left in encodeCommand's WeakMap
  // (never applied) slow every later GC down, which would distort the cases after.
  ['put command (100 B value): encode + decodeCommandOnce', (i) => commands.decodeCommandOnce(encodeAt(puts[i & (N - 1)], Date.now()))],
  ['del command: encode + decodeCommandOnce', (i) => commands.decodeCommandOnce(encodeAt(dels[i & (N - 1)], Date.now()))],
];

console.log(`build: ${dist}`);
for (const [name, fn] of cases) console.log(`${name.padEnd(56)} ${measure(fn, { seconds: SECONDS }).us.toFixed(3)} µs`);
