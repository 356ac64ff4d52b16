// The identity guard (identity-guard.ts): the incarnation rule for each hello and each message
// (membership record, then pin, then first-contact pin; another incarnation's leader traffic only), cluster id adoption from trusted peers only, the founding
// promise, pins following applied membership changes, and the leader recording incarnations.
import { describe, expect, it } from 'vitest';
import { ConfChangeType, MessageType, type ConfChange, type Message } from '@quorumkv/raft';
import type { Member, Membership } from '@quorumkv/storage';
import { IdentityGuard, type IdentityHost } from '../src/identity-guard.js';
import { PeerPins, foundingPromised, readClusterId } from '../src/identity.js';
import { memoryIdentityFiles } from '../src/host-world.js';
import { createLogger } from '../src/logger.js';
import { ManualClock } from '../src/world.js';

const INC = (c: string) => c.repeat(32);
const CLUSTER = 'c'.repeat(32);
/** A message of `type` from n2 (the guard reads only its sender and type). */
const fromN2 = (type: MessageType): Message => ({ type, from: 'n2', to: 'n1', term: 3 }) as Message;
/** What a leader sends its followers. */
const LEADER_TYPES = [MessageType.App, MessageType.Heartbeat];
/** Votes, vote requests, acknowledgements and everything else a peer sends. */
const OTHER_TYPES = [
  MessageType.AppResp,
  MessageType.HeartbeatResp,
  MessageType.Vote,
  MessageType.VoteResp,
  MessageType.PreVote,
  MessageType.PreVoteResp,
  MessageType.TimeoutNow,
  MessageType.TransferLeader,
  MessageType.ReadIndex,
  MessageType.ReadIndexResp,
];

function setup(opts: { members?: Member[]; leader?: boolean; foundingPending?: boolean; clusterId?: string | null } = {}) {
  const identity = memoryIdentityFiles();
  const clock = new ManualClock(1_000);
  let members: Membership = { voters: opts.members ?? [], learners: [] };
  const proposed: ConfChange[] = [];
  const closed: string[] = [];
  const host: IdentityHost = {
    id: 'n1',
    incarnation: INC('1'),
    peers: [
      { id: 'n1', address: 'h1:1' },
      { id: 'n2', address: 'h2:1' },
    ],
    log: createLogger('n1', 'silent'),
    clock,
    identity,
    members: () => members,
    memberById: (id) => members.voters.find((m) => m.id === id) ?? members.learners.find((m) => m.id === id),
    appliedIndex: () => 7,
    isLeader: () => opts.leader ?? false,
    foundingPending: () => opts.foundingPending ?? false,
    founded: () => members.voters.length > 0,
    proposeConfChange: (cc) => {
      proposed.push(cc);
      return { index: 10 + proposed.length, term: 2 };
    },
    schedule: () => undefined,
    closeInbound: (peer) => void closed.push(peer),
  };
  const guard = new IdentityGuard(host, PeerPins.open(identity), opts.clusterId ?? null);
  return { guard, identity, clock, proposed, closed, setMembers: (m: Membership) => (members = m) };
}

