import { describe, expect, it } from 'vitest';
import type { ClusterControl, RunClock } from '../src/nemesis-exec.js';
import { executeSchedule } from '../src/nemesis-exec.js';
import type { NemesisSchedule } from '../src/nemesis.js';
import { directionsForCut } from '../src/links.js';
import type { LabelledFault } from '../src/report.js';

/** A fake cluster that records what the nemesis did, as a transcript. */
function fakeCluster(leader: string, compactedAfterMs = Infinity, clock?: { now: number }): ClusterControl & { log: string[] } {
  const log: string[] = [];
  const nodes = ['n1', 'n2', 'n3'];
  return {
    log,
    nodes,
    view: async () => ({ nodes, leader }),
    cut: (cuts, mode) => log.push(`cut ${mode} ${cuts.map(([f, t]) => `${f}>${t}`).join(' ')}`),
    shapePair: (a, b, s) => log.push(`shape ${a}-${b} ${s.delayMs}ms`),
    healNetwork: () => log.push('heal network'),
    kill: async (n) => void log.push(`kill ${n}`),
    restart: async (n) => void log.push(`restart ${n}`),
    pause: (n) => log.push(`pause ${n}`),
    resume: (n) => log.push(`resume ${n}`),
    setFsyncDelayMs: async (n, ms) => void log.push(`fsync ${n} ${ms}ms`),
    failDiskWrites: async (n, errno) => void log.push(`disk ${n} fail ${errno}`),
    compactedPast: async () => (clock?.now ?? 0) >= compactedAfterMs,
    setRateMultiplier: (x) => log.push(`rate x${x}`),
    wipe: async (n) => void log.push(`wipe ${n}`),
    powerLoss: async (ns, torn) => void log.push(`power loss ${ns.join(',')}${torn ? ' torn' : ''}`),
    corrupt: async (n, seed) => {
      log.push(`corrupt ${n} ${seed}`);
      return 'bit 3 of byte 7 of CURRENT flipped';
    },
    repairCorrupted: async (n) => {
      log.push(`repair ${n}`);
      return `${n} kept running`;
    },
    replace: async (n) => {
      log.push(`replace ${n}`);
      return `${n} replaced`;
    },
    hostilePeer: (id, f) => {
      log.push(`hostile peer ${id}: ${f.frames.length} frames`);
      return {
        stop: async () => {
          log.push(`hostile peer ${id} stopped`);
          return [{ event: id, wallMs: 0, kind: 'garbage', target: 'n1', claimFrom: 'n2', what: 'random bytes', outcome: { result: 'closed', code: 4400 } }];
        },
      };
    },
  };
}

function fakeClock(): RunClock & { now: number } {
  const c = {
    now: 0,
    nowMs: () => c.now,
    nowNs: () => c.now * 1e6,
    sleepUntilMs: async (ms: number) => {
      c.now = Math.max(c.now, ms);
    },
  };
  return c;
}

const schedule = (events: NemesisSchedule['events']): NemesisSchedule => ({ seed: 1, nodes: ['n1', 'n2', 'n3'], durationMs: 20_000, events });

