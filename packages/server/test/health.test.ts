// The verdict of `quorumkv health` (src/health-cli.ts) from the members' answers, and the
// failure-domain warnings (src/membership.ts) for the layouts docs/server.md shows.
import { describe, expect, it } from 'vitest';
import { assessHealth, type Probe, type StatusAnswer } from '../src/health-cli.js';
import { ConfChangeType } from '@quorumkv/raft';
import { failureDomainWarnings, parseMemberContext, zoneRecordChange } from '../src/membership.js';

const LIMITS = { maxLagEntries: 100, maxFsyncSeconds: 0.5 };
const MEMBERS = ['n1', 'n2', 'n3'].map((id) => ({ id, address: `${id}:7001`, voter: true, zone: null }));

function answer(id: string, over: Partial<StatusAnswer> = {}): Probe {
  const status: StatusAnswer = {
    id, role: id === 'n1' ? 'leader' : 'follower', term: 4, leader: 'n1', commitIndex: 500, appliedIndex: 500, zone: null, members: MEMBERS,
    storageShortfall: null, fsync: { samples: 10, p99Seconds: 0.002, maxSeconds: 0.003 }, warnings: [], ...over,
  };
  return { id, address: `${id}:7001`, status };
}

describe('assessHealth', () => {
  it('is healthy when every member answers, agrees on a leader that answers as leader, and keeps up', () => {
    const h = assessHealth([answer('n1'), answer('n2'), answer('n3', { appliedIndex: 450 })], LIMITS);
    expect({ healthy: h.healthy, leader: h.leader, term: h.term, problems: h.problems }).toEqual({ healthy: true, leader: 'n1', term: 4, problems: [] });
    expect(h.members.map((m) => m.lagEntries)).toEqual([0, 0, 50]);
  });

  it('names an unreachable member', () => {
    const h = assessHealth([answer('n1'), answer('n2'), { id: 'n3', address: 'n3:7001', error: 'ECONNREFUSED' }], LIMITS);
    expect(h.healthy).toBe(false);
    expect(h.problems).toEqual(['n3: unreachable (ECONNREFUSED)']);
  });

  it('fails without a leader, and when members disagree on it', () => {
    const none = assessHealth(['n1', 'n2', 'n3'].map((id) => answer(id, { leader: null, role: 'follower' })), LIMITS);
    expect(none.problems).toEqual(['the cluster has no leader']);
    const split = assessHealth([answer('n1'), answer('n2'), answer('n3', { leader: 'n3', role: 'leader', term: 5 })], LIMITS);
    expect(split.healthy).toBe(false);
    expect(split.problems).toEqual(['members disagree on the leader: n1 says n1, n2 says n1, n3 says n3']);
  });

  it('fails on a storage shortfall (said once when it also suspends voting), a suspended vote, lag and slow fsync, each named', () => {
    const h = assessHealth(
      [
        answer('n1', { fsync: { samples: 9, p99Seconds: 0.8, maxSeconds: 0.9 } }),
        answer('n2', { storageShortfall: { reason: 'log ends at 10, acknowledged 12' }, votingSuspended: 'storage', votingSuspendedReason: 'log ends at 10, acknowledged 12' }),
        answer('n3', { appliedIndex: 100 }),
        answer('n4', { votingSuspended: 'identity', votingSuspendedReason: 'not a voter under this incarnation' }),
      ],
      LIMITS,
    );
    expect(h.problems).toEqual([
      'n1: fsync p99 800.0ms (limit 500.0ms)',
      'n2: storage shortfall: log ends at 10, acknowledged 12',
      'n3: 400 entries behind (limit 100)',
      'n4: voting suspended (identity: not a voter under this incarnation)',
    ]);
  });

  it('warns (without failing) when the zones the members report put a quorum in one zone', () => {
    const h = assessHealth([answer('n1', { zone: 'a' }), answer('n2', { zone: 'a' }), answer('n3', { zone: 'b' })], LIMITS);
    expect(h.healthy).toBe(true);
    expect(h.warnings).toEqual(['zone "a" holds 2 of 3 voters, a quorum: losing that zone stops the cluster']);
  });
});

describe('failureDomainWarnings', () => {
  const layout = (zones: string[]) => ({ voters: zones.map((zone, i) => ({ id: `n${i + 1}`, address: `h${i}:7001`, zone })), learners: [] });
  it('is silent for five nodes over three zones (2/2/1) and warns when one zone holds three of five', () => {
    expect(failureDomainWarnings(layout(['a', 'a', 'b', 'b', 'c']), { id: 'n1', zone: 'a' })).toEqual([]);
    expect(failureDomainWarnings(layout(['a', 'a', 'a', 'b', 'c']), { id: 'n1', zone: 'a' })).toEqual([
      'zone "a" holds 3 of 5 voters, a quorum: losing that zone stops the cluster',
    ]);
  });
  it('uses this node\'s own --zone when the membership has none recorded for it', () => {
    const m = { voters: [{ id: 'n1', address: 'x' }, { id: 'n2', address: 'y', zone: 'a' }, { id: 'n3', address: 'z', zone: 'b' }], learners: [] };
    expect(failureDomainWarnings(m, { id: 'n1', zone: 'a' })).toHaveLength(1);
    expect(failureDomainWarnings(m, { id: 'n1', zone: 'c' })).toEqual([]);
  });
});

describe('zoneRecordChange', () => {
  it('re-adds the member as what it is, with its address and the zone, and nothing for a non-member', () => {
    const m = { voters: [{ id: 'n1', address: 'h1:7001', incarnation: 'ab'.repeat(16) }], learners: [{ id: 'n4', address: 'h4:7001' }] };
    const v = zoneRecordChange(m, 'n1', 'a')!;
    expect([v.type, v.nodeId, parseMemberContext(v.context!)]).toEqual([ConfChangeType.AddNode, 'n1', { address: 'h1:7001', zone: 'a' }]);
    expect(zoneRecordChange(m, 'n4', 'b')!.type).toBe(ConfChangeType.AddLearner);
    expect(zoneRecordChange(m, 'n9', 'c')).toBeUndefined();
  });
});
