// Inflights, Progress and ProgressTracker: the leader's per-follower flow control and the
// arithmetic of quorums. These decide when a leader sends, stops sending, and commits.
import { describe, expect, it } from 'vitest';
import { Inflights, Progress, ProgressTracker } from '../src/progress.js';

describe('Inflights', () => {
  it('is full at maxMessages', () => {
    const inf = new Inflights(3, 0);
    inf.add(1, 10);
    inf.add(2, 10);
    expect(inf.full()).toBe(false);
    inf.add(3, 10);
    expect(inf.full()).toBe(true);
    expect(inf.count).toBe(3);
    expect(inf.totalBytes).toBe(30);
  });

  it('is full once the bytes in flight reach maxBytes (the last message may pass the bound)', () => {
    const inf = new Inflights(100, 250);
    inf.add(1, 100);
    inf.add(2, 100);
    expect(inf.full()).toBe(false);
    inf.add(3, 100);
    expect(inf.full()).toBe(true);
    expect(inf.totalBytes).toBe(300);
  });

  it('maxBytes = 0 means no byte limit', () => {
    const inf = new Inflights(2, 0);
    inf.add(1, 1e9);
    expect(inf.full()).toBe(false);
  });

  it('freeLE frees every message acknowledged, oldest first, with its bytes', () => {
    const inf = new Inflights(10, 1000);
    for (let i = 1; i <= 5; i++) inf.add(i * 2, 10 * i); // last indexes 2,4,6,8,10
    inf.freeLE(5);
    expect(inf.count).toBe(3);
    expect(inf.totalBytes).toBe(30 + 40 + 50);
    inf.freeLE(3); // stale ack: nothing more
    expect(inf.count).toBe(3);
    inf.freeLE(10);
    expect(inf.count).toBe(0);
    expect(inf.totalBytes).toBe(0);
  });

  it('stays correct across many add/free cycles (internal compaction)', () => {
    const inf = new Inflights(4, 0);
    let last = 0;
    for (let round = 0; round < 500; round++) {
      while (!inf.full()) inf.add(++last, 1);
      inf.freeLE(last - 1);
      expect(inf.count).toBe(1);
      expect(inf.totalBytes).toBe(1);
    }
  });

  it('refuses add on a full window (a bug in the caller)', () => {
    const inf = new Inflights(1, 0);
    inf.add(1, 1);
    expect(() => inf.add(2, 1)).toThrow(/invariant/);
  });

  it('reset empties the window', () => {
    const inf = new Inflights(2, 0);
    inf.add(1, 5);
    inf.add(2, 5);
    inf.reset();
    expect(inf.count).toBe(0);
    expect(inf.totalBytes).toBe(0);
    expect(inf.full()).toBe(false);
  });
});

function progress(next: number, maxMessages = 4, maxBytes = 0): Progress {
  return new Progress(next, new Inflights(maxMessages, maxBytes), false);
}

