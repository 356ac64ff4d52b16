// The client's exactly-once session (Raft thesis §6.3): an id, and a sequence number per write.
// A retry reuses its write's seq; `ackedBelow` tells the server which results it may forget.

import type { SessionRef } from '@quorumkv/protocol';

/** Makes a random session id (Web Crypto: present in browsers and Node >= 19). */
export function randomSessionId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  // Not cryptographic, but unique enough to tell clients apart when Web Crypto is missing.
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}

/** A write's claim on a sequence number; `ref()` is what goes on the wire (fresh each attempt). */
export class SessionTicket {
  constructor(
    private readonly session: ClientSession,
    readonly seq: number,
  ) {}

  /** The session reference for one attempt, with the current `ackedBelow`. */
  ref(): SessionRef {
    return { id: this.session.id, seq: this.seq, ackedBelow: this.session.ackedBelow() };
  }

  /** The write got its final answer (or was given up): the server may forget the result. */
  done(): void {
    this.session.answered(this.seq);
  }
}

/** One session: numbers writes from 1 and tracks which are still unanswered. */
export class ClientSession {
  private nextSeq = 1;
  private readonly unanswered = new Set<number>();

  constructor(readonly id: string) {}

  /** Claims the next sequence number for a new write. */
  begin(): SessionTicket {
    const seq = this.nextSeq++;
    this.unanswered.add(seq);
    return new SessionTicket(this, seq);
  }

  /** Seq `seq` got its final answer (or was given up). */
  answered(seq: number): void {
    this.unanswered.delete(seq);
  }

  /** The lowest seq whose answer may still be needed; every smaller seq has been answered. */
  ackedBelow(): number {
    // Seqs enter the set in increasing order and a Set iterates in insertion order, so its
    // first element is its smallest (and every seq in it is below nextSeq). The set holds at
    // most the number of concurrent writes (bounded by maxPendingCalls).
    for (const s of this.unanswered) return s;
    return this.nextSeq;
  }
}