describe('IdentityGuard', () => {
  it('pins a peer at first contact; from another incarnation of it, takes only leader traffic', () => {
    const { guard } = setup();
    expect(guard.checkHello('n2', INC('2'), CLUSTER)).toBeNull();
    expect(guard.pins.get('n2')).toBe(INC('2'));
    for (const t of [...LEADER_TYPES, ...OTHER_TYPES]) expect(guard.admits(fromN2(t), INC('2')), `type ${t}`).toBe(true);
    // Another incarnation's connection is let in (it may be a leader this node must hear from)...
    expect(guard.checkHello('n2', INC('3'), CLUSTER)).toBeNull();
    // ...but none of its votes or acknowledgements counts, and the pin stays.
    for (const t of LEADER_TYPES) expect(guard.admits(fromN2(t), INC('3')), `type ${t}`).toBe(true);
    for (const t of OTHER_TYPES) expect(guard.admits(fromN2(t), INC('3')), `type ${t}`).toBe(false);
    expect(guard.droppedFromOtherIncarnation).toBe(OTHER_TYPES.length);
    expect(guard.pins.get('n2')).toBe(INC('2'));
  });

  it('lets the incarnation recorded in the membership win over a pin, per message', () => {
    const { guard, setMembers } = setup({ members: [{ id: 'n2', address: 'h2:1', incarnation: INC('4') }] });
    guard.pins.pin('n2', INC('2'), 1);
    expect(guard.admits(fromN2(MessageType.VoteResp), INC('4'))).toBe(true);
    expect(guard.admits(fromN2(MessageType.VoteResp), INC('2'))).toBe(false);
    expect(guard.admits(fromN2(MessageType.App), INC('2'))).toBe(true);
    // The membership records a replacement (this node applied it, catching up on its appends):
    // the same connection's votes count from now on, the old incarnation's no longer.
    setMembers({ voters: [{ id: 'n2', address: 'h2:1', incarnation: INC('5') }], learners: [] });
    expect(guard.admits(fromN2(MessageType.VoteResp), INC('5'))).toBe(true);
    expect(guard.admits(fromN2(MessageType.AppResp), INC('4'))).toBe(false);
  });

  it('adopts the cluster id from a --peers peer while there is no membership, once, and writes it', () => {
    const { guard, identity } = setup();
    guard.checkHello('n9', INC('9'), 'd'.repeat(32)); // not in --peers, no membership: not trusted
    expect(guard.clusterId).toBeNull();
    guard.checkHello('n2', INC('2'), CLUSTER);
    expect(guard.clusterId).toBe(CLUSTER);
    expect(readClusterId(identity)).toBe(CLUSTER);
    guard.checkHello('n2', INC('2'), 'e'.repeat(32)); // never overwritten
    expect(guard.clusterId).toBe(CLUSTER);
  });

  it('does not adopt a cluster id from the hello of another incarnation', () => {
    const { guard } = setup({ members: [{ id: 'n2', address: 'h2:1', incarnation: INC('4') }] });
    expect(guard.checkHello('n2', INC('5'), CLUSTER)).toBeNull();
    expect(guard.clusterId).toBeNull();
  });

  it('answers a founding probe "no" while founding is pending, and remembers the promise durably', () => {
    const { guard, identity } = setup({ foundingPending: true });
    expect(guard.promisedToFound()).toBe(false);
    expect(guard.foundingAnswer('n2')).toMatchObject({ founded: 'no', member: false, self: INC('1') });
    expect(guard.promisedToFound()).toBe(true);
    expect(foundingPromised(identity)).toBe(true);
  });

  it('answers "waiting" for an empty node that is not founding, "yes" once it has a membership', () => {
    const s = setup();
    expect(s.guard.foundingAnswer('n2').founded).toBe('waiting');
    s.setMembers({ voters: [{ id: 'n1', address: 'h1:1' }], learners: [] });
    expect(s.guard.foundingAnswer('n2').founded).toBe('yes');
  });

  it('keeps pins in step with applied membership changes', () => {
    const s = setup();
    s.guard.pins.pin('n2', INC('2'), 1);
    s.setMembers({ voters: [{ id: 'n2', address: 'h2:1', incarnation: INC('6') }], learners: [] });
    s.guard.onMembershipChange({ type: ConfChangeType.AddNode, nodeId: 'n2' }, 20);
    expect(s.guard.pins.get('n2')).toBe(INC('6'));
    expect(s.closed).toEqual(['n2']); // the other incarnation's connection goes
    s.guard.onMembershipChange({ type: ConfChangeType.RemoveNode, nodeId: 'n2' }, 21);
    expect(s.guard.pins.get('n2')).toBeUndefined();
  });

  it('as leader, proposes recording one missing incarnation at a time, at most every 100 ms', () => {
    const s = setup({ leader: true, members: [{ id: 'n1', address: 'h1:1' }, { id: 'n2', address: 'h2:1' }] });
    s.guard.pins.pin('n2', INC('2'), 1);
    s.guard.recordIncarnations(s.clock.nowMs());
    expect(s.proposed.map((c) => [c.nodeId, JSON.parse(c.context!).incarnation])).toEqual([['n1', INC('1')]]);
    s.guard.recordIncarnations(s.clock.nowMs() + 50);
    expect(s.proposed).toHaveLength(1);
    s.guard.recordIncarnations(s.clock.nowMs() + 100);
    expect(s.proposed).toHaveLength(2);
  });
});
