import { describe, expect, it } from 'vitest';
import type { NemesisName } from '../src/nemesis.js';
import { NEMESES, NemesisSpecError, cutsOf, expandNemeses, generateSchedule, halvesCuts, hearing, majoritiesRingCuts, resolveRef } from '../src/nemesis.js';
import { createRng } from '../src/random.js';

const nodes = (n: number) => Array.from({ length: n }, (_, i) => `n${i + 1}`);

describe('majorities ring', () => {
  for (const n of [3, 4, 5, 7]) {
    it(`with ${n} nodes every node hears a majority and no two hear the same one`, () => {
      for (let seed = 0; seed < 20; seed++) {
        const order = createRng(seed).shuffle(nodes(n));
        const h = hearing(order, majoritiesRingCuts(order));
        const sets = [...h.values()].map((s) => [...s].sort().join(','));
        for (const s of h.values()) expect(s.size).toBeGreaterThanOrEqual(Math.floor(n / 2) + 1);
        expect(new Set(sets).size).toBe(n);
      }
    });
  }
});

describe('partition shapes', () => {
  it('halves: nobody hears across, everyone hears their own side', () => {
    const h = hearing(nodes(5), halvesCuts(nodes(5)));
    expect([...h.get('n1')!].sort()).toEqual(['n1', 'n2']);
    expect([...h.get('n5')!].sort()).toEqual(['n3', 'n4', 'n5']);
  });

  it('isolating the leader resolves the role at the event start', () => {
    const view = { nodes: nodes(3), leader: 'n2' };
    const cuts = cutsOf({ kind: 'isolate', target: '@leader', mode: 'silent' }, view);
    const h = hearing(view.nodes, cuts);
    expect([...h.get('n2')!]).toEqual(['n2']);
    expect([...h.get('n1')!].sort()).toEqual(['n1', 'n3']);
  });

  it('resolves roles and falls back (and says so) with no leader', () => {
    expect(resolveRef('@follower:1', { nodes: nodes(3), leader: 'n1' })).toEqual({ node: 'n3', fallback: false });
    expect(resolveRef('@leader', { nodes: nodes(3), leader: null })).toEqual({ node: 'n1', fallback: true });
    expect(resolveRef('@follower:0', { nodes: nodes(3), leader: null })).toEqual({ node: 'n2', fallback: true });
    expect(() => resolveRef('@boss', { nodes: nodes(3), leader: null })).toThrow(NemesisSpecError);
  });
});

describe('schedule generation', () => {
  const base = { nodes: nodes(5), durationMs: 60_000, nemeses: [...NEMESES] as NemesisName[] };

  it('is a pure function of the seed', () => {
    expect(generateSchedule({ ...base, seed: 9 })).toEqual(generateSchedule({ ...base, seed: 9 }));
    expect(generateSchedule({ ...base, seed: 9 })).not.toEqual(generateSchedule({ ...base, seed: 10 }));
  });

  it('has ordered, non-overlapping events inside the quiet margins, each with a heal', () => {
    for (let seed = 0; seed < 50; seed++) {
      const s = generateSchedule({ ...base, seed, combineChance: 0.3 });
      expect(s.events.length).toBeGreaterThan(3);
      let prevHeal = 2000;
      for (const e of s.events) {
        expect(e.startMs).toBeGreaterThanOrEqual(prevHeal);
        expect(e.healMs).toBeGreaterThan(e.startMs);
        expect(e.healMs).toBeLessThanOrEqual(60_000 - 3000);
        expect(e.faults.length).toBeGreaterThan(0);
        prevHeal = e.healMs;
      }
      // It survives a JSON round trip: the orchestrator saves it next to the history.
      expect(JSON.parse(JSON.stringify(s))).toEqual(s);
    }
  });

  it('produces every nemesis with the right shape', () => {
    for (const nemesis of NEMESES) {
      const s = generateSchedule({ ...base, seed: 1, nemeses: [nemesis] });
      const kinds = s.events[0]!.faults.map((f) => f.kind);
      const expected: Record<string, string[]> = {
        'kill-majority': ['kill'], 'correlated-pause-leader-slow-disk': ['pause', 'slow-disk'],
        'correlated-heal-under-load': ['blackhole-until-compaction', 'load-surge'], 'snapshot-blackhole': ['blackhole-until-compaction'],
      };
      if (expected[nemesis] !== undefined) expect(kinds, nemesis).toEqual(expected[nemesis]);
      expect(s.events.every((e) => e.correlated === nemesis.startsWith('correlated-')), nemesis).toBe(true);
    }
    const kill = (n: NemesisName) => generateSchedule({ ...base, seed: 3, nemeses: [n] }).events[0]!.faults[0]!;
    expect(kill('kill-majority')).toMatchObject({ kind: 'kill' });
    expect((kill('kill-majority') as { targets: string[] }).targets).toHaveLength(3);
    expect((kill('kill-all') as { targets: string[] }).targets).toHaveLength(5);
    expect((kill('correlated-kill-two') as { targets: string[] }).targets).toHaveLength(2);
    const oneWay = kill('partition-one-way') as { cuts: unknown[] };
    expect(oneWay.cuts).toHaveLength(1);
  });

  it('rejects bad options and names', () => {
    expect(() => generateSchedule({ ...base, seed: 1, nodes: ['n1', 'n2'] })).toThrow(/at least 3 nodes/);
    expect(() => expandNemeses('partition,bogus')).toThrow(/unknown nemesis "bogus"/);
    expect(expandNemeses('kill,pause-leader')).toEqual(['kill-one', 'kill-leader', 'kill-majority', 'kill-all', 'pause-leader']);
    expect(generateSchedule({ ...base, seed: 1, nemeses: expandNemeses('none') }).events).toEqual([]);
  });
});
