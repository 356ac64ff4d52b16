// The safety invariants of Raft, checked incrementally as the simulation runs. Everything here
// works on plain data (indexes, terms, chain hashes), so it is unit-tested without a cluster.
//
// Logs are compared through prefix chains (see hash.ts): chain(i) summarises entries 1..i, so
// "two logs are identical up to i" is one number comparison.
import { EMPTY_CHAIN, chainLink, entryDigest } from './hash.js';

/** The invariants the simulation checks. Stable names: they appear in failure reports and tests. */
export type InvariantName =
  /** At most one leader per term (Raft Figure 3, Election Safety). */
  | 'election-safety'
  /** Two logs with an entry of the same index and term are identical up to it. */
  | 'log-matching'
  /** A committed entry is never lost or changed (Leader Completeness; commit never regresses). */
  | 'committed-durability'
  /** Every node applies the same sequence of entries. */
  | 'state-machine-safety'
  /** A ReadIndex read observes every write committed before the read started. */
  | 'read-linearizability'
  /** After healing, a leader is elected and new writes commit within a bounded number of ticks. */
  | 'liveness'
  /** A Ready broke its documented contract (mustSync, apply only what is persisted and committed). */
  | 'ready-contract'
  /** The core threw (an assertion or an unexpected error): a bug, reported like a violation. */
  | 'core-exception';

/** A broken invariant. The simulation stops at the first one and prints the trace. */
export class InvariantViolation extends Error {
  constructor(
    readonly invariant: InvariantName,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'InvariantViolation';
  }
}

/** The parts of an entry the checkers look at. */
export interface EntryLike {
  index: number;
  term: number;
  type: number;
  data: Uint8Array;
}

/**
 * The prefix chain of one node's stored log: chain values for indexes base..last, where `base`
 * is the snapshot index (its chain comes from the snapshot). Mirrors what the host writes to
 * the node's storage, and reports each new entry to the checker.
 */
export class LogChain {
  private baseIndex = 0;
  private chains: number[] = [EMPTY_CHAIN]; // chains[k] = chain(baseIndex + k)
  private terms: number[] = [0];

  /** Index of the last entry (or of the snapshot when the log is empty). */
  get lastIndex(): number {
    return this.baseIndex + this.chains.length - 1;
  }

  /** Index of the snapshot the log starts after. */
  get snapshotIndex(): number {
    return this.baseIndex;
  }

  /** chain(i), or undefined when i is compacted away or past the end. */
  chainAt(i: number): number | undefined {
    return this.chains[i - this.baseIndex];
  }

  /** Term of entry i (the snapshot's term at the base), or undefined. */
  termAt(i: number): number | undefined {
    return this.terms[i - this.baseIndex];
  }

  /**
   * Appends `entries` (contiguous), replacing any suffix from entries[0].index on, as the
   * storage does; entries at or below the snapshot index are skipped (they are covered by it).
   * Returns the first index whose content actually changed among entries that were already
   * stored (Infinity when none did), so the caller can check it against the commit index.
   */
  append(entries: readonly EntryLike[], onEntry?: (index: number, term: number, chain: number) => void): number {
    let k = 0;
    while (k < entries.length && (entries[k] as EntryLike).index <= this.baseIndex) k++;
    const first = entries[k];
    if (!first) return Infinity;
    if (first.index > this.lastIndex + 1) throw new Error(`LogChain.append: gap, last ${this.lastIndex}, appending ${first.index}`);
    const oldLast = this.lastIndex;
    const old = this.chains.slice(first.index - this.baseIndex);
    this.chains.length = first.index - this.baseIndex;
    this.terms.length = first.index - this.baseIndex;
    let prev = this.chains[this.chains.length - 1] as number;
    let changedFrom = Infinity;
    for (; k < entries.length; k++) {
      const e = entries[k] as EntryLike;
      prev = chainLink(prev, entryDigest(e.index, e.term, e.type, e.data));
      this.chains.push(prev);
      this.terms.push(e.term);
      if (changedFrom === Infinity && e.index <= oldLast && old[e.index - first.index] !== prev) changedFrom = e.index;
      onEntry?.(e.index, e.term, prev);
    }
    // A shorter replacement also drops stored entries past the new end.
    if (changedFrom === Infinity && this.lastIndex < oldLast) changedFrom = this.lastIndex + 1;
    return changedFrom;
  }

  /** Replaces the whole log by a snapshot at `index` whose prefix chain is `chain`. */
  installSnapshot(index: number, term: number, chain: number): void {
    this.baseIndex = index;
    this.chains = [chain];
    this.terms = [term];
  }

  /** Drops chain values below `index` (the storage compacted up to it). */
  compact(index: number): void {
    if (index <= this.baseIndex) return;
    if (index > this.lastIndex) throw new Error(`LogChain.compact: ${index} is past the last index ${this.lastIndex}`);
    const drop = index - this.baseIndex;
    this.chains = this.chains.slice(drop);
    this.terms = this.terms.slice(drop);
    this.baseIndex = index;
  }
}

/** Named maximum: reads the checker remembers while waiting for their answer. */
export const MAX_OPEN_READS = 10_000;

/**
 * Global safety bookkeeping for one simulated run. Each `observe*` method either records a new
 * fact or compares it with what was recorded, and throws `InvariantViolation` on a mismatch.
 */
export class SafetyChecker {
  /** term -> the node that was leader in it. */
  readonly leaders = new Map<number, string>();
  /** "index:term" -> chain at that entry, for Log Matching. */
  private readonly chainByEntry = new Map<string, number>();
  /** committedChain[i] = chain(i) of the committed log, once any node committed i. */
  private readonly committedChain: number[] = [EMPTY_CHAIN];
  /** commitTerm[i] = lowest term in which any node was seen to have i committed. */
  private readonly commitTerm: number[] = [0];
  /** appliedChain[i] = chain(i) of the applied sequence, once any node applied i. */
  private readonly appliedChain: number[] = [EMPTY_CHAIN];
  private readonly openReads = new Map<number, { node: string; startTick: number; mustSee: number }>();

