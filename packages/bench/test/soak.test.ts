import { describe, expect, it } from 'vitest';
import { electionsBetween } from '../src/failover.js';

const st = (term: number, isLeader = false) => ({ term, isLeader, appliedIndex: 0, commitIndex: 0 });

describe('electionsBetween', () => {
  it('counts the increase of the highest term, so a lagging member catching up is not an election', () => {
    expect(electionsBetween([st(2, true), st(1), st(2)], [st(2, true), st(2), st(2)])).toBe(0);
    expect(electionsBetween([st(2, true), st(2), st(2)], [st(3), st(3, true), st(3)])).toBe(1);
  });

  it('is unknown when no member answered', () => {
    expect(electionsBetween([undefined, undefined], [st(4)])).toBeNull();
  });
});
