// Pure analysis of a failover run: from the completion times of every operation and the times
// of the kills, the client-visible write gap of each round.

/** What the coordinator observed in one round (epoch ms; undefined when it did not happen in time). */
export interface RoundEvents {
  round: number;
  killed: string;
  killedTerm: number;
  killAtMs: number;
  /** First status answer from a surviving member saying it is leader in a later term. */
  electedAtMs: number | undefined;
  newLeader: string | undefined;
  restartAtMs: number | undefined;
  /** First status answer of the restarted member. */
  servingAtMs: number | undefined;
  /** Restarted member's applied index reached the leader's commit index taken at restart. */
  caughtUpAtMs: number | undefined;
  /** End of the round (the next round's window starts here). */
  endAtMs: number;
}

/** The analysed round. Durations in ms, relative to the kill unless named otherwise. */
export interface RoundResult {
  round: number;
  killed: string;
  newLeader: string | null;
  electedAfterMs: number | null;
  /** Longest interval without a successful operation completion in [kill − 500 ms, round end]. */
  gapMs: number;
  gapStartMs: number;
  gapEndMs: number;
  /** Operations that failed between the kill and the end of the round. */
  errors: number;
  /** Successful operations in the second before the kill. */
  okPerSecBeforeKill: number;
  restartToServingMs: number | null;
  restartToCaughtUpMs: number | null;
}

/** Window before the kill included in the gap search, in ms. */
export const GAP_LOOKBACK_MS = 500;

/** Index of the first element >= x in a sorted array (pure). */
export function lowerBound(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The longest interval between consecutive successes inside [from, to], counting the window
 * edges as boundaries (a window with no success at all is one gap of its full length) (pure).
 */
export function longestGap(okSorted: readonly number[], from: number, to: number): { gapMs: number; start: number; end: number } {
  let prev = from;
  let best = { gapMs: 0, start: from, end: from };
  for (let i = lowerBound(okSorted, from); i < okSorted.length && okSorted[i]! <= to; i++) {
    const t = okSorted[i]!;
    if (t - prev > best.gapMs) best = { gapMs: t - prev, start: prev, end: t };
    prev = t;
  }
  if (to - prev > best.gapMs) best = { gapMs: to - prev, start: prev, end: to };
  return best;
}

function countIn(sorted: readonly number[], from: number, to: number): number {
  return lowerBound(sorted, to) - lowerBound(sorted, from);
}

const rel = (t: number | undefined, base: number | undefined) => (t === undefined || base === undefined ? null : Math.round(t - base));

/** Analyses one round from sorted success/error completion times (pure). */
export function analyseRound(ev: RoundEvents, okSorted: readonly number[], errSorted: readonly number[]): RoundResult {
  const g = longestGap(okSorted, ev.killAtMs - GAP_LOOKBACK_MS, ev.endAtMs);
  return {
    round: ev.round,
    killed: ev.killed,
    newLeader: ev.newLeader ?? null,
    electedAfterMs: rel(ev.electedAtMs, ev.killAtMs),
    gapMs: Math.round(g.gapMs),
    gapStartMs: Math.round(g.start - ev.killAtMs),
    gapEndMs: Math.round(g.end - ev.killAtMs),
    errors: countIn(errSorted, ev.killAtMs, ev.endAtMs),
    okPerSecBeforeKill: countIn(okSorted, ev.killAtMs - 1000, ev.killAtMs),
    restartToServingMs: rel(ev.servingAtMs, ev.restartAtMs),
    restartToCaughtUpMs: rel(ev.caughtUpAtMs, ev.restartAtMs),
  };
}

/** Median and maximum of the non-null values (pure). */
export function medianMax(xs: Array<number | null>): { median: number | null; max: number | null } {
  const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return { median: null, max: null };
  const mid = Math.floor(v.length / 2);
  return { median: v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2, max: v[v.length - 1]! };
}
