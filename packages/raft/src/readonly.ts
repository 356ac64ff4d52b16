// ReadIndex bookkeeping on the leader (Raft thesis §6.4). A read is registered with the commit
// index at the time it arrives; it is released once a quorum has acknowledged a heartbeat that
// was sent after it. Heartbeats carry only the newest read's context: an ack for a newer read
// confirms leadership for all older ones, so any number of reads arriving in one turn of the host
// loop share a single heartbeat round.
import type { Message, NodeId } from './types.js';

export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Set<NodeId>;
}

export function ctxKey(ctx: Uint8Array | undefined): string {
  if (!ctx) return '';
  let s = '';
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]!);
  return s;
}

export class ReadOnly {
  private pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  constructor(private readonly maxPendingReads: number) {}

  get size(): number {
    return this.queue.length;
  }

  /** False when the same context is already pending or the queue is at its limit. */
  addRequest(index: number, req: Message): boolean {
    const key = ctxKey(req.context);
    if (this.pending.has(key) || this.queue.length >= this.maxPendingReads) return false;
    this.pending.set(key, { req, index, acks: new Set() });
    this.queue.push(key);
    return true;
  }

  /** Records an ack for ctx; returns the acks so far, or undefined for an unknown ctx. */
  recvAck(id: NodeId, ctx: Uint8Array | undefined): Set<NodeId> | undefined {
    const rs = this.pending.get(ctxKey(ctx));
    if (!rs) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /** Removes and returns every request up to and including ctx (oldest first). */
  advance(ctx: Uint8Array | undefined): ReadIndexStatus[] {
    const key = ctxKey(ctx);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const released = this.queue.splice(0, at + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of released) {
      const rs = this.pending.get(k);
      if (rs) out.push(rs);
      this.pending.delete(k);
    }
    return out;
  }

  /** The newest pending context: the one the next heartbeat round carries. */
  lastPendingCtx(): Uint8Array | undefined {
    const key = this.queue[this.queue.length - 1];
    return key === undefined ? undefined : this.pending.get(key)?.req.context;
  }

  reset(): void {
    this.pending.clear();
    this.queue = [];
  }
}
