// A holder of the cluster secret opens /raft as if it were a member and sends what issue 14
// confirmed: the append whose entry claims index 1 with term 999 (it stopped a node), forged
// TimeoutNow from a non-leader (five caused five leader changes), an append response beyond the
// leader's last index (it crashed the leader), garbage, an oversized frame and a wrong `from`.
// While writes go on: no node exits, the leader and its term stay, every acknowledged write is
// readable, and the nodes' RSS stays within a budget over repeated rounds.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '@quorumkv/testkit';
import { ProcessCluster, TEST_SECRET, httpRequest, jsonOf, verifyAcked, WriteLoad, type NodeStatus } from '../harness/cluster.js';
import { PeerForger, forgedAppendResponse, forgedTimeoutNow, forgeryCatalogue, type Forgery, type ForgerClose } from '../harness/forger.js';

const SEED = Number(process.env['QKV_SEED'] ?? 20261207);
const REPLAY = `replay: QKV_SEED=${SEED} pnpm exec vitest run --project cluster test/cluster/hostile-peer.test.ts`;
/** The peer transport's default frame limit (packages/transport/src/limits.ts). */
const RAFT_MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** Rounds of the whole catalogue; RSS is compared between the first and the last. */
const ROUNDS = 3;
/** Growth of a node's RSS from after round 1 to after the last round that counts as bounded. */
const RSS_GROWTH_BUDGET_BYTES = 64 * 1024 * 1024;

/** Resident set size of a process, from /proc (Linux). */
function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Close code of a connection displaced by a newer one from the same member (close-codes.ts). */
const CLOSE_REPLACED = 4409;
/** Attempts of a forgery whose connection the impersonated member displaced before the verdict. */
const MAX_FORGERY_ATTEMPTS = 5;

/**
 * An ignored forgery leaves its connection open — until the member the forger impersonates
 * redials and displaces it (its own link was displaced by the forger's). Neither is a refusal.
 */
function notRefused(outcome: ForgerClose | 'still-open'): boolean {
  return outcome === 'still-open' || outcome.code === CLOSE_REPLACED;
}

interface PeerSafety {
  refusedMessages: number;
  ignoredMessages: number;
  followerLogRegressions: number;
}

describe('a hostile peer holding the cluster secret', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.start({ name: 'qkv-hostile', tickMs: 20, electionTicks: 10 });
  });
  afterAll(async () => {
    await cluster?.teardown();
  });
  const guard = (fn: () => Promise<void>) => () => cluster.guard(fn)();

  /**
   * Sends one forgery to `to`, claiming to be `from`; checks the connection's fate. A forgery
   * expected to be refused is sent again when the impersonated member displaced the forger's
   * connection first (then the node may not have judged the frame yet).
   */
  async function forge(f: Forgery, from: string, to: string): Promise<void> {
    let outcome: ForgerClose | 'still-open' = 'still-open';
    for (let attempt = 0; attempt < MAX_FORGERY_ATTEMPTS; attempt++) {
      const st = (await cluster.status(to)) as NodeStatus;
      // Built before connecting: the impersonated member redials within ~50 ms and displaces us.
      const frame = f.build({ from, to, term: st.term, commitIndex: st.commitIndex, lastIndex: st.lastIndex });
      const forger = await PeerForger.connect({ port: cluster.node(to).port, from, to, secret: TEST_SECRET });
      if (frame instanceof Uint8Array) forger.sendRaw(frame);
      else forger.send(frame);
      outcome = await forger.waitClosed(f.expect === 'closed' ? 5_000 : 300);
      if (f.expect === 'ignored' || outcome === 'still-open' || outcome.code !== CLOSE_REPLACED) break;
    }
    const what = `${f.name} (${from} -> ${to}); ${REPLAY}`;
    if (f.expect === 'ignored') expect(notRefused(outcome), what).toBe(true);
    else {
      expect(outcome, what).not.toBe('still-open');
      const { code } = outcome as { code: number };
      expect([4400, 1009], what).toContain(code);
    }
  }

  it('refuses or ignores every forgery without a crash, a leader change or a lost write', guard(async () => {
    const leader = await cluster.waitForLeader();
    const [f1, f2] = cluster.nodes.map((n) => n.id).filter((id) => id !== leader.id) as [string, string];
    const load = new WriteLoad(cluster, { writers: 4, targets: () => [leader.id], prefix: 'hostile-', maxWritesPerWriter: 10_000 }).start();
    await load.waitAcked(20);

    const catalogue = forgeryCatalogue(mulberry32(SEED), RAFT_MAX_FRAME_BYTES);
    const rss: number[][] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const f of catalogue) {
        await forge(f, f2, f1); // claims to be the other follower, at a follower
        await forge(f, f1, leader.id); // claims to be a follower, at the leader
      }
      // Five forged TimeoutNow on one connection at each node: five leader changes before the fix.
      for (const to of [f1, leader.id]) {
        const from = to === f1 ? f2 : f1;
        const forger = await PeerForger.connect({ port: cluster.node(to).port, from, to, secret: TEST_SECRET });
        for (let i = 0; i < 5; i++) forger.send([forgedTimeoutNow({ from, to, term: leader.term })]);
        forger.send([forgedAppendResponse({ from, to, term: leader.term, index: 1_000_000 })]);
        expect(notRefused(await forger.waitClosed(500)), `TimeoutNow x5 at ${to}; ${REPLAY}`).toBe(true);
      }
      rss.push(cluster.nodes.map((n) => rssBytes(n.proc!.pid!)));
    }
    await load.waitAcked(load.acked.length + 20);
    await load.stop();

    // No node exited, and leadership never moved.
    expect(cluster.liveIds().sort()).toEqual(['n1', 'n2', 'n3']);
    const after = await cluster.waitForLeader();
    expect({ id: after.id, term: after.term }, REPLAY).toEqual({ id: leader.id, term: leader.term });
    const metrics = (await httpRequest(cluster.node(f1).port, 'GET', '/metrics')).body.toString();
    expect(metrics).toMatch(/^qkv_raft_leader_changes_total 1$/m); // the first election only

    // The refusals and the ignored messages are counted where the operator looks.
    const safety = (id: string) => httpRequest(cluster.node(id).port, 'GET', '/v1/status').then((r) => jsonOf<{ peerSafety: PeerSafety }>(r).peerSafety);
    expect((await safety(f1)).refusedMessages).toBeGreaterThanOrEqual(ROUNDS); // the append contradicting committed entries
    expect((await safety(f1)).ignoredMessages).toBeGreaterThanOrEqual(5 * ROUNDS);
    expect((await safety(leader.id)).ignoredMessages).toBeGreaterThanOrEqual(7 * ROUNDS);

    // Every acknowledged write is readable from every node.
    await cluster.waitConverged();
    for (const n of cluster.nodes) expect(await verifyAcked(cluster, n.id, load.acked), `${n.id}; ${REPLAY}`).toEqual([]);

    // Memory: after the first round, more rounds do not keep growing the nodes.
    const first = rss[0]!;
    const last = rss[rss.length - 1]!;
    console.log(`hostile-peer: ${load.acked.length} writes acked; RSS MiB per node after round 1: ${first.map((b) => (b / 2 ** 20).toFixed(0)).join('/')}, after round ${ROUNDS}: ${last.map((b) => (b / 2 ** 20).toFixed(0)).join('/')}`);
    for (let i = 0; i < first.length; i++) expect(last[i]! - first[i]!, `${cluster.nodes[i]!.id} RSS growth; ${REPLAY}`).toBeLessThan(RSS_GROWTH_BUDGET_BYTES);
  }));
});
