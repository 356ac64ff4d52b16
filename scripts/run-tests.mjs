// Runs the vitest projects one after another (see vitest.config.ts for why) and prints one
// summary line per project plus the plain closing line CI reads: "N passed, N failed".
// A project with no test files yet is skipped, not failed.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const projects = ['unit', 'cluster', 'jepsen', 'docker'];
let passed = 0;
let failed = 0;
let skipped = 0;
const lines = [];
let exitCode = 0;
for (const name of projects) {
  const report = join(tmpdir(), `qkv-vitest-${name}-${process.pid}.json`);
  const started = Date.now();
  const r = spawnSync('pnpm', ['exec', 'vitest', 'run', '--project', name, '--passWithNoTests', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`], {
    stdio: 'inherit',
    env: process.env,
  });
  const secs = ((Date.now() - started) / 1000).toFixed(0);
  if (existsSync(report)) {
    const j = JSON.parse(readFileSync(report, 'utf8'));
    passed += j.numPassedTests;
    failed += j.numFailedTests;
    skipped += j.numPendingTests + j.numTodoTests;
    lines.push(`${name.padEnd(8)} ${j.numPassedTests} passed, ${j.numFailedTests} failed, ${j.numPendingTests} skipped (${j.numTotalTestSuites} suites, ${secs} s)`);
    rmSync(report, { force: true });
  } else {
    lines.push(`${name.padEnd(8)} no report (exit ${r.status}, ${secs} s)`);
  }
  if (r.status !== 0) exitCode = 1;
}
console.log('\n== test summary');
for (const l of lines) console.log(l);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(exitCode);
