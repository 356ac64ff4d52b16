// Times @quorumkv/checker's linearizability check on recorded histories and on generated hard
// ones: median of REPS runs (default 21) in one process. With --against FILE (a built module
// exporting checkLinearizable(pairs, options), e.g. an older build's checker) it alternates runs
// of both and prints the ratio. Build first (`pnpm build`).
//
//   node scripts/bench-checker.mjs jepsen-lite/out/*/history.jsonl
//   node scripts/bench-checker.mjs --against /tmp/old/checkers/linearizable.js run/history.jsonl
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ options: { against: { type: 'string' } }, allowPositionals: true });
const checker = await import(new URL('../packages/checker/dist/index.js', import.meta.url).href);
const other = values.against === undefined ? undefined : await import(new URL(values.against, `file://${process.cwd()}/`).href);
const reps = Number(process.env.REPS ?? 21);
/** Generated one-key histories: [seed, processes, ops, info rate]; the last ones need 10^5+ steps. */
const GENERATED = [[1, 8, 2000, 0.1], [3, 8, 3000, 0.02], [4, 16, 600, 0.3], [5, 24, 300, 0.4]];

const cases = positionals.map((f) => [f, checker.pairOps(checker.parseHistory(readFileSync(f, 'utf8')))]);
for (const [seed, processes, ops, infoRate] of GENERATED) {
  cases.push([`generated seed=${seed} processes=${processes} ops=${ops} info=${infoRate}`, checker.pairOps(checker.generateRegisterHistory({ seed, processes, ops, keys: 1, infoRate }))]);
}
const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];
const timed = (f) => {
  const t = performance.now();
  const r = f();
  return [performance.now() - t, r];
};
for (const [name, pairs] of cases) {
  const mine = [];
  const theirs = [];
  let r;
  for (let i = 0; i < reps; i++) {
    if (other !== undefined) theirs.push(timed(() => other.checkLinearizable(pairs, { budgetMsPerKey: 600_000 }))[0]);
    let ms;
    [ms, r] = timed(() => checker.checkLinearizable(pairs));
    mine.push(ms);
  }
  const vs = other === undefined ? '' : `  against ${median(theirs).toFixed(2)} ms  ratio ${(median(mine) / median(theirs)).toFixed(2)}`;
  console.log(`${name}  pairs=${pairs.length} valid=${r.valid} steps=${r.evidence.steps}  ${median(mine).toFixed(2)} ms${vs}`);
}
