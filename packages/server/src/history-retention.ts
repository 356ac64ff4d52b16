// Automatic retention of the state machine's history (docs/storage.md, "History"): the leader
// proposes a compact through the log when the history kept exceeds the retention, so every node
// compacts at the same revision. The decision is a pure function of the applied state.

/**
 * Revisions beyond the retention that may pile up before the leader proposes a compact: one
 * compact (one log entry and one background scan of history on every node) per this many writes,
 * not one per write.
 */
export const HISTORY_COMPACT_SLACK_REVISIONS = 1000;

/**
 * The revision to compact at, or undefined when nothing is due: keep the last `retainRevisions`
 * revisions readable (0 keeps everything), compacting once `HISTORY_COMPACT_SLACK_REVISIONS` more
 * have accumulated beyond them.
 *
 * @example historyCompactTarget(25_000, 10_000, 10_000) === 15_000
 */
export function historyCompactTarget(revision: number, compactedRevision: number, retainRevisions: number): number | undefined {
  if (retainRevisions <= 0) return undefined;
  const target = revision - retainRevisions;
  return target - compactedRevision >= HISTORY_COMPACT_SLACK_REVISIONS ? target : undefined;
}
