// The checks of the whole-node simulation, run after every event and at the end. After every
// event: election safety (one leader per term), committed durability (an index committed
// anywhere holds the same entry everywhere, forever), leader completeness, the state machine
// never ahead of the core's commit index, and equal state hashes at equal applied indexes. At the
// end: every acknowledged write's entry is committed with the term it was answered with, each
// session write was applied once (its answer names the first committed entry of its session
// seq), and the client history is linearizable.
import { decodeCommand, type Command } from '@quorumkv/storage';

const textDecoder = new TextDecoder();
import { InvariantViolation, SafetyChecker, entryDigest } from '@quorumkv/testkit';
import { checkLinearizable, pairOps, type Op } from './checker.js';
import type { SimNodeHost } from './sim-node-host.js';
import type { AckedWrite } from './workload.js';

/** A failed check: which one, and a sentence a person can check against the trace. */
export class SimCheckFailure extends Error {
  constructor(
    readonly check: string,
    detail: string,
  ) {
    super(`${check}: ${detail}`);
    this.name = 'SimCheckFailure';
  }
}

interface NodeTrack {
  /** The boot this tracking belongs to (a restart re-checks the node's whole log). */
  boot: number;
  checkedCommit: number;
  appliedSeen: number;
  leaderTerm: number;
}

export class SimChecks {
  private readonly safety = new SafetyChecker();
  /** digest and term of each committed index, from the first node seen committing it. */
  private readonly committed: { digest: number; term: number; minTerm: number }[] = [{ digest: 0, term: 0, minTerm: 0 }];
  private readonly appliedHash = new Map<number, string>();
  private readonly track = new Map<string, NodeTrack>();
  /** The first committed entry of each (session, seq) and of each (key, value) written: exactly-once. */
  private readonly firstBySession = new Map<string, number>();
  private readonly firstByValue = new Map<string, number>();
  /** The revision each applied entry's result named (the state machine's revision, not the index). */
  private readonly revisionAt = new Map<number, number>();

  get maxCommitted(): number {
    return this.committed.length - 1;
  }

  /** Runs the per-event checks on every live node. Throws SimCheckFailure. */
  afterEvent(hosts: SimNodeHost[]): void {
    for (const h of hosts) {
      const node = h.node;
      if (!node || !h.alive()) continue;
      let t = this.track.get(h.id);
      if (!t || t.boot !== h.boots) this.track.set(h.id, (t = { boot: h.boots, checkedCommit: 0, appliedSeen: -1, leaderTerm: 0 }));
      const raft = node.raw.raft;
      try {
        if (raft.role === 'leader') this.safety.observeLeader(raft.term, h.id);
      } catch (e) {
        throw wrap(e);
      }
      this.checkCommitted(h.id, raft, t);
      if (raft.role === 'leader' && t.leaderTerm !== raft.term) {
        t.leaderTerm = raft.term;
        this.checkLeaderCompleteness(h.id, raft);
      }
      const appliedIndex = node.store.kv.appliedIndex();
      if (appliedIndex > raft.log.committed) {
        throw new SimCheckFailure('apply-before-commit', `${h.id} applied index ${appliedIndex} to its state machine but its core has only ${raft.log.committed} committed`);
      }
      // One applied-index story: the stored state never runs ahead of the durable log (or its snapshot).
      if (appliedIndex > node.store.log.lastIndex()) {
        const logEnd = Math.max(node.store.log.lastIndex(), node.mem.snapshot().metadata.index);
        if (appliedIndex > logEnd) throw new SimCheckFailure('apply-before-persist', `${h.id} applied index ${appliedIndex} but its log on disk ends at ${logEnd}`);
      }
      if (appliedIndex !== t.appliedSeen) {
        const applied = node.store.kv.applied();
        t.appliedSeen = applied.index;
        const hex = Buffer.from(applied.hash).toString('hex');
        const known = this.appliedHash.get(applied.index);
        if (known === undefined) this.appliedHash.set(applied.index, hex);
        else if (known !== hex) throw new SimCheckFailure('state-hash', `${h.id} has state hash ${hex.slice(0, 12)} at applied index ${applied.index}; another node had ${known.slice(0, 12)}`);
      }
    }
  }

  /**
   * The commit index a node has acted on: entries handed to the host for applying. The core's
   * in-memory commit index may run ahead of the leader's own durable log while its write is in
   * flight (the leader counts itself when it appends); the host acts on a commit — applies,
   * answers, tells followers — only through the next Ready, after that write landed.
   */
  private checkCommitted(id: string, raft: NonNullable<SimNodeHost['node']>['raw']['raft'], t: NodeTrack): void {
    const commit = raft.log.applied;
    if (commit <= t.checkedCommit) return;
    const from = Math.max(t.checkedCommit + 1, raft.log.firstIndex());
    const entries = raft.log.slice(from, commit + 1, Number.MAX_SAFE_INTEGER);
    for (const e of entries) {
      const digest = entryDigest(e.index, e.term, e.type, e.data);
      const known = this.committed[e.index];
      if (known === undefined) {
        if (e.index !== this.committed.length) throw new SimCheckFailure('committed-durability', `${id} committed index ${e.index} before anyone committed ${this.committed.length}`);
        this.committed.push({ digest, term: e.term, minTerm: raft.term });
        this.noteFirstApplication(e);
      } else if (known.digest !== digest) {
        throw new SimCheckFailure('committed-durability', `${id} has committed index ${e.index} with an entry of term ${e.term}; index ${e.index} was committed before with term ${known.term}`);
      } else if (raft.term < known.minTerm) known.minTerm = raft.term;
    }
    t.checkedCommit = commit;
  }

