/**
 * The reconnect delay before attempt `attempt` (0 = the first retry after a failure), with "full
 * jitter": uniform in [0, min(maxMs, initialMs * 2^attempt)). Full jitter spreads the redials of
 * many nodes that lost a peer at the same moment, so a restarted node is not hit by a
 * synchronised storm.
 *
 * @param random uniform in [0, 1), injectable for deterministic tests.
 * @example backoffDelayMs(3, { initialMs: 100, maxMs: 5000 }, () => 0.5) // 400
 */
export function backoffDelayMs(
  attempt: number,
  bounds: { initialMs: number; maxMs: number },
  random: () => number,
): number {
  // 2^attempt overflows to Infinity for huge attempts; Math.min keeps the cap finite.
  const capMs = Math.min(bounds.maxMs, bounds.initialMs * 2 ** Math.min(attempt, 52));
  const r = random();
  const unit = r >= 0 && r < 1 ? r : 0;
  return Math.floor(unit * capMs);
}
