// The shape every checker returns, and how results compose.

/** Jepsen's three-valued verdict: `'unknown'` means the checker could not decide (budget, missing data). */
export type Validity = true | false | 'unknown';

/** One checker's verdict with the evidence a person needs to believe it. */
export interface CheckResult<E = unknown> {
  valid: Validity;
  evidence: E;
}

/** Named results of several checkers plus the combined verdict. */
export interface ComposedResult {
  valid: Validity;
  results: Record<string, CheckResult>;
}

/**
 * Combines verdicts the way Jepsen's `compose` does: any `false` wins, then any `'unknown'`,
 * else `true`. An empty set of results is `true`.
 */
export function mergeValid(values: readonly Validity[]): Validity {
  if (values.includes(false)) return false;
  if (values.includes('unknown')) return 'unknown';
  return true;
}

/** Composes named checker results into one verdict. */
export function compose(results: Record<string, CheckResult>): ComposedResult {
  return { valid: mergeValid(Object.values(results).map((r) => r.valid)), results };
}