  /** Records `e` as the first committed entry of its session seq and of the value it writes. */
  private noteFirstApplication(e: { index: number; type: number; data: Uint8Array }): void {
    if (e.type !== 0 || e.data.byteLength === 0) return;
    let cmd: Command;
    try {
      cmd = decodeCommand(e.data);
    } catch {
      return;
    }
    if (cmd.session) {
      const k = `${cmd.session.id}/${cmd.session.seq}`;
      if (!this.firstBySession.has(k)) this.firstBySession.set(k, e.index);
    }
    if (cmd.op !== 'put' && cmd.op !== 'cas') return;
    const value = cmd.op === 'put' ? cmd.value : cmd.then.op === 'put' ? cmd.then.value : undefined;
    if (value) {
      const k = `${textDecoder.decode(cmd.key)}=${textDecoder.decode(value)}`;
      if (!this.firstByValue.has(k)) this.firstByValue.set(k, e.index);
    }
  }

  /** A leader of term T holds every entry committed in an earlier term (Leader Completeness). */
  private checkLeaderCompleteness(id: string, raft: NonNullable<SimNodeHost['node']>['raw']['raft']): void {
    const first = raft.log.firstIndex();
    for (let i = this.committed.length - 1; i >= Math.max(1, first); i--) {
      const c = this.committed[i]!;
      if (c.minTerm >= raft.term) continue;
      if (i > raft.log.lastIndex()) throw new SimCheckFailure('leader-completeness', `${id} became leader of term ${raft.term} without index ${i}, committed in term ${c.minTerm}`);
      const e = raft.log.slice(i, i + 1, Number.MAX_SAFE_INTEGER)[0]!;
      if (entryDigest(e.index, e.term, e.type, e.data) !== c.digest) {
        throw new SimCheckFailure('leader-completeness', `${id} became leader of term ${raft.term} with another entry at committed index ${i}`);
      }
      return; // logs match up to the newest such entry (Log Matching), so one comparison covers the rest
    }
  }

  /** Records what applying entry `index` answered (any node; every node computes the same). */
  noteApplied(index: number, result: { op: string; revision?: number }): void {
    if (result.revision !== undefined && !this.revisionAt.has(index)) this.revisionAt.set(index, result.revision);
  }

  /** The first committed entry of an acknowledged operation (by its value, or its session seq), if known. */
  private firstEntryOf(a: AckedWrite): number | undefined {
    return a.value !== null ? this.firstByValue.get(`${a.key}=${a.value}`) : this.firstBySession.get(`${a.session}/${a.seq}`);
  }

  /**
   * Every acknowledged write was committed, by an entry of the term its answer named (a retried
   * session write answers with its first application's term). Puts and cas are found by their
   * value; a delete by its session seq (skipped when its entry carries no session).
   */
  checkAckedDurable(acked: AckedWrite[]): void {
    for (const a of acked) {
      const f = this.firstEntryOf(a);
      if (f === undefined) {
        if (a.value === null) continue;
        throw new SimCheckFailure('acked-write-lost', `${a.session} seq ${a.seq} (${a.f} ${a.key}=${a.value}) was acknowledged in term ${a.term}, but no committed entry writes it (committed up to ${this.maxCommitted})`);
      }
      const c = this.committed[f]!;
      if (c.term !== a.term) throw new SimCheckFailure('acked-write-lost', `${a.session} seq ${a.seq} (${a.f} ${a.key}) was acknowledged in term ${a.term}, but its committed entry ${f} is of term ${c.term}`);
    }
  }

  /**
   * Each acknowledged write was applied once: its answer carries the revision that applying its
   * FIRST committed entry produced. A retry applied again answers with a later revision.
   */
  checkExactlyOnce(acked: AckedWrite[]): void {
    for (const a of acked) {
      const f = this.firstEntryOf(a);
      const want = f === undefined ? undefined : this.revisionAt.get(f);
      if (want !== undefined && want !== a.revision) {
        throw new SimCheckFailure(
          'exactly-once',
          `${a.session} seq ${a.seq} (${a.f} ${a.key}) was answered with revision ${a.revision} after ${a.attempts} attempt(s), but its first committed entry ${f} applied at revision ${want}: it was applied again`,
        );
      }
    }
  }

  /**
   * The client history is linearizable. The checker's budget is in search steps, not time, so
   * the verdict depends on the history alone; a key whose search runs out is counted, not failed.
   */
  checkLinearizable(history: Op[]): { ops: number; unknownKeys: number } {
    const pairs = pairOps(history);
    const r = checkLinearizable(pairs);
    if (r.valid === false) {
      const f = r.evidence.failures[0]!;
      throw new SimCheckFailure('linearizability', f.explanation);
    }
    return { ops: r.evidence.opsChecked, unknownKeys: r.evidence.unknownKeys.length };
  }
}

function wrap(e: unknown): Error {
  if (e instanceof InvariantViolation) return new SimCheckFailure(e.invariant, e.message);
  return e as Error;
}
