import { describe, expect, it } from 'vitest';
import { TestNet, text } from './net.js';
import { NotLeaderError, ConfChangeType, MemoryStorage } from '../src/index.js';

describe('raft core smoke', () => {
  it('elects a leader and replicates a proposal to all nodes', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.get('n1').node.campaign();
    net.stabilize();
    expect(net.leader()).toBe('n1');
    net.get('n1').node.propose(text('x=1'));
    net.stabilize();
    for (const id of ['n1', 'n2', 'n3']) expect(net.get(id).applied.map((d) => new TextDecoder().decode(d))).toEqual(['x=1']);
  });

  it('refuses proposals on a follower with a leader hint', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.get('n1').node.campaign();
    net.stabilize();
    expect(() => net.get('n2').node.propose(text('y'))).toThrow(NotLeaderError);
    try {
      net.get('n2').node.propose(text('y'));
    } catch (e) {
      expect((e as NotLeaderError).leaderHint).toBe('n1');
      expect((e as NotLeaderError).code).toBe('QKV_NOT_LEADER');
    }
  });

  it('elects by timeout, re-elects after the leader is isolated, and CheckQuorum deposes it', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.tickAll(30);
    const first = net.leader();
    expect(first).not.toBeNull();
    net.isolate(first!);
    net.tickAll(40);
    const roles = [...net.nodes.values()].map((t) => [t.id, t.node.status().softState.role]);
    const leaders = roles.filter(([, r]) => r === 'leader').map(([id]) => id);
    expect(leaders).toHaveLength(1);
    expect(leaders[0]).not.toBe(first);
    net.heal();
    net.tickAll(5);
    expect(net.leader()).toBe(leaders[0]);
  });

  it('serves ReadIndex after a heartbeat round, many reads sharing one', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.get('n1').node.campaign();
    net.stabilize();
    net.get('n1').node.propose(text('a'));
    net.stabilize();
    const before = net.log.length;
    for (let i = 0; i < 10; i++) net.get('n1').node.readIndex(text(`r${i}`));
    net.stabilize();
    expect(net.get('n1').readStates.map((r) => r.ctx)).toEqual(Array.from({ length: 10 }, (_, i) => `r${i}`));
    const heartbeats = net.log.slice(before).filter((m) => m.type === 17);
    expect(heartbeats).toHaveLength(2); // one round to two followers
  });

  it('forwards a follower ReadIndex to the leader', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.get('n1').node.campaign();
    net.stabilize();
    net.get('n2').node.readIndex(text('f1'));
    net.stabilize();
    expect(net.get('n2').readStates).toEqual([{ index: net.get('n1').node.status().hardState.commit, ctx: 'f1' }]);
  });

  it('adds a learner and promotes it', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.get('n1').node.campaign();
    net.stabilize();
    net.get('n1').node.propose(text('before'));
    net.stabilize();
    net.add('n4', new MemoryStorage({ confState: { voters: [], learners: [] } }));
    net.get('n1').node.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 'n4' });
    net.stabilize();
    net.tickAll(3);
    expect(net.get('n1').node.status().confState.learners).toEqual(['n4']);
    expect(net.get('n4').applied.map((d) => new TextDecoder().decode(d))).toEqual(['before']);
    net.get('n1').node.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: 'n4' });
    net.stabilize();
    expect(net.get('n1').node.status().confState.voters).toEqual(['n1', 'n2', 'n3', 'n4']);
  });

  it('transfers leadership', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.get('n1').node.campaign();
    net.stabilize();
    net.get('n1').node.transferLeader('n3');
    net.stabilize();
    expect(net.leader()).toBe('n3');
  });
});