describe('nemesis executor', () => {
  it('resolves @leader at the event start, applies and heals, and records windows', async () => {
    const cluster = fakeCluster('n2');
    const clock = fakeClock();
    const seen: LabelledFault[] = [];
    const windows = await executeSchedule(
      schedule([
        { id: 'e1', nemesis: 'partition-leader', startMs: 1000, healMs: 3000, correlated: false, faults: [{ kind: 'isolate', target: '@leader', mode: 'silent' }] },
        { id: 'e2', nemesis: 'correlated-pause-leader-slow-disk', startMs: 4000, healMs: 6000, correlated: true, faults: [{ kind: 'pause', target: '@leader' }, { kind: 'slow-disk', target: '@follower:0', fsyncDelayMs: 80 }] },
        { id: 'e3', nemesis: 'kill-majority', startMs: 7000, healMs: 8000, correlated: false, faults: [{ kind: 'kill', targets: ['n1', 'n3'] }] },
      ]),
      cluster,
      clock,
      (w) => seen.push(w),
    );
    expect(cluster.log).toEqual([
      'cut silent n2>n1 n1>n2 n2>n3 n3>n2',
      'heal network',
      'pause n2',
      'fsync n1 80ms',
      'fsync n1 0ms', // undone in reverse order
      'resume n2',
      'kill n1',
      'kill n3',
      'restart n1',
      'restart n3',
    ]);
    expect(windows.map((w) => [w.label, w.startNs / 1e6, w.endNs! / 1e6])).toEqual([
      ['e1 isolate (silent) n2', 1000, 3000],
      ['e2 pause n2 + slow disk n1 +80ms/fsync', 4000, 6000],
      ['e3 kill -9 n1,n3', 7000, 8000],
    ]);
    expect(seen.filter((w) => w.endNs === null)).toHaveLength(3);
  });

  it('heals a blackhole as soon as the leader has compacted past the target', async () => {
    const clock = fakeClock();
    const cluster = fakeCluster('n1', 2600, clock);
    const [w] = await executeSchedule(
      schedule([{ id: 'e1', nemesis: 'snapshot-blackhole', startMs: 1000, healMs: 9000, correlated: false, faults: [{ kind: 'blackhole-until-compaction', target: '@follower:0' }] }]),
      cluster,
      clock,
    );
    expect(cluster.log[0]).toBe('cut silent n2>n1 n1>n2 n2>n3 n3>n2');
    expect(w!.endNs! / 1e6).toBeGreaterThanOrEqual(2600);
    expect(w!.endNs! / 1e6).toBeLessThan(3000);
  });
});

describe('nemesis executor: wipe and hostile peer', () => {
  it('wipes at the start; at the heal restarts the crashed node first, then replaces the wiped one, and says how it went', async () => {
    const cluster = fakeCluster('n3');
    const windows = await executeSchedule(
      schedule([
        { id: 'e1', nemesis: 'correlated-wipe-kill', startMs: 1000, healMs: 3000, correlated: true, faults: [{ kind: 'kill', targets: ['n1'] }] },
        { id: 'e2', nemesis: 'correlated-wipe-kill', startMs: 3000, healMs: 6000, correlated: true, faults: [{ kind: 'wipe', target: 'n2' }, { kind: 'kill', targets: ['@leader'] }] },
      ]),
      cluster,
      fakeClock(),
    );
    // The replacement needs a quorum: the crashed node must be back before the wiped one is removed.
    expect(cluster.log).toEqual(['kill n1', 'restart n1', 'wipe n2', 'kill n3', 'restart n3', 'replace n2']);
    expect(windows[1]!.label).toBe('e2 wipe n2 (data directory removed, restarted with its usual command line) + kill -9 n3 | heal: n2 replaced');
  });

  it('cuts the power of its targets at the start and restarts them together at the heal', async () => {
    const cluster = fakeCluster('n1');
    const [w] = await executeSchedule(schedule([{ id: 'e1', nemesis: 'power-loss-majority', startMs: 10, healMs: 20, correlated: false, faults: [{ kind: 'power-loss', targets: ['@leader', 'n2'], torn: true }] }]), cluster, fakeClock());
    expect(cluster.log).toEqual(['power loss n1,n2 torn', 'restart n1', 'restart n2']);
    expect(w!.label).toBe('e1 power loss n1,n2 (last write torn): unsynced writes discarded');
  });

  it('fails every write of its target\'s disk from the start and lets writes work again at the heal', async () => {
    const cluster = fakeCluster('n3');
    const [w] = await executeSchedule(schedule([{ id: 'e1', nemesis: 'disk-full', startMs: 10, healMs: 20, correlated: false, faults: [{ kind: 'disk-full', target: '@leader', errno: 'enospc' }] }]), cluster, fakeClock());
    expect(cluster.log).toEqual(['disk n3 fail enospc', 'disk n3 fail none']);
    expect(w!.label).toBe('e1 disk of n3 fails every write with ENOSPC');
  });

  it('corrupts its target at the start and has it repaired (or replaced) at the heal', async () => {
    const cluster = fakeCluster('n2');
    const [w] = await executeSchedule(schedule([{ id: 'e1', nemesis: 'corrupt-one', startMs: 10, healMs: 20, correlated: false, faults: [{ kind: 'corrupt', target: '@leader', seed: 9 }] }]), cluster, fakeClock());
    expect(cluster.log).toEqual(['corrupt n2 9', 'repair n2']);
    expect(w!.label).toBe('e1 corrupt n2: bit 3 of byte 7 of CURRENT flipped, restarted | heal: n2 kept running');
  });

  it('runs the hostile peer for the event and names what the nodes did with its frames at the heal', async () => {
    const cluster = fakeCluster('n1');
    const frames = [{ kind: 'garbage' as const, target: 'n2' }];
    const [w] = await executeSchedule(schedule([{ id: 'e1', nemesis: 'hostile-peer', startMs: 10, healMs: 20, correlated: false, faults: [{ kind: 'hostile-peer', frames, intervalMs: 100, seed: 3 }] }]), cluster, fakeClock());
    expect(cluster.log).toEqual(['hostile peer e1: 1 frames', 'hostile peer e1 stopped']);
    expect(w!.label).toBe('e1 hostile peer: 1 frames planned, one per 100 ms | heal: 1 hostile frames: 1 closed');
  });
});

