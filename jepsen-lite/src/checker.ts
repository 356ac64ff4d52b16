// How the results of several checkers compose. The verdict shape itself (Validity, CheckResult,
// mergeValid) lives in @quorumkv/checker, which the simulation may import too.

import type { CheckResult, Validity } from '@quorumkv/checker';
import { mergeValid } from '@quorumkv/checker';

export type { CheckResult, Validity };
export { mergeValid };

/** Named results of several checkers plus the combined verdict. */
export interface ComposedResult {
  valid: Validity;
  results: Record<string, CheckResult>;
}

/** Composes named checker results into one verdict. */
export function compose(results: Record<string, CheckResult>): ComposedResult {
  return { valid: mergeValid(Object.values(results).map((r) => r.valid)), results };
}
