// Core bugs found by the transcript and unit tests, each written as the test that should pass.
// They are marked `it.fails` so CI stays green while the bug is open: vitest reports an error
// as soon as one of them starts passing, which is the signal to turn `it.fails` into `it` (and
// to rewrite the transcripts that recorded the old behaviour). Details: /work/notes/core-bugs.md.
import { describe, expect, it } from 'vitest';
import { ConfChangeType, MemoryStorage } from '../src/index.js';
import { TestNet, text } from './net.js';

const dec = new TextDecoder();

describe('fixed core bugs (kept as regression tests)', () => {
  // Bug 1: a node that joins with an empty ConfState learns the membership only from the conf
  // change entries it replays. The bootstrap membership (n1 n2 n3) is in no entry, so after its
  // promotion n4 believes it is the only voter, elects itself alone and commits alone.
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
    expect(alone).toBeDefined();
    expect(net.get('n4').applied.map((d) => dec.decode(d))).not.toContain('only-on-n4');
  });
});
