// Plain data types of the storage API. The Raft types are restated structurally here (they are
// assignment-compatible with @quorumkv/raft's `Entry` and `HardState`) so that this package
// depends on the core's contract, not on its build.

/** A Raft log entry as stored (compatible with @quorumkv/raft `Entry`). */
export interface LogEntry {
  index: number;
  term: number;
  /** EntryType of the core (0 normal, 1 conf change); stored as a small integer. */
  type: number;
  data: Uint8Array;
}

/** Raft hard state (compatible with @quorumkv/raft `HardState`). */
export interface HardState {
  term: number;
  vote: string | null;
  commit: number;
}

/** The index and term of the last entry covered by a snapshot (the log starts right after it). */
export interface LogStart {
  index: number;
  term: number;
}

/** One cluster member. */
export interface Member {
  id: string;
  address: string;
  zone?: string;
}

/** The cluster membership, as computed by the server from conf changes. */
export interface Membership {
  voters: Member[];
  learners: Member[];
}
