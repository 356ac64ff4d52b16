// The pure part of the Docker environment: which partitions `docker network disconnect` can
// express (whole nodes isolated) and which it must report NOT APPLIED.
import { describe, expect, it } from 'vitest';
import { isolatedSetFor } from '../src/docker-db.js';
import { crossCuts, halvesCuts, majoritiesRingCuts } from '../src/nemesis.js';

const nodes = ['n1', 'n2', 'n3'];

describe('isolatedSetFor (docker network disconnect)', () => {
  it('isolating one node is disconnecting it', () => {
    expect(isolatedSetFor(nodes, crossCuts(['n2'], ['n1', 'n3']))).toEqual(['n2']);
  });

  it('halves of three nodes is isolating the smaller half', () => {
    expect(isolatedSetFor(nodes, halvesCuts(['n3', 'n1', 'n2']))).toEqual(['n3']);
  });

  it('no cuts: nothing to disconnect', () => {
    expect(isolatedSetFor(nodes, [])).toEqual([]);
  });

  it('two nodes cut off from everyone, each other included, is disconnecting both', () => {
    const cuts = [...crossCuts(['n1'], ['n2', 'n3']), ...crossCuts(['n2'], ['n3'])];
    expect(isolatedSetFor(nodes, cuts)).toEqual(['n1', 'n2']);
  });

  it('one-way and ring cuts cannot be expressed', () => {
    expect(isolatedSetFor(nodes, [['n1', 'n2']])).toBeUndefined();
    expect(isolatedSetFor(nodes, majoritiesRingCuts(['n1', 'n2', 'n3']))).toBeUndefined();
  });

  it('halves of four nodes (two groups that still talk inside) cannot be expressed', () => {
    expect(isolatedSetFor(['n1', 'n2', 'n3', 'n4'], halvesCuts(['n1', 'n2', 'n3', 'n4']))).toBeUndefined();
  });
});
