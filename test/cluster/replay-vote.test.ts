// Who may vote (docs/server.md, "Who may vote"): a replacement replaying the log from index 1
// never stands for election under an old membership.
//
// The cluster is founded by n1 alone and grows to three later, so the first append a replacement
// of n1 receives (the log from index 1, cut at the core's 1 MiB per append) ends while n1 was the
// only voter. Applied, that membership makes the replacement "a one-voter cluster" — under the
// incarnation it replaced. Its disk is slowed (1 s per synced write) so the test can stop the
// rest of the cluster while that append is being written: then no one talks to it. Without the
// guard it elected itself within an election timeout and acknowledged a write on a quorum of one
// (at log indexes the cluster had already committed otherwise); with it, it waits with voting
// suspended for identity, lifted only once it is promoted under its own incarnation.
//
// The second case is why a node suspended for identity still answers vote requests: a voter whose
// promotion was committed but not yet applied on it when the leader died is the survivor's quorum.
import { afterAll, describe, expect, it } from 'vitest';
import { ProcessCluster, httpRequest, jsonOf, sleep, waitFor, type NodeStatus } from '../harness/cluster.js';

const TICK_MS = 20;
const ELECTION_TICKS = 10;
/** Several election timeouts at TICK_MS × ELECTION_TICKS (randomized up to 2×). */
const SEVERAL_ELECTIONS_MS = 4 * TICK_MS * ELECTION_TICKS * 2;
/** Values written while n1 is the only voter: more than one append's worth (the core's 1 MiB). */
const SOLO_VALUES = 6;
const SOLO_VALUE_BYTES = 256 * 1024;
/** The replacement's slowed synced writes while it receives its first append. */
const SLOW_FSYNC_MS = 1000;

const clusters: ProcessCluster[] = [];
afterAll(async () => {
  for (const c of clusters) await c.teardown();
});

