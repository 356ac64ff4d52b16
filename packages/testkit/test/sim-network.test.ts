import { describe, expect, it } from 'vitest';
import { PERFECT_NETWORK, Prng, SimNetwork } from '@quorumkv/testkit';
import type { NetworkFaults } from '@quorumkv/testkit';

interface M {
  from: string;
  to: string;
  n: number;
}

function run(net: SimNetwork<M>, ticks: number): { tick: number; m: M }[] {
  const out: { tick: number; m: M }[] = [];
  for (let t = 1; t <= ticks; t++) for (const m of net.deliverDue(t)) out.push({ tick: t, m });
  return out;
}

describe('SimNetwork', () => {
  it('delivers every message after one tick on a perfect network', () => {
    const net = new SimNetwork<M>(new Prng(1), PERFECT_NETWORK);
    for (let i = 0; i < 5; i++) net.send(0, { from: 'a', to: 'b', n: i });
    const got = run(net, 3);
    expect(got.map((g) => g.tick)).toEqual([1, 1, 1, 1, 1]);
    expect(got.map((g) => g.m.n).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(net.pending).toBe(0);
  });

  it('delays within the configured range, drops, duplicates and reorders at about the configured rates', () => {
    const faults: NetworkFaults = { dropProbability: 0.1, duplicateProbability: 0.1, minDelayTicks: 2, maxDelayTicks: 5, longDelayProbability: 0, maxLongDelayTicks: 5 };
    const net = new SimNetwork<M>(new Prng(2), faults);
    const lost: string[] = [];
    net.onLost = (_m, reason) => lost.push(reason);
    for (let i = 0; i < 10_000; i++) net.send(0, { from: 'a', to: 'b', n: i });
    const got = run(net, 10);
    expect(got.filter((g) => g.tick < 2 || g.tick > 5)).toEqual([]);
    expect(Math.abs(net.stats.dropped - 1000)).toBeLessThan(150);
    expect(Math.abs(net.stats.duplicated - 900)).toBeLessThan(150);
    expect(got.length).toBe(10_000 - net.stats.dropped + net.stats.duplicated);
    expect(lost.length).toBe(net.stats.dropped);
    const order = got.map((g) => g.m.n);
    expect(order).not.toEqual(order.slice().sort((p, q) => p - q));
  });

  it('cuts links one way, partitions both ways, and heals', () => {
    const net = new SimNetwork<M>(new Prng(3), PERFECT_NETWORK);
    const cut: string[] = [];
    net.onLost = (m, reason) => cut.push(`${m.from}>${m.to}:${reason}`);
    net.cut('a', 'b');
    expect(net.connected('a', 'b')).toBe(false);
    expect(net.connected('b', 'a')).toBe(true);
    net.send(0, { from: 'a', to: 'b', n: 1 });
    net.send(0, { from: 'b', to: 'a', n: 2 });
    expect(run(net, 1).map((g) => g.m.n)).toEqual([2]);
    expect(cut).toEqual(['a>b:cut']);
    net.heal();
    net.partition(['a'], ['b', 'c']);
    expect(net.cutLinks).toBe(4);
    expect(net.connected('c', 'a')).toBe(false);
    expect(net.connected('b', 'c')).toBe(true);
    net.heal();
    expect(net.cutLinks).toBe(0);
  });

  it('swallows messages already on the wire when a partition starts', () => {
    const net = new SimNetwork<M>(new Prng(4), { ...PERFECT_NETWORK, minDelayTicks: 3, maxDelayTicks: 3 });
    net.send(0, { from: 'a', to: 'b', n: 1 });
    net.isolate('b', ['a', 'b', 'c']);
    expect(run(net, 5)).toEqual([]);
    expect(net.stats.cut).toBe(1);
  });

  it('is deterministic for a seed', () => {
    const faults: NetworkFaults = { dropProbability: 0.2, duplicateProbability: 0.2, minDelayTicks: 1, maxDelayTicks: 4, longDelayProbability: 0.1, maxLongDelayTicks: 20 };
    const trace = (seed: number) => {
      const net = new SimNetwork<M>(new Prng(seed), faults);
      for (let i = 0; i < 200; i++) net.send(0, { from: 'a', to: 'b', n: i });
      return run(net, 25).map((g) => `${g.tick}:${g.m.n}`).join(',');
    };
    expect(trace(5)).toBe(trace(5));
    expect(trace(5)).not.toBe(trace(6));
  });

  it('rejects nonsense fault rates', () => {
    expect(() => new SimNetwork<M>(new Prng(1), { ...PERFECT_NETWORK, dropProbability: 2 })).toThrow(/dropProbability/);
    expect(() => new SimNetwork<M>(new Prng(1), { ...PERFECT_NETWORK, minDelayTicks: 0 })).toThrow(/minDelayTicks/);
  });
});
