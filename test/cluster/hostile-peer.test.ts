// A holder of the cluster secret opens /raft as if it were a member and sends what issue 14
// confirmed: the append whose entry claims index 1 with term 999 (it stopped a node), forged
// TimeoutNow from a non-leader (five caused five leader changes), an append response beyond the
// leader's last index (it crashed the leader), garbage, an oversized frame and a wrong `from`.
// The forger claims to be a member that is stopped meanwhile. While writes go on: no node exits,
// the leader and its term stay, every forgery is counted, every acknowledged write is readable
// from every node (the impersonated one too, once back), and RSS stays within a budget.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '@quorumkv/testkit';
import { ProcessCluster, TEST_SECRET, httpRequest, jsonOf, verifyAcked, WriteLoad, type NodeStatus } from '../harness/cluster.js';
import { PeerForger, forgedAppendResponse, forgedTimeoutNow, forgeryCatalogue, type Forgery } from '@quorumkv/jepsen-lite/forger';

const SEED = Number(process.env['QKV_SEED'] ?? 20261207);
const REPLAY = `replay: QKV_SEED=${SEED} pnpm exec vitest run --project cluster test/cluster/hostile-peer.test.ts`;
/** The peer transport's default frame limit (packages/transport/src/limits.ts). */
const RAFT_MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** Rounds of the whole catalogue; RSS is compared between the first and the last. */
const ROUNDS = 3;
/** Writes per writer (4 writers) while the forgeries go on. */
const WRITES_PER_WRITER = 150;
/** How long a connection must stay open after a forgery that is to be ignored. */
const IGNORED_WAIT_MS = 200;
/** Growth of a node's RSS from after round 1 to after the last round that counts as bounded. */
const RSS_GROWTH_BUDGET_BYTES = 64 * 1024 * 1024;

/** Resident set size of a process, from /proc (Linux). */
function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

interface PeerSafety {
  refusedMessages: number;
  ignoredMessages: number;
  followerLogRegressions: number;
}

