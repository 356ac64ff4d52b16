// The short CI matrix against a real cluster: opt-in (JL_MATRIX=1) because it needs the built
// server and client (`pnpm build`) and takes a few minutes.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_COMBOS, parseCli } from '../src/args.js';
import { runTest } from '../src/orchestrator.js';
import { summarize } from '../src/report.js';

const serverCli = fileURLToPath(new URL('../../packages/server/dist/cli.js', import.meta.url));
const enabled = process.env.JL_MATRIX === '1';
// 20 s per combination in the test (the CLI's `matrix` runs 25 s): thirteen combinations run one
// after another in CI, so 5 s each is a minute of the CI budget; every combination still sees
// several fault cycles.
const timeS = Number(process.env.JL_MATRIX_TIME_S ?? 20);
const seed = Number(process.env.JL_MATRIX_SEED ?? 1);
/** The TLS entry is shorter: it checks that the harness and the faults work over TLS, not more. */
const tlsTimeS = Number(process.env.JL_MATRIX_TLS_TIME_S ?? 10);
if (!enabled) console.warn('jepsen-lite matrix skipped: set JL_MATRIX=1 (after pnpm build) to run it against a real cluster');

const root = mkdtempSync(join(tmpdir(), 'jl-matrix-'));
afterAll(() => {
  if (process.env.JL_KEEP !== '1') rmSync(root, { recursive: true, force: true });
});

describe.skipIf(!enabled)('jepsen-lite short matrix (real cluster)', () => {
  const m = parseCli(['matrix', '--combos', process.env.JL_MATRIX_COMBOS ?? DEFAULT_COMBOS]);
  if (m.command !== 'matrix') throw new Error('unreachable');
  for (const [i, c] of m.combos.entries()) {
    it(`${c.nemesisSpec} × ${c.workload}`, async () => {
      expect(existsSync(serverCli), `${serverCli} missing: run pnpm build first`).toBe(true);
      const out = join(root, `${i}-${c.nemesisSpec}-${c.workload}`);
      const check = await runTest({ nodes: 3, timeS, nemeses: c.nemeses, nemesisSpec: c.nemesisSpec, workload: c.workload, concurrency: 6, rate: 200, seed: seed + i, out, serverCli, budgetMsPerKey: 5000, progress: () => undefined });
      const failing = Object.entries(check.results).filter(([, r]) => r.valid !== true).map(([n, r]) => `${n}=${String(r.valid)}: ${summarize(n, r.evidence)}`);
      expect(failing, `replay: pnpm jepsen-lite run --time ${timeS} --nemesis ${c.nemesisSpec} --workload ${c.workload} --seed ${seed + i}; report ${out}/report.html (JL_KEEP=1 keeps it)`).toEqual([]);
    }, (timeS + 90) * 1000);
  }

  it('TLS on every link: partition × register (the fault proxies route peers by their TLS server name)', async () => {
    expect(existsSync(serverCli), `${serverCli} missing: run pnpm build first`).toBe(true);
    const out = join(root, 'tls-partition-register');
    const m3 = parseCli(['run', '--tls', '--nemesis', 'partition', '--workload', 'register']);
    if (m3.command !== 'run') throw new Error('unreachable');
    const check = await runTest({ ...m3, timeS: tlsTimeS, seed, out, serverCli, budgetMsPerKey: 5000, progress: () => undefined });
    const failing = Object.entries(check.results).filter(([, r]) => r.valid !== true).map(([n, r]) => `${n}=${String(r.valid)}: ${summarize(n, r.evidence)}`);
    expect(failing, `replay: pnpm jepsen-lite run --tls --time ${tlsTimeS} --nemesis partition --workload register --seed ${seed}; report ${out}/report.html`).toEqual([]);
  }, (tlsTimeS + 90) * 1000);

  it('catches the deliberately broken mode: stale reads under partitions are not linearizable', async () => {
    const out = join(root, 'broken-stale-reads');
    const m2 = parseCli(['run', '--nemesis', 'partition-one,partition-leader', '--reads', 'stale']);
    if (m2.command !== 'run') throw new Error('unreachable');
    const check = await runTest({ ...m2, timeS, seed, out, serverCli, budgetMsPerKey: 5000, progress: () => undefined });
    expect(check.results.linearizable?.valid, `report ${out}/report.html`).toBe(false);
  }, (timeS + 90) * 1000);
});
