// The seed's availability signals, kept by each node about itself: how long it has been without a
// leader it follows (the failover time, summed), its errors by cause, and its uptime. Exposed as
// `qkv_leaderless_seconds_total`, `qkv_request_errors_total{api,cause}` and `qkv_uptime_seconds`
// (metrics.ts); the alerts in deploy/prometheus/alerts.yml use them.
//
// Time comes from the caller (the node's injected clock), so the whole-node simulation can drive it.

/**
 * Seconds without a working leader, summed since the node started: the node's failover time. A
 * node starts leaderless (it serves nothing until it learns a leader). When the leader it followed
 * goes away, the gap starts at the last message it heard from that leader (a crashed leader is
 * noticed only an election timeout later, and that time was unavailable too) and ends when it
 * learns the next leader. The interval still open counts up to `nowMs` when read.
 */
export class LeaderlessTime {
  private closedMs = 0;
  /** Start of the open leaderless interval, or null while a leader is known. */
  private sinceMs: number | null;

  constructor(startMs: number) {
    this.sinceMs = startMs;
  }

  /**
   * Called on every change of the leader this node follows: `leaderKnown` says whether it knows
   * one now; `lastHeardMs` is when it last heard from the previous leader (undefined when there
   * was none, or this node was it).
   */
  note(leaderKnown: boolean, nowMs: number, lastHeardMs?: number): void {
    if (this.sinceMs === null) this.sinceMs = Math.min(lastHeardMs ?? nowMs, nowMs);
    if (!leaderKnown) return;
    this.closedMs += Math.max(0, nowMs - this.sinceMs);
    this.sinceMs = null;
  }

  /** Leaderless seconds up to `nowMs`. */
  seconds(nowMs: number): number {
    const open = this.sinceMs === null ? 0 : Math.max(0, nowMs - this.sinceMs);
    return (this.closedMs + open) / 1000;
  }
}

/** Distinct `cause` label values at most; later new codes count as `other` (bounded cardinality). */
export const ERROR_CAUSES_MAX = 40;

/**
 * The `cause` label of an error code: `QKV_NOT_LEADER` → `not_leader`. Codes are a fixed set on
 * the server; anything that does not look like one, or past ERROR_CAUSES_MAX distinct causes, is
 * `other`.
 */
export class ErrorCauses {
  private readonly seen = new Set<string>();

  label(code: string): string {
    const m = /^QKV_([A-Z][A-Z_]{0,39})$/.exec(code);
    if (!m) return 'other';
    const cause = m[1]!.toLowerCase();
    if (this.seen.has(cause)) return cause;
    if (this.seen.size >= ERROR_CAUSES_MAX) return 'other';
    this.seen.add(cause);
    return cause;
  }
}