describe('Progress', () => {
  it('starts probing; one outstanding probe pauses it until an answer', () => {
    const pr = progress(5);
    expect(pr.state).toBe('probe');
    expect(pr.isPaused()).toBe(false);
    pr.sentEntries(7, 2, 20);
    expect(pr.isPaused()).toBe(true);
    expect(pr.next).toBe(5); // probing does not move next optimistically
    expect(pr.maybeUpdate(7)).toBe(true);
    expect(pr.isPaused()).toBe(false);
    expect(pr.match).toBe(7);
    expect(pr.next).toBe(8);
  });

  it('replicate: sends optimistically and pauses when the window is full', () => {
    const pr = progress(5, 2);
    pr.maybeUpdate(4);
    pr.becomeReplicate();
    expect(pr.next).toBe(5);
    pr.sentEntries(6, 2, 20);
    expect(pr.next).toBe(7);
    expect(pr.isPaused()).toBe(false);
    pr.sentEntries(8, 2, 20);
    expect(pr.isPaused()).toBe(true);
    pr.maybeUpdate(6);
    pr.inflights.freeLE(6);
    expect(pr.isPaused()).toBe(false);
  });

  it('replicate: an empty append does not take a window slot', () => {
    const pr = progress(5, 1);
    pr.becomeReplicate();
    pr.sentEntries(4, 0, 0);
    expect(pr.inflights.count).toBe(0);
    expect(pr.isPaused()).toBe(false);
  });

  it('maybeUpdate ignores stale acks and never moves match back', () => {
    const pr = progress(10);
    expect(pr.maybeUpdate(9)).toBe(true);
    expect(pr.maybeUpdate(3)).toBe(false);
    expect(pr.match).toBe(9);
    expect(pr.next).toBe(10);
  });

  it('maybeDecrTo in probe: uses the hint, ignores out-of-order rejections', () => {
    const pr = progress(10);
    expect(pr.maybeDecrTo(5, 2)).toBe(false); // not the probe we sent (next-1 = 9)
    expect(pr.maybeDecrTo(9, 3)).toBe(true);
    expect(pr.next).toBe(4); // min(rejected, hint + 1)
    pr.maybeUpdate(2);
    expect(pr.maybeDecrTo(pr.next - 1, 0)).toBe(true);
    expect(pr.next).toBe(3); // never below match + 1
  });

  it('maybeDecrTo in replicate: stale when rejected <= match; otherwise back to match + 1', () => {
    const pr = progress(10);
    pr.maybeUpdate(6);
    pr.becomeReplicate();
    pr.sentEntries(9, 3, 30);
    expect(pr.maybeDecrTo(6, 0)).toBe(false);
    expect(pr.maybeDecrTo(8, 0)).toBe(true);
    expect(pr.next).toBe(7);
  });

  it('snapshot: paused until the follower acks; becomeProbe resumes after the snapshot', () => {
    const pr = progress(3);
    pr.maybeUpdate(2);
    pr.becomeSnapshot(20);
    expect(pr.state).toBe('snapshot');
    expect(pr.isPaused()).toBe(true);
    expect(() => pr.sentEntries(21, 1, 1)).toThrow(/invariant/);
    pr.becomeProbe();
    expect(pr.state).toBe('probe');
    expect(pr.next).toBe(21); // max(match + 1, pendingSnapshot + 1)
    expect(pr.pendingSnapshot).toBe(0);
  });

  it('a failed snapshot (pendingSnapshot cleared) resumes probing from match + 1', () => {
    const pr = progress(3);
    pr.maybeUpdate(2);
    pr.becomeSnapshot(20);
    pr.pendingSnapshot = 0;
    pr.becomeProbe();
    expect(pr.next).toBe(3);
  });

  it('state changes empty the in-flight window', () => {
    const pr = progress(1, 4);
    pr.becomeReplicate();
    pr.sentEntries(3, 3, 30);
    pr.becomeProbe();
    expect(pr.toStatus()).toMatchObject({ state: 'probe', inflightMessages: 0, inflightBytes: 0, next: 1 });
  });
});

describe('ProgressTracker', () => {
  function tracker(voters: string[], learners: string[] = []): ProgressTracker {
    const t = new ProgressTracker(8, 0);
    t.reset({ voters, learners }, 1);
    return t;
  }

  it('quorum is a strict majority of voters', () => {
    expect([1, 2, 3, 4, 5].map((n) => tracker(Array.from({ length: n }, (_, i) => `n${i}`)).quorum())).toEqual([1, 2, 2, 3, 3]);
  });

  it('committed() is the highest index a quorum of voters has; learners do not count', () => {
    const t = tracker(['a', 'b', 'c'], ['l']);
    const set = (id: string, m: number) => (t.progress.get(id)!.match = m);
    set('a', 9);
    set('b', 5);
    set('c', 2);
    set('l', 100);
    expect(t.committed()).toBe(5);
    set('c', 7);
    expect(t.committed()).toBe(7);
    expect(tracker([]).committed()).toBe(0);
  });

  it('tallies votes: won, lost, pending; the first vote of a voter counts', () => {
    const t = tracker(['a', 'b', 'c', 'd', 'e']);
    t.recordVote('a', true);
    t.recordVote('b', false);
    expect(t.tallyVotes().result).toBe('pending');
    t.recordVote('b', true); // a second answer from b is ignored
    t.recordVote('c', false);
    t.recordVote('d', false);
    expect(t.tallyVotes()).toEqual({ granted: 1, rejected: 3, result: 'lost' });
    const u = tracker(['a', 'b', 'c']);
    u.recordVote('a', true);
    u.recordVote('x', true); // not a voter
    expect(u.tallyVotes().result).toBe('pending');
    u.recordVote('c', true);
    expect(u.tallyVotes().result).toBe('won');
  });

  it('quorumActive counts the leader itself and recently active voters only', () => {
    const t = tracker(['a', 'b', 'c'], ['l']);
    t.progress.get('l')!.recentActive = true;
    expect(t.quorumActive('a')).toBe(false);
    t.progress.get('c')!.recentActive = true;
    expect(t.quorumActive('a')).toBe(true);
  });

  it('confState lists members sorted', () => {
    const t = tracker(['c', 'a', 'b'], ['z', 'y']);
    expect(t.confState()).toEqual({ voters: ['a', 'b', 'c'], learners: ['y', 'z'] });
    expect(t.progress.get('y')!.learner).toBe(true);
  });
});
