// Regression tests for a core bug: a node that joins with an empty
// ConfState must learn the whole membership — founding members bootstrap it into the log — and
// so can never believe it is the only voter, elect itself alone and commit alone.
import { describe, expect, it } from 'vitest';
import { ConfChangeType, MemoryStorage, NotLeaderError } from '../src/index.js';
import { TestNet, text } from './net.js';

const dec = new TextDecoder();

describe('fixed core bugs (kept as regression tests)', () => {
  it('a joining node learns the full membership (it must not believe it is the only voter)', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.get('n1').node.campaign();
    net.stabilize();
    net.add('n4', new MemoryStorage({ confState: { voters: [], learners: [] } }));
    net.get('n1').node.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 'n4' });
    net.stabilize();
    net.tickAll(2);
    net.get('n1').node.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: 'n4' });
    net.stabilize();
    expect(net.get('n4').node.status().confState.voters).toEqual(['n1', 'n2', 'n3', 'n4']);
  });

  it('a promoted joiner cannot commit an entry on its own (split brain)', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.get('n1').node.campaign();
    net.stabilize();
    net.add('n4', new MemoryStorage({ confState: { voters: [], learners: [] } }));
    net.get('n1').node.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 'n4' });
    net.stabilize();
    net.tickAll(2);
    net.get('n1').node.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: 'n4' });
    net.stabilize();
    // n4 loses contact with everyone; its election timer fires.
    net.isolate('n4');
    net.tick('n4', 20);
    net.stabilize();
    let alone: unknown;
    try {
      net.get('n4').node.propose(text('only-on-n4'));
      net.stabilize();
    } catch (e) {
      alone = e;
    }
    // Correct behaviour: n4 cannot be leader (or at least cannot commit) without a quorum of 4.
    expect(alone).toBeInstanceOf(NotLeaderError);
    expect(net.get('n4').applied.map((d) => dec.decode(d))).not.toContain('only-on-n4');
  });
});
