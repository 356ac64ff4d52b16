// The availability bookkeeping (src/availability.ts): leaderless time starts at the last word of
// the previous leader and ends at the next leader; error causes are lower-case codes, bounded.
import { describe, expect, it } from 'vitest';
import { ERROR_CAUSES_MAX, ErrorCauses, LeaderlessTime } from '../src/availability.js';

describe('leaderless time', () => {
  it('counts from start until the first leader, then each gap from the old leader\'s last message', () => {
    const t = new LeaderlessTime(1_000);
    expect(t.seconds(1_500)).toBe(0.5); // still looking for a leader: the open interval counts
    t.note(true, 2_000); // the first leader after 1 s
    expect(t.seconds(9_000)).toBe(1);
    // The leader crashes; last heard at 9 000, the node notices at 9 300 and learns the next at 9 450.
    t.note(false, 9_300, 9_000);
    expect(t.seconds(9_400)).toBe(1.4);
    t.note(true, 9_450);
    expect(t.seconds(20_000)).toBe(1.45);
    // A direct hand-over (leader transfer): only the gap since the old leader's last message.
    t.note(true, 30_000, 29_990);
    expect(t.seconds(40_000)).toBeCloseTo(1.46, 9);
  });
});

describe('error causes', () => {
  it('are the lower-case code without QKV_; anything else and past the bound is "other"', () => {
    const c = new ErrorCauses();
    expect(c.label('QKV_NO_LEADER')).toBe('no_leader');
    expect(c.label('not a code')).toBe('other');
    for (let i = 0; i < ERROR_CAUSES_MAX + 5; i++) c.label(`QKV_X${String.fromCharCode(65 + (i % 26))}${String.fromCharCode(65 + Math.floor(i / 26))}`);
    expect(c.label('QKV_NEVER_SEEN_BEFORE')).toBe('other');
    expect(c.label('QKV_NO_LEADER')).toBe('no_leader'); // already seen: keeps its label
  });
});
