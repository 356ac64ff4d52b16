// ReadIndex bookkeeping on the leader (Raft thesis §6.4). A read is registered with the commit
// index at the time it arrives; it is released once a quorum has acknowledged a heartbeat round
// that started after it.
//
// Rounds have their own ids (a counter that only grows), carried as the heartbeat context; the
// requests' own contexts never go on the wire in heartbeats. So two followers may use the same
// request context, and a late answer to an old round can never count for a newer one. Every read
// registered since the last round joins the next one: any number of reads in one turn of the host
// loop share a single heartbeat round, and an ack for round r confirms every round <= r.
import type { Message, NodeId } from './types.js';

export interface ReadIndexStatus {
  req: Message;
  index: number;
  /** 0 until the request joins a round. */
  round: number;
}

/** Heartbeat contexts of ReadIndex rounds: 9 bytes, a tag then the round id (big-endian). */
const ROUND_TAG = 0x52;

export function encodeRound(round: number): Uint8Array {
  const b = new Uint8Array(9);
  b[0] = ROUND_TAG;
  let r = round;
  for (let i = 8; i >= 1; i--) {
    b[i] = r % 256;
    r = Math.floor(r / 256);
  }
  return b;
}

export function decodeRound(ctx: Uint8Array | undefined): number | undefined {
  if (!ctx || ctx.length !== 9 || ctx[0] !== ROUND_TAG) return undefined;
  let r = 0;
  for (let i = 1; i <= 8; i++) r = r * 256 + ctx[i]!;
  return r;
}

export class ReadOnly {
  private queue: ReadIndexStatus[] = [];
  private lastRound = 0;
  /** Acks per round still holding requests. */
  private readonly acks = new Map<number, Set<NodeId>>();

  constructor(private readonly maxPendingReads: number) {}

  get size(): number {
    return this.queue.length;
  }

  /** False when the queue is at its limit (the read is dropped; the host times it out). */
  addRequest(index: number, req: Message): boolean {
    if (this.queue.length >= this.maxPendingReads) return false;
    this.queue.push({ req, index, round: 0 });
    return true;
  }

  /** Puts every request not yet in a round into a new one; returns its id, or undefined if none. */
  startRound(self: NodeId): number | undefined {
    if (!this.queue.some((r) => r.round === 0)) return undefined;
    const round = ++this.lastRound;
    for (const r of this.queue) if (r.round === 0) r.round = round;
    this.acks.set(round, new Set([self]));
    return round;
  }

  /** The newest round still waiting, so that plain heartbeats keep confirming it. */
  newestPendingRound(): number | undefined {
    const last = this.queue[this.queue.length - 1];
    return last && last.round > 0 ? last.round : undefined;
  }

  /** Records an ack for a round; returns its acks, or undefined when nothing waits on it. */
  recvAck(id: NodeId, round: number): Set<NodeId> | undefined {
    const acks = this.acks.get(round);
    if (!acks) return undefined;
    acks.add(id);
    return acks;
  }

  /** Removes and returns every request of rounds <= round (oldest first). */
  advance(round: number): ReadIndexStatus[] {
    const out: ReadIndexStatus[] = [];
    const keep: ReadIndexStatus[] = [];
    for (const r of this.queue) (r.round > 0 && r.round <= round ? out : keep).push(r);
    this.queue = keep;
    for (const k of [...this.acks.keys()]) if (k <= round) this.acks.delete(k);
    return out;
  }

  reset(): void {
    this.queue = [];
    this.acks.clear();
    // lastRound keeps growing: round ids are never reused, even across terms.
  }
}
