// Core issues found by the transcript and unit tests, each kept as the test that shows it fixed.
import { describe, expect, it } from 'vitest';
import { TestNet, text } from './net.js';

describe('open core issues', () => {
  // N3: the leader keys pending ReadIndex requests by ctx alone, so two followers that happen to
  // use the same ctx in one turn collide and the second read is dropped without an answer.
  it('N3: reads forwarded by two followers with the same ctx are both answered', () => {
    const net = new TestNet(['n1', 'n2', 'n3']);
    net.get('n1').node.campaign();
    net.stabilize();
    net.get('n2').node.readIndex(text('req-1'));
    net.get('n3').node.readIndex(text('req-1'));
    net.stabilize();
    expect(net.get('n2').readStates.map((r) => r.ctx)).toEqual(['req-1']);
    expect(net.get('n3').readStates.map((r) => r.ctx)).toEqual(['req-1']);
  });
});
