import { describe, expect, it } from 'vitest';
import type { Fault, NemesisName } from '../src/nemesis.js';
import {
  HOSTILE_FRAME_KINDS,
  HOSTILE_FRAMES_PER_EVENT_MAX,
  HOSTILE_INTERVAL_MS_MIN,
  HOSTILE_OVERSIZED_PER_EVENT_MAX,
  NEMESES,
  NemesisSpecError,
  cutsOf,
  expandNemeses,
  generateSchedule,
  halvesCuts,
  hearing,
  majoritiesRingCuts,
  resolveRef,
} from '../src/nemesis.js';
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

describe('wipe and hostile-peer schedules', () => {
  const base = { nodes: nodes(3), durationMs: 60_000 };
  const only = (n: NemesisName, seed: number) => generateSchedule({ ...base, seed, nemeses: [n] });

  it('leaves the schedules of the earlier nemeses as they were (same seed, same schedule)', () => {
    // Generated by main's code before wipe/hostile-peer existed: a saved seed still replays.
    const earlier = NEMESES.filter((n) => !['wipe-one', 'correlated-wipe-kill', 'hostile-peer'].includes(n) && !n.startsWith('power-loss-') && n !== 'corrupt-one' && n !== 'disk-full');
    const s = generateSchedule({ seed: 42, nodes: nodes(3), durationMs: 40_000, nemeses: earlier });
    expect(s.events.map((e) => [e.nemesis, e.startMs, e.healMs, JSON.stringify(e.faults)].join(' '))).toEqual([
      'pause-leader 2000 5793 [{"kind":"pause","target":"@leader"}]',
      'slow-node 11351 14050 [{"kind":"slow-node","target":"n2","shaping":{"delayMs":145,"jitterMs":100,"bytesPerSecond":null}}]',
      'correlated-pause-leader-slow-disk 18924 22813 [{"kind":"pause","target":"@leader"},{"kind":"slow-disk","target":"@follower:0","fsyncDelayMs":87}]',
      'slow-disk 28460 31688 [{"kind":"slow-disk","target":"@leader","fsyncDelayMs":110}]',
    ]);
  });

  it('power loss hits one node, a majority or all of them at once, each node once', () => {
    const sizes = { 'power-loss-one': 1, 'power-loss-majority': 2, 'power-loss-all': 3 } as const;
    for (const [name, size] of Object.entries(sizes) as Array<[NemesisName, number]>) {
      for (let seed = 0; seed < 10; seed++) {
        for (const e of only(name, seed).events) {
          expect(e.faults).toHaveLength(1);
          const f = e.faults[0] as { kind: string; targets: string[]; torn: boolean };
          expect(f.kind).toBe('power-loss');
          expect(new Set(f.targets).size).toBe(size);
          expect(f.targets.length).toBe(size);
        }
      }
    }
    expect(expandNemeses('power-loss')).toEqual(['power-loss-one', 'power-loss-majority', 'power-loss-all']);
  });

  it('corrupt-one damages one node (a minority), named by role, with a seed of its own', () => {
    const seeds = new Set<number>();
    for (let seed = 0; seed < 10; seed++) {
      for (const e of only('corrupt-one', seed).events) {
        expect(e.faults).toHaveLength(1);
        const f = e.faults[0] as { kind: string; target: string; seed: number };
        expect(f.kind).toBe('corrupt');
        expect(['@leader', '@follower:0']).toContain(f.target);
        seeds.add(f.seed);
      }
    }
    expect(seeds.size).toBeGreaterThan(5);
  });

  it('disk-full fails the writes of one node, named by role, with ENOSPC mostly and EIO sometimes', () => {
    const errnos = new Set<string>();
    for (let seed = 0; seed < 20; seed++) {
      for (const e of only('disk-full', seed).events) {
        expect(e.faults).toHaveLength(1);
        const f = e.faults[0] as { kind: string; target: string; errno: string };
        expect(f.kind).toBe('disk-full');
        expect(['@leader', '@follower:0']).toContain(f.target);
        errnos.add(f.errno);
      }
    }
    expect([...errnos].sort()).toEqual(['eio', 'enospc']);
  });

  it('wipe-one wipes one voter, named by role, alone', () => {
    for (let seed = 0; seed < 20; seed++) {
      for (const e of only('wipe-one', seed).events) {
        expect(e.faults).toHaveLength(1);
        expect(e.faults[0]).toMatchObject({ kind: 'wipe' });
        expect(['@leader', '@follower:0']).toContain((e.faults[0] as { target: string }).target);
        expect(e.correlated).toBe(false);
      }
    }
  });

  it('correlated-wipe-kill: a node down, then at its heal one of the other two wiped and the third crashed', () => {
    for (let seed = 0; seed < 30; seed++) {
      const events = only('correlated-wipe-kill', seed).events;
      expect(events.length).toBeGreaterThanOrEqual(2);
      const [down, wipeKill] = events as [(typeof events)[0], (typeof events)[0]];
      expect(wipeKill.startMs).toBe(down.healMs); // no healthy gap: the stale node is just back
      expect(down.faults).toEqual([{ kind: 'kill', targets: [expect.any(String)] }]);
      const stale = (down.faults[0] as Extract<Fault, { kind: 'kill' }>).targets[0]!;
      const [wipe, kill] = wipeKill.faults as [Extract<Fault, { kind: 'wipe' }>, Extract<Fault, { kind: 'kill' }>];
      expect(wipe.kind).toBe('wipe');
      expect(kill.kind).toBe('kill');
      // Three different nodes: only the stale one and the empty one are left.
      expect(new Set([stale, wipe.target, ...kill.targets]).size).toBe(3);
      expect(events.every((e) => e.correlated)).toBe(true);
    }
  });

  it('hostile-peer plans every frame kind, bounded in count, oversized frames and rate, aimed where each does harm', () => {
    for (let seed = 0; seed < 30; seed++) {
      for (const e of only('hostile-peer', seed).events) {
        const f = e.faults[0] as Extract<Fault, { kind: 'hostile-peer' }>;
        expect(f.kind).toBe('hostile-peer');
        expect(f.frames.length).toBeGreaterThanOrEqual(HOSTILE_FRAME_KINDS.length);
        expect(f.frames.length).toBeLessThanOrEqual(HOSTILE_FRAMES_PER_EVENT_MAX);
        expect(new Set(f.frames.map((x) => x.kind))).toEqual(new Set(HOSTILE_FRAME_KINDS));
        expect(f.frames.filter((x) => x.kind === 'oversized').length).toBeLessThanOrEqual(HOSTILE_OVERSIZED_PER_EVENT_MAX);
        expect(f.intervalMs).toBeGreaterThanOrEqual(HOSTILE_INTERVAL_MS_MIN);
        for (const x of f.frames) {
          if (x.kind === 'append-resp-beyond-last') expect(x.target).toBe('@leader');
          else if (x.kind === 'timeout-now') expect(x.target).toMatch(/^@follower:[01]$/);
          else expect(base.nodes).toContain(x.target);
        }
      }
    }
  });

  it('is seeded and survives the JSON round trip into schedule.json', () => {
    for (const n of ['wipe-one', 'correlated-wipe-kill', 'hostile-peer'] as const) {
      const s = only(n, 5);
      expect(s).toEqual(only(n, 5));
      expect(s).not.toEqual(only(n, 6));
      expect(JSON.parse(JSON.stringify(s))).toEqual(s);
    }
  });

  it('is in the groups: wipe, correlated (the correlated variant) and all', () => {
    expect(expandNemeses('wipe')).toEqual(['wipe-one', 'correlated-wipe-kill']);
    expect(expandNemeses('correlated')).toContain('correlated-wipe-kill');
    expect(expandNemeses('all')).toEqual(expect.arrayContaining(['wipe-one', 'correlated-wipe-kill', 'hostile-peer']));
  });
});
