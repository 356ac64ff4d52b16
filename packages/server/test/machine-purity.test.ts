// The snapshot state machines, the compaction decision and the token bucket take their world as
// arguments (src/world.ts): no clock, timers, ambient randomness or I/O of their own, so the
// whole-node simulation can run them on simulated time. This test fails when one creeps in
// (the consensus core has the same check, scripts/check-raft-purity.mjs).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const PURE_FILES = ['snapshot-sender.ts', 'snapshot-receiver.ts', 'snapshot-frames.ts', 'compaction.ts', 'token-bucket.ts'];
const RULES: Array<[RegExp, string]> = [
  [/from\s+['"](node:)?(fs|net|http|https|http2|tls|dgram|os|child_process|worker_threads|timers|ws)(\/[^'"]*)?['"]/, 'imports an I/O module'],
  [/\bDate\.now\b|\bnew Date\b|\bperformance\.now\b|\bprocess\.hrtime\b/, 'reads the clock'],
  [/\bMath\.random\b|\brandomInt\b|\brandomBytes\b|\brandomUUID\b|\bgetRandomValues\b/, 'uses ambient randomness'],
  [/\bsetTimeout\b|\bsetInterval\b|\bsetImmediate\b|\bqueueMicrotask\b/, 'uses timers'],
  [/\bprocess\./, 'touches process'],
];

/** Problems in `source`, one line each (comments are skipped). */
function impurities(name: string, source: string): string[] {
  const out: string[] = [];
  source.split('\n').forEach((line, i) => {
    const code = line.replace(/\/\/.*$/, '');
    if (/^\s*\*/.test(code)) return;
    for (const [re, why] of RULES) if (re.test(code)) out.push(`${name}:${i + 1}: ${why}: ${line.trim()}`);
  });
  return out;
}

describe('snapshot machines are pure', () => {
  it.each(PURE_FILES)('%s has no clock, timers, ambient randomness or I/O', (f) => {
    expect(impurities(f, readFileSync(new URL(`../src/${f}`, import.meta.url), 'utf8'))).toEqual([]);
  });

  it('the check has teeth', () => {
    expect(impurities('x.ts', "import { randomInt } from 'node:crypto';\nconst t = Date.now();\nsetTimeout(f, 1);\n// Date.now() in a comment")).toEqual([
      "x.ts:1: uses ambient randomness: import { randomInt } from 'node:crypto';",
      'x.ts:2: reads the clock: const t = Date.now();',
      'x.ts:3: uses timers: setTimeout(f, 1);',
    ]);
  });
});