describe('a hostile peer holding the cluster secret', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    // A 1 s election timeout: a spurious election on a loaded machine would read as a leader change caused
    // by a forgery, while a believed TimeoutNow starts an election at once whatever the timeout.
    cluster = await ProcessCluster.start({ name: 'qkv-hostile', tickMs: 50, electionTicks: 20 });
  });
  afterAll(async () => {
    await cluster?.teardown();
  });
  const guard = (fn: () => Promise<void>) => () => cluster.guard(fn)();

  /** Sends one forgery to `to`, claiming to be `from`; checks the connection's fate. */
  async function forge(f: Forgery, from: string, to: string): Promise<void> {
    const st = (await cluster.status(to)) as NodeStatus;
    const forger = await PeerForger.connect({ port: cluster.node(to).port, from, to, secret: TEST_SECRET, incarnation: cluster.incarnationOf(from) });
    const frame = f.build({ from, to, term: st.term, commitIndex: st.commitIndex, lastIndex: st.lastIndex });
    if (frame instanceof Uint8Array) forger.sendRaw(frame);
    else forger.send(frame);
    const outcome = await forger.waitClosed(f.expect === 'closed' ? 5_000 : IGNORED_WAIT_MS);
    const what = `${f.name} (${from} -> ${to}); ${REPLAY}`;
    if (f.expect === 'ignored') expect(outcome, what).toBe('still-open');
    else expect(outcome === 'still-open' ? outcome : [4400, 1009].includes(outcome.code), what).toBe(true);
  }

  it('refuses or ignores every forgery without a crash, a leader change or a lost write', guard(async () => {
    const leader = await cluster.waitForLeader();
    const [f1, f2] = cluster.nodes.map((n) => n.id).filter((id) => id !== leader.id) as [string, string];
    // The forger claims to be f2, which is stopped: its real links would otherwise displace the
    // forger's connections (4409) and the node might not read a forged frame at all.
    await cluster.stop(f2);
    // A bounded write load (the log lives in memory: an unbounded one would blur the RSS check).
    // It starts after the first round: on a quiet cluster a follower's commit index is its last
    // index, which the confirmed forged append names — that is what stopped a node before.
    const load = new WriteLoad(cluster, { writers: 4, targets: () => [leader.id], prefix: 'hostile-', maxWritesPerWriter: WRITES_PER_WRITER });
    await cluster.waitConverged();

    const catalogue = forgeryCatalogue(mulberry32(SEED), RAFT_MAX_FRAME_BYTES);
    const rss: number[][] = [];
    for (let round = 0; round < ROUNDS; round++) {
      if (round === 1) {
        load.start();
        await load.waitAcked(20);
      }
      for (const f of catalogue) {
        await forge(f, f2, f1);
        await forge(f, f2, leader.id);
      }
      // Five forged TimeoutNow on one connection at each node: five leader changes before the fix.
      for (const to of [f1, leader.id]) {
        const forger = await PeerForger.connect({ port: cluster.node(to).port, from: f2, to, secret: TEST_SECRET, incarnation: cluster.incarnationOf(f2) });
        for (let i = 0; i < 5; i++) forger.send([forgedTimeoutNow({ from: f2, to, term: leader.term })]);
        forger.send([forgedAppendResponse({ from: f2, to, term: leader.term, index: 1_000_000 })]);
        expect(await forger.waitClosed(IGNORED_WAIT_MS), `TimeoutNow x5 at ${to}; ${REPLAY}`).toBe('still-open');
      }
      rss.push([leader.id, f1].map((id) => rssBytes(cluster.node(id).proc!.pid!)));
    }
    await load.stop();

    // No node exited, and leadership never moved.
    expect(cluster.liveIds().sort()).toEqual([leader.id, f1].sort());
    const after = await cluster.waitForLeader();
    expect({ id: after.id, term: after.term }, REPLAY).toEqual({ id: leader.id, term: leader.term });
    const metrics = (await httpRequest(cluster.node(f1).port, 'GET', '/metrics')).body.toString();
    expect(metrics).toMatch(/^qkv_raft_leader_changes_total 1$/m); // the first election only

    // Every refusal and every ignored message is counted where the operator looks: per round, the
    // append contradicting committed entries is refused by each core; the follower ignores 1 + 5
    // TimeoutNow (it drops append responses without counting: they are not for it), the leader
    // 1 + 5 TimeoutNow and 1 + 1 acknowledgements past its last index.
    const safety = (id: string) => httpRequest(cluster.node(id).port, 'GET', '/v1/status').then((r) => jsonOf<{ peerSafety: PeerSafety }>(r).peerSafety);
    expect(await safety(f1), REPLAY).toMatchObject({ refusedMessages: ROUNDS, ignoredMessages: 6 * ROUNDS, followerLogRegressions: 0 });
    expect(await safety(leader.id), REPLAY).toMatchObject({ refusedMessages: ROUNDS, ignoredMessages: 8 * ROUNDS, followerLogRegressions: 0 });

    // The impersonated member comes back and catches up.
    await cluster.restart(f2);
    // Every acknowledged write is readable from every node.
    await cluster.waitConverged();
    for (const n of cluster.nodes) expect(await verifyAcked(cluster, n.id, load.acked), `${n.id}; ${REPLAY}`).toEqual([]);

    // Memory: after the first round, more rounds do not keep growing the nodes.
    const first = rss[0]!;
    const last = rss[rss.length - 1]!;
    console.log(`hostile-peer: ${load.acked.length} writes acked (failures: ${JSON.stringify([...load.failuresByKind])}); RSS MiB of leader/follower after round 1: ${first.map((b) => (b / 2 ** 20).toFixed(0)).join('/')}, after round ${ROUNDS}: ${last.map((b) => (b / 2 ** 20).toFixed(0)).join('/')}`);
    for (let i = 0; i < first.length; i++) expect(last[i]! - first[i]!, `RSS growth of node ${i}; ${REPLAY}`).toBeLessThan(RSS_GROWTH_BUDGET_BYTES);
  }));
});
