// Hunting a planted bug: seeds from `firstSeed` until one fails (the bug is found) or the budget
// of seeds is spent.
import type { HostPlant } from '@quorumkv/server';
import { runSimNode, type SimNodeResult } from './run.js';

export interface HuntResult {
  plant: HostPlant;
  /** The failing run, or undefined when no seed within the budget found the bug. */
  found: SimNodeResult | undefined;
  seedsRun: number;
}

export async function huntPlant(plant: HostPlant, opts: { firstSeed: number; maxSeeds: number; chaosSeconds: number; nodes?: number }): Promise<HuntResult> {
  for (let i = 0; i < opts.maxSeeds; i++) {
    const r = await runSimNode({ seed: opts.firstSeed + i, chaosSeconds: opts.chaosSeconds, plant, ...(opts.nodes ? { nodes: opts.nodes } : {}) });
    if (!r.ok) return { plant, found: r, seedsRun: i + 1 };
  }
  return { plant, found: undefined, seedsRun: opts.maxSeeds };
}