describe('a replacement replaying the log', () => {
  it('never elects itself on the one-voter membership it replays; voting is suspended for identity until it is promoted', async () => {
    const c = await ProcessCluster.start({
      name: 'qkv-replay-vote',
      tickMs: TICK_MS,
      electionTicks: ELECTION_TICKS,
      initialClusterState: 'existing', // everyone starts empty and waits
      extraArgs: ['--enable-fault-injection'],
    });
    clusters.push(c);
    await c.guard(async () => {
      const n1 = c.node('n1');
      const admin = async (id: string, method: string, urlPath: string, body?: unknown) =>
        httpRequest(c.node(id).port, method, urlPath, { ...(body ? { body: JSON.stringify(body) } : {}), timeoutMs: 20_000 });

      // n1 founds a one-member cluster and takes writes alone; then n2 and n3 join as voters.
      await c.stop('n1');
      await c.restart('n1', { initialClusterState: 'new', extraArgs: ['--enable-fault-injection', '--peers', `n1=${n1.address}`] });
      await c.waitForLeader({ among: ['n1'] });
      for (let i = 0; i < SOLO_VALUES; i++) expect((await c.put('n1', `solo/${i}`, Buffer.alloc(SOLO_VALUE_BYTES, i))).status).toBe(200);
      for (const id of ['n2', 'n3']) {
        const r = await admin('n1', 'POST', '/v1/admin/members', { id, address: c.node(id).address });
        expect(r.status, r.body.toString()).toBe(200);
      }
      expect((await c.put('n1', 'three', 'voters')).status).toBe(200);
      // n2 and n3 stand for election only once they have applied the record of their own
      // incarnation; killing n1 before that can leave no electable node (docs/server.md, "Who may vote").
      await waitFor('n2 and n3 to have applied their incarnation records', async () => {
        const sts = await Promise.all(['n2', 'n3'].map((id) => c.status(id)));
        return sts.every((s) => s !== null && s.votingSuspended === null) ? true : undefined;
      }, 10_000);

      // n1 loses its disk: removed, started empty (slow disk), added as a learner.
      await c.kill9('n1');
      const leader = (await c.waitForLeader({ among: ['n2', 'n3'] })).id;
      const other = leader === 'n2' ? 'n3' : 'n2';
      // A leader just elected answers 503 until its term's first entry commits: retry.
      await waitFor('n1 removed', async () => ((await admin(leader, 'DELETE', '/v1/admin/members/n1')).status === 200 ? true : undefined), 10_000);
      c.wipe('n1');
      await c.restart('n1', { extraArgs: ['--enable-fault-injection', '--fault-fsync-delay-ms', String(SLOW_FSYNC_MS)] });
      const fresh = (await c.status('n1'))!;
      expect(fresh.lastIndex).toBe(0);
      const termBefore = (await c.status(leader))!.term;
      expect((await admin(leader, 'POST', '/v1/admin/members', { id: 'n1', address: n1.address, learner: true })).status).toBe(200);

      // The first append from index 1 reached n1's core; its write takes SLOW_FSYNC_MS. Silence the cluster now.
      await waitFor('n1 to receive the first append', async () => ((await c.status('n1', 200))?.lastIndex ?? 0) > 0 || undefined, 10_000);
      c.pause(leader);
      c.pause(other);
      const replaying = await waitFor('n1 to apply the first append', async () => {
        const s = await c.status('n1');
        return s && s.appliedIndex > 0 ? s : undefined;
      }, 10_000);
      const solo = replaying.members.filter((m) => m.voter).map((m) => m.id);
      expect(solo, 'n1 applied the membership in which it was the only voter').toEqual(['n1']);
      await sleep(SEVERAL_ELECTIONS_MS);
      const s1 = (await c.status('n1'))!;
      expect(s1.role, 'n1 elected itself on a quorum of one').not.toBe('leader');
      expect(s1.term).toBe(termBefore);
      const w = await c.put('n1', 'solo-ack', 'lost', 2000).catch(() => null);
      expect(w?.status, 'a write acknowledged by n1 alone').not.toBe(200);
      expect(s1.votingSuspended).toBe('identity');
      expect(s1.votingSuspendedReason).toMatch(/records n1 as incarnation \w+, this data directory is \w+/);
      expect(fresh.votingSuspendedReason).toMatch(/no membership applied yet/);

      // The cluster returns: n1 catches up as a learner, is promoted under its own incarnation, and votes again.
      c.resume(leader);
      c.resume(other);
      expect((await admin('n1', 'PUT', '/v1/admin/faults', { fsyncDelayMs: 0 })).status).toBe(200);
      await waitFor('n1 to be promoted', async () => ((await admin(leader, 'POST', '/v1/admin/members/n1/promote')).status === 200 ? true : undefined), 20_000);
      const promoted = await waitFor('n1 to vote again', async () => {
        const s = await c.status('n1');
        return s && s.votingSuspended === null ? s : undefined;
      });
      expect(promoted.votingSuspendedReason).toBeNull();
      expect(promoted.members.filter((m) => m.voter).map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3']);
      const members = jsonOf<{ incarnation: string; voters: { id: string; incarnation?: string }[] }>(await admin('n1', 'GET', '/v1/admin/members'));
      expect(members.voters.find((m) => m.id === 'n1')?.incarnation).toBe(members.incarnation);
      await c.waitConverged(20_000);
      for (let i = 0; i < SOLO_VALUES; i++) expect((await c.get('n1', `solo/${i}`, 'stale')).body.length).toBe(SOLO_VALUE_BYTES);
      // n1 can now lead: its vote and its campaign count.
      expect((await admin(leader, 'POST', '/v1/admin/leader/transfer', { id: 'n1' })).status).toBe(200);
      await c.waitForLeader({ among: ['n1', 'n2', 'n3'] }).then((l: NodeStatus) => expect(l.id).toBe('n1'));
    })();
  }, 60_000);

  it('still answers vote requests: a voter promoted a moment before the leader dies gives the survivor its quorum', async () => {
    // n3 is replaced; its disk is slowed just before its promotion, so it has not applied the
    // promotion (its own membership still says learner, voting suspended for identity) when the
    // leader is killed. The survivor n2 needs n3's vote, and only a leader can tell n3 that it
    // was promoted: were n3 to refuse vote requests too, the cluster would have no leader for good.
    const c = await ProcessCluster.start({ name: 'qkv-promoted-votes', tickMs: TICK_MS, electionTicks: ELECTION_TICKS, extraArgs: ['--enable-fault-injection'] });
    clusters.push(c);
    await c.guard(async () => {
      const n3 = c.node('n3');
      await c.waitForLeader();
      await c.stop('n3');
      const leader = (await c.waitForLeader({ among: ['n1', 'n2'] })).id;
      const survivor = leader === 'n1' ? 'n2' : 'n1';
      const onLeader = (method: string, urlPath: string, body?: unknown) =>
        httpRequest(c.node(leader).port, method, urlPath, { ...(body ? { body: JSON.stringify(body) } : {}), timeoutMs: 10_000 });
      await waitFor('n3 removed', async () => ((await onLeader('DELETE', '/v1/admin/members/n3')).status === 200 ? true : undefined), 10_000);
      c.wipe('n3');
      await c.restart('n3', { initialClusterState: 'existing' });
      expect((await onLeader('POST', '/v1/admin/members', { id: 'n3', address: n3.address, learner: true })).status).toBe(200);
      await waitFor('n3 caught up and recorded', async () => {
        const m = jsonOf<{ learners: { id: string; incarnation?: string }[] }>(await onLeader('GET', '/v1/admin/members'));
        const s3 = await c.status('n3');
        return m.learners.some((l) => l.id === 'n3' && l.incarnation) && s3 && s3.appliedIndex >= (await c.status(leader))!.commitIndex ? true : undefined;
      });
      expect((await httpRequest(n3.port, 'PUT', '/v1/admin/faults', { body: JSON.stringify({ fsyncDelayMs: SLOW_FSYNC_MS }) })).status).toBe(200);
      expect((await onLeader('POST', '/v1/admin/members/n3/promote')).status).toBe(200);
      // The survivor applies the promotion (its membership then needs n3's vote); n3, still writing
      // the promotion entry, has not acknowledged it, so no leader tells it that it is committed.
      await waitFor(`${survivor} to apply the promotion`, async () => ((await c.status(survivor))?.members.some((m) => m.id === 'n3' && m.voter) ? true : undefined), 5000);
      await c.kill9(leader);
      expect((await httpRequest(n3.port, 'PUT', '/v1/admin/faults', { body: JSON.stringify({ fsyncDelayMs: 0 }) })).status).toBe(200);
      const s3 = (await c.status('n3'))!;
      expect(s3, 'n3 has not applied its promotion').toMatchObject({ role: 'learner', votingSuspended: 'identity' });
      const next = await c.waitForLeader({ among: [survivor, 'n3'], timeoutMs: 10_000 });
      expect(next.id).toBe(survivor);
      expect((await c.put(survivor, 'after', 'x')).status).toBe(200);
      await waitFor('n3 to apply its promotion and vote again', async () => ((await c.status('n3'))?.votingSuspended === null ? true : undefined));
    })();
  }, 60_000);
});