describe('link directions', () => {
  it('a one-way cut y>x blocks y→x bytes on both links between them', () => {
    expect(directionsForCut(['n2', 'n1'])).toEqual([
      { link: 'n1->n2', direction: 'down' },
      { link: 'n2->n1', direction: 'up' },
    ]);
  });
});

describe('nemesis executor: unsupported faults', () => {
  it('names a fault the cluster cannot apply and goes on', async () => {
    const cluster = fakeCluster('n1');
    cluster.setFsyncDelayMs = async () => {
      throw Object.assign(new Error('no runtime switch'), { code: 'JL_FAULT_UNSUPPORTED' });
    };
    const windows = await executeSchedule(
      schedule([{ id: 'e1', nemesis: 'slow-disk', startMs: 10, healMs: 20, correlated: false, faults: [{ kind: 'slow-disk', target: 'n2', fsyncDelayMs: 50 }, { kind: 'pause', target: 'n3' }] }]),
      cluster,
      fakeClock(),
    );
    expect(windows[0]!.label).toBe('e1 slow-disk NOT APPLIED (no runtime switch) + pause n3');
    expect(cluster.log).toEqual(['pause n3', 'resume n3']);
  });

  it('awaits an asynchronous cluster (Docker), appends its note on cuts, and names an unsupported partition by shape', async () => {
    const cluster = fakeCluster('n1');
    cluster.cut = async (cuts, mode) => {
      if (cuts.length === 1) throw Object.assign(new Error('whole nodes only'), { code: 'JL_FAULT_UNSUPPORTED' });
      await Promise.resolve();
      cluster.log.push(`cut ${mode} ${cuts.length}`);
      return 'docker network disconnect n2';
    };
    cluster.pause = async (n) => {
      await Promise.resolve();
      cluster.log.push(`pause ${n}`);
    };
    const windows = await executeSchedule(
      schedule([
        { id: 'e1', nemesis: 'partition-one-way', startMs: 10, healMs: 20, correlated: false, faults: [{ kind: 'partition', shape: 'one-way', cuts: [['n1', 'n2']], mode: 'silent' }] },
        { id: 'e2', nemesis: 'partition-one', startMs: 30, healMs: 40, correlated: false, faults: [{ kind: 'isolate', target: 'n2', mode: 'silent' }, { kind: 'pause', target: 'n3' }] },
      ]),
      cluster,
      fakeClock(),
    );
    expect(windows.map((w) => w.label)).toEqual(['e1 one-way partition NOT APPLIED (whole nodes only)', 'e2 isolate (silent) n2 [docker network disconnect n2] + pause n3']);
    expect(cluster.log).toEqual(['cut silent 4', 'pause n3', 'resume n3', 'heal network']);
  });
});
