// How the watch hub sees the node: its clock, its election timeout and how long it has been
// without a leader (from the leader changes it records: node.ts stays unaware of watches).
import type { QuorumKvNode } from './node.js';
import type { WatchNodeView } from './watch-hub.js';

/**
 * The WatchNodeView of a node. A node that never had a leader counts from when this is called
 * (its start), so a node started into a partition ends its watches after an election timeout too.
 */
export function watchNodeView(node: Pick<QuorumKvNode, 'clock' | 'cfg' | 'leaderHint' | 'leaderHistory'>): WatchNodeView {
  const startedAtMs = node.clock.nowMs();
  return {
    clock: node.clock,
    electionTimeoutMs: node.cfg.electionTicks * node.cfg.tickMs,
    leaderlessForMs() {
      if (node.leaderHint() !== null) return 0;
      const nowMs = node.clock.nowMs();
      const last = node.leaderHistory.last();
      return nowMs - (last && last.leader === null ? last.atMs : startedAtMs);
    },
  };
}
