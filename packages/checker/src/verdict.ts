// The shape of a checker's verdict, shared by every checker in jepsen-lite and the simulation.

/** Jepsen's three-valued verdict: `'unknown'` means the checker could not decide (budget, missing data). */
export type Validity = true | false | 'unknown';

/** One checker's verdict with the evidence a person needs to believe it. */
export interface CheckResult<E = unknown> {
  valid: Validity;
  evidence: E;
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
