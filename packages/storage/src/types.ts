// Plain data types of the storage API. Log entries and hard state are the consensus core's own
// types (type-only imports: no runtime dependency on @quorumkv/raft).
import type { Entry, HardState as RaftHardState } from '@quorumkv/raft';

/** A Raft log entry as stored: @quorumkv/raft `Entry`. */
export type LogEntry = Entry;

/** Raft hard state: @quorumkv/raft `HardState`. */
export type HardState = RaftHardState;

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
  /** The member's incarnation id, once the cluster recorded it (packages/server identity rules). */
  incarnation?: string;
}

/** The cluster membership, as computed by the server from conf changes. */
export interface Membership {
  voters: Member[];
  learners: Member[];
}
