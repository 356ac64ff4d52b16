// The linearizability checker of a real run: @quorumkv/checker's WGL search (which the
// simulation may import too), given the wall clock for the per-key time budget (`--budget-ms`).

import type { CheckResult, LinearizableEvidence, LinearizableOptions, OpPair } from '@quorumkv/checker';
import { checkLinearizable as checkLinearizableCore } from '@quorumkv/checker';

export type { KeyFailure, LinearizableEvidence, LinearizableOptions } from '@quorumkv/checker';

/** Default search time per key in a real run (`--budget-ms`). */
export const LIN_BUDGET_MS_PER_KEY_DEFAULT = 5000;

/**
 * Checks a register history with a time budget per key (default 5 s, on `performance.now`) as
 * well as the checker's step and memo budgets. See @quorumkv/checker's `checkLinearizable`.
 */
export function checkLinearizable(pairs: readonly OpPair[], options: LinearizableOptions = {}): CheckResult<LinearizableEvidence> {
  return checkLinearizableCore(pairs, { budgetMsPerKey: LIN_BUDGET_MS_PER_KEY_DEFAULT, nowMs: () => performance.now(), ...options });
}
