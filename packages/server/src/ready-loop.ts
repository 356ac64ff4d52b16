// The host loop's step for one Ready (docs/server.md, "The host loop"; docs/raft.md): one
// top-to-bottom function to check against the Raft paper. The ordering rules it keeps:
//
//   1. A new term or vote is durable before any message of the same Ready leaves (a vote or an
//      acknowledgement must survive a crash of the node that gave it; Raft §5.1, Figure 2).
//   2. A leader may send its appends while its own write of the same entries is in flight (Raft
//      thesis §10.2.1) — but never when the Ready also carries a new term or vote (rule 1).
//   3. Every other node sends only after the Ready's entries and hard state are durable (an
//      acknowledgement promises the entries are on its disk).
//   4. Only committed entries that are persisted here are applied, in index order, after everything
//      before a snapshot applied and before the snapshot replaces the state.
//   5. advance() comes last: the core may hand out the next Ready only after this one is handled.
//
// The node supplies the effects (ReadyEffects); this file holds only their order, so a fake host
// can check it (packages/server/test/ready-loop.test.ts).
import type { Entry, HardState, Message, Ready, Role } from '@quorumkv/raft';
import type { HostPlant } from './host-world.js';
import { hostAssert } from './host-assert.js';

/** What handling one Ready does, in the order handleReady calls it. */
export interface ReadyEffects {
  /** The planted host bug, if any (simulation only; undefined in production). */
  readonly plant: HostPlant | undefined;
  /** The hard state whose term and vote are on disk. */
  persistedHardState(): HardState;
  /** Takes a new role and leader (the Ready's soft state). */
  onSoftState(role: Role, lead: string | null): void;
  /** The role after the Ready's soft state was taken. */
  role(): Role;
  /** Hands messages to the transport (or the snapshot sender); never blocks. */
  send(msgs: Message[]): void;
  /** Resolves once every queued apply batch is computed and written. */
  appliedAndWritten(): Promise<void>;
  /** Installs the Ready's snapshot into the state machine and the in-memory log. */
  installSnapshot(snapshot: NonNullable<Ready['snapshot']>): Promise<void>;
  /** Writes entries and hard state in ONE batch (synced when `rd.mustSync`), then the in-memory log. */
  persist(rd: Ready): Promise<void>;
  /** A commit-only hard state change: kept in memory, written with the next entries (docs/server.md). */
  keepCommitInMemory(hs: HardState): void;
  /** The last index of the log this node holds (in memory, after persist). */
  lastIndex(): number;
  /** Queues committed entries to the state machine; waits only when too many batches are queued. */
  queueApply(entries: Entry[]): Promise<void>;
  /** Hands the Ready's read states to the ReadIndex batcher. */
  onReadStates(readStates: Ready['readStates']): void;
  /** Tells the core the Ready was handled. */
  advance(rd: Ready): void;
}

/** True when the Ready carries a term or vote the disk does not hold yet. */
export function carriesNewTermOrVote(rd: Ready, persisted: HardState): boolean {
  return rd.hardState !== undefined && (rd.hardState.term !== persisted.term || rd.hardState.vote !== persisted.vote);
}

/** Handles one Ready: soft state, send/persist in the order the rules above allow, apply, advance. */
export async function handleReady(rd: Ready, fx: ReadyEffects): Promise<void> {
  if (rd.softState) fx.onSoftState(rd.softState.role, rd.softState.lead);
  const termOrVoteChanged = carriesNewTermOrVote(rd, fx.persistedHardState());
  // Rule 2: the leader's send-while-persisting, only without a new term or vote.
  const sendEarly = (fx.role() === 'leader' && !termOrVoteChanged) || fx.plant === 'send-before-persist-on-term-change';
  if (sendEarly) fx.send(rd.messages);
  // Planted bug (simulation only): the committed entries are applied before this Ready persists.
  const applyEarly = fx.plant === 'apply-before-persist' && rd.committedEntries.length > 0;
  if (applyEarly) await fx.queueApply(rd.committedEntries);
  if (rd.snapshot) {
    await fx.appliedAndWritten(); // rule 4: a snapshot replaces the state, everything before it applies first
    await fx.installSnapshot(rd.snapshot);
  }
  // Rule 1 and 3: durable before the messages below leave.
  if (rd.entries.length > 0 || termOrVoteChanged) await fx.persist(rd);
  else if (rd.hardState) fx.keepCommitInMemory(rd.hardState);
  if (!sendEarly) fx.send(rd.messages);
  if (rd.committedEntries.length > 0 && !applyEarly) {
    // Rule 4, paired with persist: what is applied is in the log this node holds.
    const last = rd.committedEntries[rd.committedEntries.length - 1]!.index;
    hostAssert(last <= fx.lastIndex(), () => `committed entry ${last} is applied but the log here ends at ${fx.lastIndex()}`);
    await fx.queueApply(rd.committedEntries);
  }
  fx.onReadStates(rd.readStates);
  fx.advance(rd); // rule 5
}
