// Who may vote (docs/server.md, "Who may vote"): the decision as a pure function, and the ORIGIN
// file it rests on. A node replaying the log from index 1 passes through memberships that name
// its id as a voter — after the first founding entry as the only one — and must not elect itself.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Member, Membership } from '@quorumkv/storage';
import { fsIdentityFiles } from '../src/durable-file.js';
import { IdentityFileError, openOrigin, recordOrigin } from '../src/identity.js';
import { ConfChangeType } from '@quorumkv/raft';
import { memberContext, unrecordedVoterChange, votingSuspension, type VotingFacts } from '../src/membership.js';

const MINE = 'a'.repeat(32);
const OLD = 'b'.repeat(32);
const SHORT = 'the log ends at index 3 but this node acknowledged entries up to 9';

const m = (id: string, incarnation?: string): Member => ({ id, address: `127.0.0.1:700${id.slice(1)}`, ...(incarnation ? { incarnation } : {}) });
const facts = (members: Membership, over: Partial<VotingFacts> = {}): VotingFacts => ({
  selfId: 'n1',
  incarnation: MINE,
  members,
  foundedHere: false,
  foundingMember: false,
  foundingVoters: ['n1', 'n2', 'n3'],
  storageShortfall: null,
  ...over,
});
const three = (n1: Member): Membership => ({ voters: [n1, m('n2', 'c'.repeat(32)), m('n3', 'd'.repeat(32))], learners: [] });

describe('votingSuspension: who may campaign and vote', () => {
  const cases: [string, VotingFacts, 'identity' | 'storage' | null, RegExp?][] = [
    ['a founder, no incarnation recorded yet', facts(three(m('n1')), { foundedHere: true }), null],
    ['a founder replaying its first founding entry', facts({ voters: [m('n1')], learners: [] }, { foundedHere: true }), null],
    ['a joiner replaying the first founding entry (itself alone)', facts({ voters: [m('n1')], learners: [] }), 'identity', /no incarnation recorded.*did not found/],
    ['a joiner replaying the whole founding membership', facts(three(m('n1'))), 'identity', /did not found the cluster/],
    ['a founding member replicated into, first founding entry (itself alone)', facts({ voters: [m('n1')], learners: [] }, { foundingMember: true }), 'identity', /did not found/],
    ['a founding member replicated into, two of three founding entries', facts({ voters: [m('n1'), m('n2')], learners: [] }, { foundingMember: true }), 'identity', /did not found/],
    ['a founding member replicated into, the whole founding membership, no record yet', facts(three(m('n1')), { foundingMember: true }), null],
    ['a founding member replicated into, another incarnation recorded', facts(three(m('n1', OLD)), { foundingMember: true }), 'identity', /records n1 as incarnation bbbbbbbb/],
    ['a record of another incarnation (the one it replaced)', facts(three(m('n1', OLD)), { foundedHere: true }), 'identity', /records n1 as incarnation bbbbbbbb, this data directory is aaaaaaaa/],
    ['its own incarnation recorded (joiner)', facts(three(m('n1', MINE))), null],
    ['its own incarnation recorded (founder)', facts(three(m('n1', MINE)), { foundedHere: true }), null],
    ['a learner, own incarnation recorded', facts({ voters: [m('n2'), m('n3')], learners: [m('n1', MINE)] }), 'identity', /n1 is a learner/],
    ['not a member (removed)', facts({ voters: [m('n2'), m('n3')], learners: [] }, { foundedHere: true }), 'identity', /does not name n1/],
    ['no membership yet (empty, waiting to be added)', facts({ voters: [], learners: [] }), 'identity', /no membership applied yet/],
    ['a storage shortfall, otherwise a voter', facts(three(m('n1', MINE)), { storageShortfall: SHORT }), 'storage', /acknowledged entries up to 9/],
    ['both: identity is named first', facts(three(m('n1', OLD)), { storageShortfall: SHORT }), 'identity', /incarnation bbbbbbbb/],
  ];
  it.each(cases)('%s', (_name, f, kind, reason) => {
    const got = votingSuspension(f);
    expect(got?.kind ?? null).toBe(kind);
    // Vote requests are refused only on a storage shortfall: a replaying voter must still answer them.
    expect(got?.refusesVotes ?? false).toBe(f.storageShortfall !== null);
    if (reason) expect(got?.reason).toMatch(reason);
  });

  it('stays suspended through every membership a replacement of n1 replays, until it is a voter under its own incarnation', () => {
    // The memberships n1's replacement applies, entry by entry, replaying the log from index 1:
    // founding (one AddNode per member), the recorded incarnations, the removal of the lost n1,
    // the add as learner, the record of the new incarnation, the promotion.
    const n2 = m('n2', 'c'.repeat(32));
    const n3 = m('n3', 'd'.repeat(32));
    const replay: [string, Membership][] = [
      ['1 AddNode n1', { voters: [m('n1')], learners: [] }],
      ['2 AddNode n2', { voters: [m('n1'), m('n2')], learners: [] }],
      ['3 AddNode n3', { voters: [m('n1'), m('n2'), m('n3')], learners: [] }],
      ['4 record n1', { voters: [m('n1', OLD), m('n2'), m('n3')], learners: [] }],
      ['6 record n3', { voters: [m('n1', OLD), n2, n3], learners: [] }],
      ['90 RemoveNode n1', { voters: [n2, n3], learners: [] }],
      ['91 AddLearner n1', { voters: [n2, n3], learners: [m('n1')] }],
      ['92 record n1', { voters: [n2, n3], learners: [m('n1', MINE)] }],
    ];
    for (const [entry, members] of replay) expect(votingSuspension(facts(members))?.kind, entry).toBe('identity');
    expect(votingSuspension(facts({ voters: [n2, n3, m('n1', MINE)], learners: [] }))).toBeNull(); // 93 promote n1
  });
});