  /** The highest index ever known committed anywhere. */
  get maxCommit(): number {
    return this.committedChain.length - 1;
  }

  /** The highest index any node applied. */
  get maxApplied(): number {
    return this.appliedChain.length - 1;
  }

  /** Election Safety: `node` is leader of `term`. */
  observeLeader(term: number, node: string): void {
    const prev = this.leaders.get(term);
    if (prev === undefined) this.leaders.set(term, node);
    else if (prev !== node) throw new InvariantViolation('election-safety', `two leaders in term ${term}: ${prev} and ${node}`);
  }

  /** Log Matching: some node's log holds entry (index, term) with prefix chain `chain`. */
  observeEntry(node: string, index: number, term: number, chain: number): void {
    const key = `${index}:${term}`;
    const prev = this.chainByEntry.get(key);
    if (prev === undefined) this.chainByEntry.set(key, chain);
    else if (prev !== chain) {
      throw new InvariantViolation('log-matching', `${node} holds entry index ${index} term ${term} whose log prefix differs from another log's with the same entry`);
    }
  }

  /**
   * Committed durability: `node`, in `term`, has everything up to `commit` committed, and
   * `chainAt` reads its log. Indexes from `fromIndex` (the node's previously checked commit + 1)
   * are compared with (or recorded as) the cluster's committed log.
   */
  observeCommit(node: string, term: number, fromIndex: number, commit: number, chainAt: (i: number) => number | undefined): void {
    for (let i = Math.max(1, fromIndex); i <= commit; i++) {
      const chain = chainAt(i);
      if (chain === undefined) continue; // compacted: its snapshot was checked when installed
      const known = this.committedChain[i];
      if (known === undefined) {
        if (i !== this.committedChain.length) throw new Error(`SafetyChecker: commit gap at ${i}`);
        this.committedChain.push(chain);
        this.commitTerm.push(term);
      } else if (known !== chain) {
        throw new InvariantViolation('committed-durability', `${node} committed index ${i} with a different entry (or log prefix) than was committed before`);
      } else if (term < (this.commitTerm[i] as number)) {
        this.commitTerm[i] = term;
      }
    }
  }

  /** Committed durability: `node` is about to drop its log from `index` on, with `commit` committed. */
  observeTruncate(node: string, index: number, commit: number): void {
    if (index <= commit) throw new InvariantViolation('committed-durability', `${node} overwrote its log from index ${index} although ${commit} was committed`);
  }

  /**
   * Leader Completeness: a leader of `term` must hold every entry committed in an earlier term.
   * `snapshotIndex` is where its log starts (covered by its snapshot).
   */
  observeLeaderLog(node: string, term: number, snapshotIndex: number, chainAt: (i: number) => number | undefined): void {
    let mustHave = 0;
    for (let i = this.commitTerm.length - 1; i >= 1; i--) {
      if ((this.commitTerm[i] as number) < term) {
        mustHave = i;
        break;
      }
    }
    if (mustHave <= snapshotIndex) return;
    const chain = chainAt(mustHave);
    if (chain === undefined) throw new InvariantViolation('committed-durability', `${node} became leader of term ${term} without entry ${mustHave}, committed in an earlier term`);
    if (chain !== this.committedChain[mustHave]) {
      throw new InvariantViolation('committed-durability', `${node} became leader of term ${term} with a log that differs from the committed log at index ${mustHave}`);
    }
  }

  /** A snapshot at `index` with prefix chain `chain` must describe the committed log. */
  observeSnapshot(node: string, index: number, chain: number): void {
    const known = this.appliedChain[index];
    if (known !== undefined && known !== chain) throw new InvariantViolation('state-machine-safety', `${node} installed a snapshot at ${index} that differs from the applied sequence`);
  }

  /** State Machine Safety: `node` applied entry `index` and its applied prefix chain is `chain`. */
  observeApply(node: string, index: number, chain: number): void {
    const known = this.appliedChain[index];
    if (known === undefined) {
      if (index !== this.appliedChain.length) throw new Error(`SafetyChecker: apply gap at ${index}`);
      this.appliedChain.push(chain);
    } else if (known !== chain) {
      throw new InvariantViolation('state-machine-safety', `${node} applied a different entry at index ${index} than another node`);
    }
  }

  /** A read `readId` started on `node` at `tick`: it must see everything committed by now. */
  observeReadStart(readId: number, node: string, tick: number): void {
    if (this.openReads.size >= MAX_OPEN_READS) {
      const oldest = this.openReads.keys().next().value;
      if (oldest !== undefined) this.openReads.delete(oldest);
    }
    this.openReads.set(readId, { node, startTick: tick, mustSee: this.maxCommit });
  }

  /**
   * The read `readId` was served on `node` from a state machine that had applied `appliedIndex`.
   * Returns false when the read is unknown (forgotten because too old).
   */
  observeReadServed(readId: number, node: string, appliedIndex: number): boolean {
    const open = this.openReads.get(readId);
    if (!open) return false;
    this.openReads.delete(readId);
    if (appliedIndex < open.mustSee) {
      throw new InvariantViolation(
        'read-linearizability',
        `read ${readId} started on ${open.node} at t=${open.startTick}, when index ${open.mustSee} was committed, was served by ${node} from state at index ${appliedIndex}`,
      );
    }
    return true;
  }

  /** Forgets a read that will not be answered (its node crashed or the host timed it out). */
  forgetRead(readId: number): void {
    this.openReads.delete(readId);
  }
}
