// Fails when the consensus core picks up I/O, a clock, ambient randomness or a dependency.
// The core must stay a pure state machine: same inputs, same outputs (see docs/raft.md).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = new URL('../packages/raft/src/', import.meta.url).pathname;
const rules = [
  [/from\s+['"](node:|fs|net|http|https|crypto|os|child_process|worker_threads|timers)/, 'imports a Node module'],
  [/\brequire\s*\(/, 'uses require()'],
  [/import\s*\(/, 'uses dynamic import()'],
  [/\bDate\.now\b|\bnew Date\b|\bperformance\.now\b|\bprocess\.hrtime\b/, 'reads the clock'],
  [/\bMath\.random\b|\bcrypto\.getRandomValues\b/, 'uses ambient randomness'],
  [/\bsetTimeout\b|\bsetInterval\b|\bsetImmediate\b|\bqueueMicrotask\b/, 'uses timers'],
  [/\bprocess\./, 'touches process'],
  [/from\s+['"](?!\.)[^'"]+['"]/, 'imports a package (the core has no dependencies)'],
];
const problems = [];
for (const f of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
  readFileSync(join(dir, f), 'utf8').split('\n').forEach((line, i) => {
    const code = line.replace(/\/\/.*$/, '');
    if (/^\s*\*/.test(code)) return;
    for (const [re, why] of rules) if (re.test(code)) problems.push(`packages/raft/src/${f}:${i + 1}: ${why}: ${line.trim()}`);
  });
}
const pkg = JSON.parse(readFileSync(new URL('../packages/raft/package.json', import.meta.url), 'utf8'));
if (Object.keys(pkg.dependencies ?? {}).length > 0) problems.push('packages/raft/package.json: the core must have no runtime dependencies');
if (problems.length > 0) {
  console.error('raft purity check FAILED:\n' + problems.join('\n'));
  process.exit(1);
}
console.log('raft purity check: ok (no I/O, clock, timers, ambient randomness or dependencies in packages/raft/src)');
