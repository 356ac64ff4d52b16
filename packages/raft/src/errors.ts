// Typed errors for expected operating conditions. Broken invariants are not errors of this
// kind: they throw a plain `Error` from `assert` and mean a bug (stopping beats corrupting).

/** Base of every error the core raises on purpose. `code` is the stable contract. */
export class RaftError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A proposal or read was made on a node that is not the leader. */
export class NotLeaderError extends RaftError {
  readonly leaderHint: string | null;
  constructor(leaderHint: string | null) {
    super('QKV_NOT_LEADER', leaderHint ? `not the leader; the leader is ${leaderHint}` : 'not the leader; no leader known');
    this.leaderHint = leaderHint;
  }
}

/** The proposal was refused (leadership transfer under way, limit reached, conf change pending…). */
export class ProposalDroppedError extends RaftError {
  constructor(reason: string) {
    super('QKV_PROPOSAL_DROPPED', `proposal dropped: ${reason}`);
  }
}

/** The requested log index was compacted away (the caller needs a snapshot). */
export class CompactedError extends RaftError {
  constructor(index: number, firstIndex: number) {
    super('QKV_LOG_COMPACTED', `log index ${index} is compacted (first available index is ${firstIndex})`);
  }
}

/** The requested log index is past the end of the log. */
export class UnavailableError extends RaftError {
  constructor(index: number, lastIndex: number) {
    super('QKV_LOG_UNAVAILABLE', `log index ${index} is not available (last index is ${lastIndex})`);
  }
}

/** The storage cannot produce a snapshot right now; the core retries later. */
export class SnapshotTemporarilyUnavailableError extends RaftError {
  constructor() {
    super('QKV_SNAPSHOT_UNAVAILABLE', 'snapshot temporarily unavailable');
  }
}

/**
 * A message from a peer that no correct peer could have sent: entries that are not contiguous
 * after the message's index, entry terms above the message's term, an append that contradicts
 * entries this node knows are committed, a second leader in one term. `RawNode.step` throws it
 * BEFORE the core changes any state, so the node is exactly as it was; the host should drop the
 * message and close the connection it came on (the peer is broken, or not a peer at all).
 */
export class BadMessageError extends RaftError {
  /** The sender the message claimed (`m.from`). */
  readonly from: string;
  /** The rule the message breaks, without the sender. */
  readonly reason: string;
  constructor(from: string, reason: string) {
    super('QKV_BAD_MESSAGE', `bad message from ${from}: ${reason}`);
    this.from = from;
    this.reason = reason;
  }
}

/** A Config failed validation; the message names the field and the rule. */
export class ConfigError extends RaftError {
  constructor(message: string) {
    super('QKV_INVALID_CONFIG', message);
  }
}

/** Throws when a programmer invariant does not hold. Never use for operating conditions. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`raft invariant violated: ${message}`);
}

/** Exhaustiveness check for switches over unions. */
export function assertNever(x: never): never {
  throw new Error(`raft: unexpected value ${JSON.stringify(x)}`);
}
