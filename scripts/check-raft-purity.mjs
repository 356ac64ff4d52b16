// Fails when the consensus core (or another pure package) picks up I/O, a clock, ambient
// randomness or a dependency. The core must stay a pure state machine: same inputs, same outputs
// (see docs/raft.md); the linearizability checker must give a simulation the same verdict for
// the same history (see docs/checker.md).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Packages held to the rules: directory under packages/ and what it is. */
const PURE_PACKAGES = [
  ['raft', 'the core'],
  ['checker', 'the checker'],
];
const rules = (what) => [
  [/from\s+['"](node:|fs|net|http|https|crypto|os|child_process|worker_threads|timers)/, 'imports a Node module'],
  [/\brequire\s*\(/, 'uses require()'],
  [/import\s*\(/, 'uses dynamic import()'],
  [/\bDate\.now\b|\bnew Date\b|\bperformance\.now\b|\bprocess\.hrtime\b/, 'reads the clock'],
  [/\bMath\.random\b|\bcrypto\.getRandomValues\b/, 'uses ambient randomness'],
  [/\bsetTimeout\b|\bsetInterval\b|\bsetImmediate\b|\bqueueMicrotask\b/, 'uses timers'],
  [/\bprocess\./, 'touches process'],
  [/from\s+['"](?!\.)[^'"]+['"]/, `imports a package (${what} has no dependencies)`],
];
const problems = [];
for (const [name, what] of PURE_PACKAGES) {
  const dir = new URL(`../packages/${name}/src/`, import.meta.url).pathname;
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    readFileSync(join(dir, f), 'utf8').split('\n').forEach((line, i) => {
      const code = line.replace(/\/\*.*?\*\//g, '').replace(/\/\/.*$/, '');
      if (/^\s*\*/.test(code)) return;
      for (const [re, why] of rules(what)) if (re.test(code)) problems.push(`packages/${name}/src/${f}:${i + 1}: ${why}: ${line.trim()}`);
    });
  }
  const pkg = JSON.parse(readFileSync(new URL(`../packages/${name}/package.json`, import.meta.url), 'utf8'));
  if (Object.keys(pkg.dependencies ?? {}).length > 0) problems.push(`packages/${name}/package.json: ${what} must have no runtime dependencies`);
}
if (problems.length > 0) {
  console.error('purity check FAILED:\n' + problems.join('\n'));
  process.exit(1);
}
console.log(`purity check: ok (no I/O, clock, timers, ambient randomness or dependencies in ${PURE_PACKAGES.map(([n]) => `packages/${n}/src`).join(', ')})`);
