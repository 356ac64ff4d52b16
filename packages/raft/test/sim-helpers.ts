// Shared by the simulation test files: run a chunk of seeds and fail with the full report
// (seed, invariant, trace, replay command) of the first failing one.
import { expect } from 'vitest';
import { describeFailure, runSeeds } from '@quorumkv/testkit';
import type { BatchOptions, BatchResult } from '@quorumkv/testkit';

/** Runs seeds [from, from+count) and asserts that every one passes. */
export function expectSeedsPass(opts: BatchOptions): BatchResult {
  const batch = runSeeds({ ...opts, stopAtFirstFailure: true });
  const first = batch.failures[0];
  if (first) expect.fail(`\n${describeFailure(first)}\n`);
  expect(batch.ran).toBe(opts.count);
  return batch;
}

/** Splits [from, from+total) into chunks of `size` seeds: one test each keeps every test short. */
export function chunks(from: number, total: number, size: number): { from: number; count: number }[] {
  const out: { from: number; count: number }[] = [];
  for (let s = from; s < from + total; s += size) out.push({ from: s, count: Math.min(size, from + total - s) });
  return out;
}
