// Fails when the node's host loop reaches for the process on its own: the clock, timers,
// ambient randomness, files or sockets. The host takes its world as arguments (host-world.ts);
// the production wiring lives in node-production.ts, the simulated one in packages/sim-node.
// So the same host code runs in production and, deterministically, under simulation.
import { readFileSync } from 'node:fs';

const HOST_FILES = [
  'packages/server/src/node.ts',
  'packages/server/src/host-world.ts',
  'packages/server/src/compaction.ts',
  'packages/server/src/founding.ts',
  'packages/server/src/identity.ts',
  'packages/server/src/membership.ts',
  'packages/server/src/kv-service.ts',
  'packages/server/src/read-index.ts',
  'packages/server/src/ready-loop.ts',
  'packages/server/src/apply-pipeline.ts',
  'packages/server/src/write-waiters.ts',
  'packages/server/src/identity-guard.ts',
  'packages/server/src/node-bootstrap.ts',
  'packages/server/src/host-assert.ts',
  'packages/server/src/log-compactor.ts',
];
const rules = [
  [/from\s+['"](node:)?(fs|fs\/promises|net|http|https|os|child_process|worker_threads|timers|perf_hooks|dgram|tls)['"]/, 'imports an I/O or timer module'],
  [/from\s+['"](ws|classic-level)['"]/, 'imports a socket or database package (take it from the world)'],
  [/\bnew PeerTransport\b|\bopenNodeStore\b|\bLevelBackend\b/, 'opens a socket or a database (take it from the world)'],
  [/\bDate\.now\b|\bnew Date\b|\bperformance\.now\b|\bprocess\.hrtime\b/, 'reads the clock (use world.clock)'],
  [/\bMath\.random\b|\brandomInt\b|\brandomBytes\b|\bgetRandomValues\b/, 'uses ambient randomness (use world.random)'],
  [/\bsetTimeout\b|\bsetInterval\b|\bsetImmediate\b|\bclearTimeout\b|\bclearInterval\b/, 'uses timers (use world.clock / world.defer)'],
  [/\bprocess\.(exit|exitCode|on|nextTick)\b/, 'touches the process (use world.onFatal)'],
];
const root = new URL('../', import.meta.url).pathname;
const problems = [];
for (const f of HOST_FILES) {
  readFileSync(root + f, 'utf8').split('\n').forEach((line, i) => {
    const code = line.replace(/\/\/.*$/, '');
    if (/^\s*\*/.test(code) || /^\s*import type\b/.test(code)) return;
    for (const [re, why] of rules) if (re.test(code)) problems.push(`${f}:${i + 1}: ${why}: ${line.trim()}`);
  });
}
if (problems.length > 0) {
  console.error('host purity check FAILED:\n' + problems.join('\n'));
  process.exit(1);
}
console.log(`host purity check: ok (no clock, timers, ambient randomness, files or sockets in ${HOST_FILES.length} host files)`);
