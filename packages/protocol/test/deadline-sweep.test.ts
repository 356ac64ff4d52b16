// The shared deadline timer of a connection: requests expire at (not before) their deadlines,
// one timer serves all of them, an earlier deadline re-arms it, and stop() silences it.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineSweep } from '@quorumkv/protocol';

interface Req {
  name: string;
  expiresMs: number;
}

function setup(): { live: Map<string, Req>; expired: Array<[string, number]>; sweep: DeadlineSweep<Req>; add(name: string, inMs: number): void } {
  const live = new Map<string, Req>();
  const expired: Array<[string, number]> = [];
  const sweep = new DeadlineSweep<Req>({
    live: () => live.values(),
    expire: (r) => {
      live.delete(r.name);
      expired.push([r.name, Date.now()]);
    },
    now: Date.now,
  });
  const add = (name: string, inMs: number): void => {
    const r = { name, expiresMs: Date.now() + inMs };
    live.set(name, r);
    sweep.arm(r.expiresMs);
  };
  return { live, expired, sweep, add };
}

describe('DeadlineSweep', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('expires each request at its deadline, in deadline order, with one timer', () => {
    const { expired, add } = setup();
    add('a', 100);
    add('b', 300);
    add('c', 200);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(99);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual([['a', 1_000_100]]);
    vi.advanceTimersByTime(200);
    expect(expired).toEqual([
      ['a', 1_000_100],
      ['c', 1_000_200],
      ['b', 1_000_300],
    ]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('re-arms for an earlier deadline added later', () => {
    const { expired, add } = setup();
    add('late', 5_000);
    add('early', 50);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(50);
    expect(expired).toEqual([['early', 1_000_050]]);
    vi.advanceTimersByTime(4_950);
    expect(expired.map((e) => e[0])).toEqual(['early', 'late']);
  });

  it('skips requests that were answered (removed, or no deadline any more) and stops when told', () => {
    const { live, expired, sweep, add } = setup();
    add('answered', 100);
    add('done', 100);
    add('waiting', 200);
    live.delete('answered');
    live.get('done')!.expiresMs = Number.POSITIVE_INFINITY;
    vi.advanceTimersByTime(100);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(100);
    expect(expired).toEqual([['waiting', 1_000_200]]);
    add('cancelled', 100);
    sweep.stop();
    vi.advanceTimersByTime(1_000);
    expect(expired).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});