describe('ORIGIN: whether this data directory founded the cluster', () => {
  const dir = () => mkdtempSync(path.join(tmpdir(), 'qkv-origin-'));

  it('is undecided while the directory is empty, and then what was recorded', () => {
    const d = dir();
    expect(openOrigin(fsIdentityFiles(d), true)).toBeNull();
    recordOrigin(fsIdentityFiles(d), true);
    expect(openOrigin(fsIdentityFiles(d), false)).toEqual({ foundedHere: true, foundingMember: false, legacy: false });
    recordOrigin(fsIdentityFiles(d), false); // a founder whose founding entries never reached the disk, joining on its next start
    expect(openOrigin(fsIdentityFiles(d), false)).toEqual({ foundedHere: false, foundingMember: false, legacy: false });
    recordOrigin(fsIdentityFiles(d), false, true); // a founding member whose founding handshake found the cluster founded
    expect(openOrigin(fsIdentityFiles(d), false)).toEqual({ foundedHere: false, foundingMember: true, legacy: false });
  });

  it('of a directory with state that predates the file counts as founded, durably', () => {
    const d = dir();
    expect(openOrigin(fsIdentityFiles(d), false)).toEqual({ foundedHere: true, foundingMember: false, legacy: true });
    expect(openOrigin(fsIdentityFiles(d), false)).toEqual({ foundedHere: true, foundingMember: false, legacy: true });
  });

  it('that is damaged is a clear error, never a guess', () => {
    const d = dir();
    writeFileSync(path.join(d, 'ORIGIN'), 'founded\ncrc32 00000000\n');
    expect(() => openOrigin(fsIdentityFiles(d), false)).toThrow(IdentityFileError);
  });
});

describe('unrecordedVoterChange: a voter is made only under a known incarnation', () => {
  const INC = 'a'.repeat(32);
  const learner = (incarnation?: string): Membership => ({
    voters: [{ id: 'n1', address: 'h1:1', incarnation: 'b'.repeat(32) }],
    learners: [{ id: 'n4', address: 'h4:1', ...(incarnation ? { incarnation } : {}) }],
  });

  it('refuses to promote a learner, or add a voter, whose incarnation is neither recorded nor carried', () => {
    expect(unrecordedVoterChange(learner(), { type: ConfChangeType.AddNode, nodeId: 'n4' })).toMatch(/n4's incarnation is not recorded yet/);
    expect(unrecordedVoterChange(learner(), { type: ConfChangeType.AddNode, nodeId: 'n9', context: memberContext('h9:1') })).toMatch(/n9's incarnation/);
  });

  it('allows it once recorded, or when the change itself carries the incarnation', () => {
    expect(unrecordedVoterChange(learner(INC), { type: ConfChangeType.AddNode, nodeId: 'n4' })).toBeNull();
    expect(unrecordedVoterChange(learner(), { type: ConfChangeType.AddNode, nodeId: 'n4', context: memberContext('h4:1', undefined, INC) })).toBeNull();
  });

  it('never refuses learners, removals, or a change of an existing voter (its zone, a legacy voter\'s record)', () => {
    expect(unrecordedVoterChange(learner(), { type: ConfChangeType.AddLearner, nodeId: 'n5', context: memberContext('h5:1') })).toBeNull();
    expect(unrecordedVoterChange(learner(), { type: ConfChangeType.RemoveNode, nodeId: 'n4' })).toBeNull();
    const legacy: Membership = { voters: [{ id: 'n1', address: 'h1:1' }], learners: [] };
    expect(unrecordedVoterChange(legacy, { type: ConfChangeType.AddNode, nodeId: 'n1', context: memberContext('h1:1', 'z1') })).toBeNull();
  });
});
