#!/usr/bin/env node
// A jepsen-lite campaign of disk faults: RUNS runs (default 20) cycling over nemesis × workload
// combinations, seeds SEED, SEED+1, …; prints one line per run and a table per combination:
// runs, valid, linearizability / set (lost acknowledged writes) / split-brain / log-agreement
// failures, longest failover. Needs `pnpm build` and forgetfs (tools/forgetfs).
//
//   node scripts/durability-campaign.mjs [--runs N] [--seed S] [--time S] [--out DIR]
//                                        [--combos "power-loss:register;power-loss:set"]
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

/** Most runs one campaign may ask for (each takes --time seconds plus ~10 s). */
const RUNS_MAX = 500;
const root = resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, seed: { type: 'string', default: '1000' }, time: { type: 'string', default: '20' }, out: { type: 'string' }, combos: { type: 'string', default: 'power-loss:register;power-loss:set' } } });
const runs = Number(values.runs);
const seed0 = Number(values.seed);
if (!Number.isSafeInteger(runs) || runs < 1 || runs > RUNS_MAX) throw new Error(`--runs must be an integer in [1, ${RUNS_MAX}]`);
const combos = values.combos.split(';').filter(Boolean).map((c) => c.split(':'));
const out = values.out ?? join(root, 'jepsen-lite', 'out', `campaign-${new Date().toISOString().replace(/[:.]/g, '-')}`);
mkdirSync(out, { recursive: true });
const cli = join(root, 'jepsen-lite', 'dist', 'cli.js');
if (!existsSync(cli)) throw new Error(`${cli} missing: pnpm build first`);

const rows = [];
for (let i = 0; i < runs; i++) {
  const [nemesis, workload] = combos[i % combos.length];
  const seed = seed0 + i;
  const dir = join(out, `${String(i + 1).padStart(3, '0')}-${nemesis}-${workload}-${seed}`);
  const r = spawnSync(process.execPath, [cli, 'run', '--nemesis', nemesis, '--workload', workload, '--time', values.time, '--seed', String(seed), '--out', dir], { encoding: 'utf8', timeout: (Number(values.time) + 300) * 1000 });
  const summary = existsSync(join(dir, 'summary.json')) ? JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) : undefined;
  const verdict = (name) => summary?.checkers?.[name]?.valid ?? 'missing';
  const row = { run: i + 1, nemesis, workload, seed, exit: r.status, valid: summary?.valid ?? 'missing', linearizable: verdict('linearizable'), set: verdict('set'), splitBrain: verdict('split-brain'), logAgreement: verdict('log-agreement'), faults: summary?.faults, failoverMsMax: Math.round(Math.max(0, ...(summary?.failoversMs ?? []))), dir, ...(r.status === 70 ? { harnessError: (r.stderr ?? '').trim().split('\n').slice(-3).join(' | ') } : {}) };
  rows.push(row);
  appendFileSync(join(out, 'campaign.jsonl'), JSON.stringify(row) + '\n');
  console.log(JSON.stringify(row));
}

console.log('\n| nemesis × workload | runs | valid | linearizability failures | lost-write (set) failures | split-brain | log disagreement | longest failover ms |');
console.log('|---|---|---|---|---|---|---|---|');
for (const [nemesis, workload] of combos) {
  const rs = rows.filter((r) => r.nemesis === nemesis && r.workload === workload);
  const bad = (k) => rs.filter((r) => r[k] === false).length;
  console.log(`| ${nemesis} × ${workload} | ${rs.length} | ${rs.filter((r) => r.valid === true).length} | ${bad('linearizable')} | ${bad('set')} | ${bad('splitBrain')} | ${bad('logAgreement')} | ${Math.max(0, ...rs.map((r) => r.failoverMsMax))} |`);
}
console.log(`\nrun directories: ${out}`);
