// Jittered exponential back-off, as a pure function of the failure count and a random number.

/** A back-off policy. */
export interface BackoffPolicy {
  /** Delay after the first failure, in ms. */
  initialMs: number;
  /** Largest delay, in ms. Kept short on purpose: a long one would lock clients out of a node. */
  maxMs: number;
  /** Growth per failure (2 = doubling). */
  multiplier: number;
}

/**
 * Delay before the next attempt after `failures` consecutive failures (>= 1): "equal jitter",
 * uniformly in [cap/2, cap) where cap = min(maxMs, initialMs * multiplier^(failures-1)), so that
 * many clients that lost the same node do not come back in lockstep.
 * `random` returns a number in [0, 1).
 */
export function backoffDelayMs(failures: number, policy: BackoffPolicy, random: () => number): number {
  const exp = Math.max(0, failures - 1);
  const cap = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** Math.min(exp, 64));
  return Math.round(cap / 2 + random() * (cap / 2));
}
