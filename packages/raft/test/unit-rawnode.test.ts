// RawNode's contract with the host: one Ready at a time, the mustSync rule, typed errors, wire
// messages that must not forge local events, restart from persisted state, and the bound on
// committed entries per Ready.
import { describe, expect, it } from 'vitest';
import {
  EntryType,
  MemoryStorage,
  MessageType,
  NotLeaderError,
  ProposalDroppedError,
  RaftError,
  RawNode,
  defaultConfig,
  type Config,
  type Message,
} from '../src/index.js';
import { TestNet, text } from './net.js';

function single(over: Partial<Config> = {}): { node: RawNode; storage: MemoryStorage } {
  const storage = new MemoryStorage({ confState: { voters: ['n1'], learners: [] } });
  const node = new RawNode({ ...defaultConfig, id: 'n1', storage, random: { int: () => 0 }, ...over });
  return { node, storage };
}

/** Persists and advances every pending Ready of a lone node; returns the applied data. */
function drain(node: RawNode, storage: MemoryStorage): string[] {
  const applied: string[] = [];
  while (node.hasReady()) {
    const rd = node.ready();
    storage.append(rd.entries);
    if (rd.hardState) storage.setHardState(rd.hardState);
    for (const e of rd.committedEntries) if (e.data.length > 0) applied.push(new TextDecoder().decode(e.data));
    node.advance(rd);
  }
  return applied;
}

const wire = (fields: Partial<Message> & Pick<Message, 'type'>): Message => ({
  to: 'n1',
  from: 'n2',
  term: 0,
  logTerm: 0,
  index: 0,
  entries: [],
  commit: 0,
  reject: false,
  rejectHint: 0,
  ...fields,
});

