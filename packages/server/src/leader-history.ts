// The leader changes this node has seen, kept in a bounded ring in memory (lost on restart), for
// the status page and `GET /v1/events`. A flapping cluster cannot grow it: past
// LEADER_HISTORY_MAX events the oldest are dropped, and readers ask only for a recent window.

/** Most leader-change events a node keeps (about one a second for four minutes of flapping). */
export const LEADER_HISTORY_MAX = 256;
/** The window `GET /v1/events` and the status page show: the last hour. */
export const LEADER_HISTORY_WINDOW_MS = 60 * 60 * 1000;

/** One change of the leader this node follows; `leader` null when it lost the leader. */
export interface LeaderChangeEvent {
  atMs: number;
  term: number;
  leader: string | null;
}

/** A bounded ring of {@link LeaderChangeEvent}s, oldest first. */
export class LeaderHistory {
  private readonly ring: LeaderChangeEvent[] = [];
  /** Events dropped because the ring was full (so a reader can tell the list is cut). */
  dropped = 0;

  constructor(readonly capacity = LEADER_HISTORY_MAX) {}

  record(e: LeaderChangeEvent): void {
    this.ring.push(e);
    if (this.ring.length > this.capacity) {
      this.ring.shift();
      this.dropped++;
    }
  }

  /** The latest event, if any. */
  last(): LeaderChangeEvent | undefined {
    return this.ring[this.ring.length - 1];
  }

  /** The events at or after `nowMs - windowMs`, oldest first. */
  since(nowMs: number, windowMs = LEADER_HISTORY_WINDOW_MS): LeaderChangeEvent[] {
    const from = nowMs - windowMs;
    return this.ring.filter((e) => e.atMs >= from);
  }
}
