// The CI fuzz run shared by the surface test files: QKV_FUZZ_COUNT inputs per surface (default
// 20,000) from a fixed seed per surface (QKV_FUZZ_SEED overrides it, to explore or replay).
import { expect, it } from 'vitest';
import { SURFACES, runFuzz } from '../src/index.js';

/** Inputs per surface in CI. */
export const CI_COUNT = Number(process.env.QKV_FUZZ_COUNT ?? 20_000);
/** Longest one surface's CI run may take (a loaded machine is slow; the budget is in the docs). */
const CI_SURFACE_TIMEOUT_MS = 600_000;

/** Registers one test that fuzzes `name` for `count` inputs (CI_COUNT) and fails with the run's report. */
export function fuzzSurfaceInCi(name: string, seed: number, count = CI_COUNT): void {
  it(`${name}: ${count} inputs keep every invariant`, async () => {
    const surface = SURFACES[name];
    if (!surface) throw new Error(`no surface ${name}`);
    const r = await runFuzz(surface, { count, seed: Number(process.env.QKV_FUZZ_SEED ?? seed) });
    console.log(`fuzz ${name}: ${r.inputs} inputs (${r.accepted} accepted, ${r.refused} refused) in ${r.elapsedMs} ms, heap +${(r.heapGrowthBytes / 1048576).toFixed(1)} MiB, RSS +${(r.rssGrowthBytes / 1048576).toFixed(1)} MiB`);
    expect(r.failure, r.failure).toBeUndefined();
    expect(r.inputs).toBe(count);
    // Both kinds of input are reached: the generators are not stuck on one side.
    expect(r.accepted).toBeGreaterThan(0);
    expect(r.refused).toBeGreaterThan(0);
  }, CI_SURFACE_TIMEOUT_MS);
}