describe('RawNode', () => {
  it('hands out one Ready at a time and checks that advance gets that Ready', () => {
    const { node } = single();
    node.campaign();
    const rd = node.ready();
    expect(node.hasReady()).toBe(false); // nothing new until advance
    expect(() => node.ready()).toThrow(/before advance/);
    expect(() => node.advance({ ...rd })).toThrow(/advance/);
    node.advance(rd);
  });

  it('a single voter elects itself, commits and applies its own proposals', () => {
    const { node, storage } = single();
    node.campaign();
    drain(node, storage);
    expect(node.status().softState.role).toBe('leader');
    expect(node.propose(text('a'))).toEqual({ index: 2, term: 1 });
    expect(drain(node, storage)).toEqual(['a']);
    expect(node.hasReady()).toBe(false);
  });

  it('mustSync is true exactly when entries, term or vote change (a commit-only change need not fsync)', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    const seen = { sync: 0, commitOnly: 0 };
    const prev = new Map<string, { term: number; vote: string | null }>();
    const step = (): boolean => {
      let busy = false;
      for (const tn of net.nodes.values()) {
        while (tn.node.hasReady()) {
          busy = true;
          const before = prev.get(tn.id) ?? tn.storage.initialState().hardState;
          const rd = tn.node.ready();
          const termOrVote = rd.hardState !== undefined && (rd.hardState.term !== before.term || rd.hardState.vote !== before.vote);
          expect(rd.mustSync).toBe(rd.entries.length > 0 || termOrVote || rd.snapshot !== undefined);
          if (rd.mustSync) seen.sync++;
          else if (rd.hardState) seen.commitOnly++;
          tn.storage.append(rd.entries);
          if (rd.hardState) {
            tn.storage.setHardState(rd.hardState);
            prev.set(tn.id, rd.hardState);
          }
          for (const m of rd.messages) net.get(m.to).node.step(m);
          tn.node.advance(rd);
        }
      }
      return busy;
    };
    net.get('n1').node.campaign();
    while (step());
    net.get('n1').node.propose(text('x'));
    while (step());
    expect(seen.sync).toBeGreaterThan(0);
    expect(seen.commitOnly).toBeGreaterThan(0);
  });

  it('ignores local-only message types arriving from the wire', () => {
    const { node } = single();
    for (const type of [MessageType.Hup, MessageType.Beat, MessageType.CheckQuorum, MessageType.Prop]) {
      node.step(wire({ type }));
    }
    expect(node.status().softState.role).toBe('follower');
    expect(node.hasReady()).toBe(false);
  });

  it('ignores responses from nodes outside the configuration', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.get('n1').node.campaign();
    net.stabilize();
    const before = net.get('n1').node.status();
    net.get('n1').node.step(wire({ type: MessageType.AppResp, from: 'n9', to: 'n1', term: 1, index: 100 }));
    expect(net.get('n1').node.status()).toEqual(before);
  });

  it('typed errors carry stable codes', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    const n2 = net.get('n2').node;
    let e: unknown;
    try {
      n2.propose(text('x'));
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(NotLeaderError);
    expect(e).toBeInstanceOf(RaftError);
    expect((e as NotLeaderError).code).toBe('QKV_NOT_LEADER');
    expect((e as NotLeaderError).leaderHint).toBeNull();
    expect(() => n2.readIndex(text('r'))).toThrow(NotLeaderError);

    net.get('n1').node.campaign();
    net.stabilize();
    net.get('n1').node.transferLeader('n2');
    try {
      net.get('n1').node.propose(text('y'));
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(ProposalDroppedError);
    expect((e as ProposalDroppedError).code).toBe('QKV_PROPOSAL_DROPPED');
  });

  it('restarts from persisted state only: term, vote and log survive; unpersisted entries do not', () => {
    const { node, storage } = single();
    node.campaign();
    drain(node, storage);
    node.propose(text('kept'));
    drain(node, storage);
    node.propose(text('lost')); // in the unstable log, never handed to the host
    const restarted = new RawNode({ ...defaultConfig, id: 'n1', storage, random: { int: () => 0 } });
    const st = restarted.status();
    expect(st.hardState).toEqual({ term: 1, vote: 'n1', commit: 2 });
    expect(st.lastIndex).toBe(2);
    expect(st.softState.role).toBe('follower');
    // With applied = 0 the committed entries are handed out again for the state machine.
    expect(drain(restarted, storage)).toEqual(['kept']);
  });

  it('does not hand out entries at or below config.applied again', () => {
    const { node, storage } = single();
    node.campaign();
    drain(node, storage);
    node.propose(text('a'));
    node.propose(text('b'));
    drain(node, storage);
    const restarted = new RawNode({ ...defaultConfig, id: 'n1', storage, random: { int: () => 0 }, applied: 2 });
    expect(drain(restarted, storage)).toEqual(['b']);
  });

  it('bounds the committed entries of one Ready by maxCommittedBytesPerReady (at least one)', () => {
    const { node, storage } = single({ maxCommittedBytesPerReady: 1 });
    node.campaign();
    drain(node, storage);
    for (const s of ['a', 'b', 'c']) node.propose(text(s));
    const sizes: number[] = [];
    while (node.hasReady()) {
      const rd = node.ready();
      storage.append(rd.entries);
      if (rd.hardState) storage.setHardState(rd.hardState);
      if (rd.committedEntries.length > 0) sizes.push(rd.committedEntries.length);
      node.advance(rd);
    }
    expect(sizes).toEqual([1, 1, 1]);
  });

  it('status reports progress only on the leader', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.get('n1').node.campaign();
    net.stabilize();
    expect(Object.keys(net.get('n1').node.status().progress ?? {})).toEqual(['n1', 'n2', 'n3']);
    expect(net.get('n2').node.status().progress).toBeUndefined();
    expect(net.get('n2').node.status().softState).toEqual({ lead: 'n1', role: 'follower' });
  });

  it('conf change entries are of type ConfChange', () => {
    const { node, storage } = single();
    node.campaign();
    drain(node, storage);
    node.proposeConfChange({ type: 1, nodeId: 'n2' });
    const rd = node.ready();
    expect(rd.entries.map((e) => e.type)).toEqual([EntryType.ConfChange]);
    node.advance(rd);
  });

  it('accepts input between ready() and advance() (a host stepping messages while its write is in flight)', () => {
    const { node, storage } = single();
    node.campaign();
    drain(node, storage);
    const decode = (es: { data: Uint8Array }[]) => es.map((e) => new TextDecoder().decode(e.data));
    node.propose(text('a'));
    const rd = node.ready();
    node.propose(text('b')); // arrives while rd is being persisted
    node.propose(text('c'));
    storage.append(rd.entries);
    if (rd.hardState) storage.setHardState(rd.hardState);
    node.advance(rd);
    const next = node.ready();
    storage.append(next.entries);
    if (next.hardState) storage.setHardState(next.hardState);
    node.advance(next);
    // Nothing lost, nothing handed out twice.
    expect([decode(rd.entries), decode(next.entries)]).toEqual([['a'], ['b', 'c']]);
    expect([decode(rd.committedEntries), decode(next.committedEntries)]).toEqual([['a'], ['b', 'c']]);
    expect(node.hasReady()).toBe(false);
    expect(storage.lastIndex()).toBe(4);
  });

  it('a follower whose unpersisted entries are replaced before advance() re-emits the replacement', () => {
    const storage = new MemoryStorage({ confState: { voters: ['n1', 'n2'], learners: [] } });
    const node = new RawNode({ ...defaultConfig, id: 'n2', storage, random: { int: () => 0 } });
    const app = (term: number, index: number, logTerm: number, ents: Array<[number, number, string]>): Message =>
      wire({
        type: MessageType.App,
        from: 'n1',
        to: 'n2',
        term,
        index,
        logTerm,
        entries: ents.map(([t, i, d]) => ({ term: t, index: i, type: EntryType.Normal, data: text(d) })),
      });
    node.step(app(1, 0, 0, [[1, 1, 'x'], [1, 2, 'old']]));
    const rd = node.ready();
    expect(rd.entries.map((e) => `${e.term}/${e.index}`)).toEqual(['1/1', '1/2']);
    // A new leader's append replaces entry 2 while rd is being persisted.
    node.step(app(2, 1, 1, [[2, 2, 'new']]));
    storage.append(rd.entries);
    if (rd.hardState) storage.setHardState(rd.hardState);
    node.advance(rd);
    const next = node.ready();
    // The replacement is re-emitted (with 1/1 again: harmless, appending it is idempotent).
    expect(next.entries.map((e) => `${e.term}/${e.index}`).at(-1)).toBe('2/2');
    storage.append(next.entries);
    node.advance(next);
    expect([storage.term(1), storage.term(2), storage.lastIndex()]).toEqual([1, 2, 2]);
    expect(node.hasReady()).toBe(false);
  });
});

