// `jepsen-lite run --env docker` end to end: the compose cluster of deploy/, a short register run
// under a leader partition (docker network disconnect) and a leader kill (docker kill/start),
// every checker valid, and nothing of the compose project left behind. Needs the Docker engine,
// compose and the node image (bash deploy/build-images.sh); skipped with one line otherwise.
// Meant for the vitest project `docker` (include jepsen-lite/test/**/*.docker.test.ts there).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { dockerPreflight } from '../src/docker.js';
import { runTest } from '../src/orchestrator.js';

const composeFile = fileURLToPath(new URL('../../deploy/docker-compose.yml', import.meta.url));
const pre = dockerPreflight();
if (!pre.ok) console.warn(`jepsen-lite --env docker test skipped: ${pre.reason}`);

/** Seed whose 20 s schedule holds one partition-leader and one kill-leader event. */
const SEED = 3;
const TIME_S = 20;

/** Compose projects that have containers now. */
function composeProjects(): Set<string> {
  const out = execFileSync('docker', ['ps', '-a', '--format', '{{.Label "com.docker.compose.project"}}'], { timeout: 30_000 }).toString();
  return new Set(out.split('\n').map((s) => s.trim()).filter(Boolean));
}

const root = mkdtempSync(join(tmpdir(), 'jl-docker-env-'));
afterAll(() => {
  if (process.env.JL_KEEP !== '1') rmSync(root, { recursive: true, force: true });
});

describe.skipIf(!pre.ok)('jepsen-lite --env docker (compose cluster)', () => {
  it('runs register under partition-leader and kill-leader; every checker is valid; tears down', async () => {
    const before = composeProjects();
    const out = join(root, 'run');
    const check = await runTest({
      env: 'docker',
      composeFile,
      nodes: 3,
      timeS: TIME_S,
      nemeses: ['partition-leader', 'kill-leader'],
      nemesisSpec: 'partition-leader,kill-leader',
      workload: 'register',
      concurrency: 4,
      rate: 100,
      seed: SEED,
      out,
      serverCli: 'unused-with-env-docker',
      budgetMsPerKey: 5000,
      progress: () => undefined,
    });
    const replay = `replay: pnpm jepsen-lite run --env docker --time ${TIME_S} --nemesis partition-leader,kill-leader --concurrency 4 --rate 100 --seed ${SEED}; report ${out}/report.html (JL_KEEP=1 keeps it)`;
    const verdicts = Object.fromEntries(Object.entries(check.results).map(([n, r]) => [n, r.valid]));
    expect(verdicts, replay).toEqual({ linearizable: true, 'split-brain': true, 'log-agreement': true, availability: true });
    // Only the checkers that read node processes, which the harness sees with --env local alone.
    expect(check.skipped.map((s) => s.checker).sort(), replay).toEqual(['node-exits', 'node-memory']);
    // The faults really happened, by Docker, and none was skipped as not applicable.
    const labels = readFileSync(join(out, 'faults.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { label: string }).label);
    expect(labels.some((l) => l.includes('isolate') && l.includes('docker network disconnect')), labels.join('\n')).toBe(true);
    expect(labels.some((l) => l.includes('kill -9')), labels.join('\n')).toBe(true);
    expect(labels.filter((l) => l.includes('NOT APPLIED'))).toEqual([]);
    // Nothing of the run's compose project is left.
    const leftovers = [...composeProjects()].filter((p) => !before.has(p) && p.startsWith('jl'));
    expect(leftovers).toEqual([]);
  }, (TIME_S + 150) * 1000);
});