describe('RawNode.suspendVoting (a host whose storage holds less than it promised)', () => {
  function three(): { node: RawNode; storage: MemoryStorage } {
    const storage = new MemoryStorage({ confState: { voters: ['n1', 'n2', 'n3'], learners: [] } });
    return { node: new RawNode({ ...defaultConfig, id: 'n1', storage, random: { int: () => 0 } }), storage };
  }
  const voteAnswers = (node: RawNode, storage: MemoryStorage): Message[] => {
    const out: Message[] = [];
    while (node.hasReady()) {
      const rd = node.ready();
      storage.append(rd.entries);
      if (rd.hardState) storage.setHardState(rd.hardState);
      out.push(...rd.messages);
      node.advance(rd);
    }
    return out;
  };

  it('rejects votes and pre-votes and never campaigns while suspended; votes again once resumed', () => {
    const { node, storage } = three();
    node.suspendVoting(true);
    node.step(wire({ type: MessageType.PreVote, term: 2, index: 0, logTerm: 0 }));
    node.step(wire({ type: MessageType.Vote, term: 2, index: 0, logTerm: 0 }));
    expect(voteAnswers(node, storage).map((m) => [m.type, m.reject])).toEqual([
      [MessageType.PreVoteResp, true],
      [MessageType.VoteResp, true],
    ]);
    for (let i = 0; i < 10 * defaultConfig.electionTicks; i++) node.tick();
    node.campaign();
    node.step(wire({ type: MessageType.TimeoutNow, term: 2 }));
    expect(voteAnswers(node, storage).filter((m) => m.type === MessageType.PreVote || m.type === MessageType.Vote)).toEqual([]);
    expect(node.status().softState.role).toBe('follower');

    node.suspendVoting(false);
    node.step(wire({ type: MessageType.Vote, from: 'n3', term: 3, index: 0, logTerm: 0 }));
    expect(voteAnswers(node, storage).map((m) => [m.type, m.reject])).toEqual([[MessageType.VoteResp, false]]);
  });
});

describe('RawNode.suspendCampaigning (a host replaying the log under an old membership)', () => {
  it('never campaigns while suspended, yet still grants votes; campaigns again once resumed', () => {
    const storage = new MemoryStorage({ confState: { voters: ['n1', 'n2', 'n3'], learners: [] } });
    const node = new RawNode({ ...defaultConfig, id: 'n1', storage, random: { int: () => 0 } });
    const drain = (): Message[] => {
      const out: Message[] = [];
      while (node.hasReady()) {
        const rd = node.ready();
        storage.append(rd.entries);
        if (rd.hardState) storage.setHardState(rd.hardState);
        out.push(...rd.messages);
        node.advance(rd);
      }
      return out;
    };
    node.suspendCampaigning(true);
    for (let i = 0; i < 10 * defaultConfig.electionTicks; i++) node.tick();
    node.campaign();
    node.step(wire({ type: MessageType.TimeoutNow, term: 2 }));
    expect(drain().filter((m) => m.type === MessageType.PreVote || m.type === MessageType.Vote)).toEqual([]);
    expect(node.status().softState.role).toBe('follower');
    node.step(wire({ type: MessageType.Vote, from: 'n3', term: 3, index: 0, logTerm: 0 }));
    expect(drain().map((m) => [m.type, m.reject])).toEqual([[MessageType.VoteResp, false]]);

    node.suspendCampaigning(false);
    node.campaign();
    expect(drain().some((m) => m.type === MessageType.PreVote)).toBe(true);
  });
});
