// A follower whose LevelDB journal lost its tail. Bytes overwritten in the last log-append record
// of its write-ahead log make LevelDB skip that record (and the rest of its block) on open, with
// a line in LevelDB's own LOG file and nothing else: the node comes back with a log shorter than
// what it acknowledged to the leader. Its high-water mark (a separate file) says so: it must
// neither vote nor serve reads, say why on /ready, /v1/status and in its log, stay up, and return
// to normal once a leader re-sends the missing entries — the leader it acknowledged to, too: it
// reports the rejection of an acknowledged index and re-sends from the follower's hint. Stopped
// cleanly (SIGTERM: closing the store confirms the mark) or killed once idle (the mark's
// confirmation record, written a few ms after the last append, is what proves that append;
// docs/storage.md, "High-water mark").
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessCluster, httpRequest, jsonOf, sleep, waitFor } from '../harness/cluster.js';

const TICK_MS = 20;
const ELECTION_TICKS = 10;
/** The longest randomized election timeout. */
const MAX_ELECTION_TIMEOUT_MS = 2 * ELECTION_TICKS * TICK_MS;
/** How long the two remaining voters get to (fail to) elect a leader without the damaged one's vote. */
const NO_LEADER_WINDOW_MS = 8 * MAX_ELECTION_TIMEOUT_MS;
/** Bytes overwritten, as in the report of issue 14. */
const DAMAGE_BYTES = 64;

/** The newest write-ahead-log file (`NNNNNN.log`) of a LevelDB directory. */
function newestWal(dataDir: string): string {
  const wals = readdirSync(dataDir).filter((f) => /^\d+\.log$/.test(f)).sort();
  const last = wals.at(-1);
  if (!last) throw new Error(`no LevelDB write-ahead log in ${dataDir}`);
  return path.join(dataDir, last);
}

/**
 * Overwrites DAMAGE_BYTES bytes of the last log-append record in the WAL: at the last occurrence
 * of the log sublevel's key prefix `!log!` (only appends and compactions write log keys). Returns
 * the offset damaged.
 */
function damageLastAppend(wal: string): number {
  const bytes = readFileSync(wal);
  const at = bytes.lastIndexOf(Buffer.from('!log!'));
  if (at < 0) throw new Error(`no log record in ${wal} (${statSync(wal).size} bytes)`);
  const end = Math.min(bytes.length, at + DAMAGE_BYTES);
  bytes.fill(0x5a, at, end);
  writeFileSync(wal, bytes);
  return at;
}

describe('a follower whose write-ahead log lost its last append', () => {
  let cluster: ProcessCluster | undefined;
  afterEach(async () => {
    await cluster?.teardown();
    cluster = undefined;
  });

  it.each(['SIGTERM', 'SIGKILL once idle'] as const)('comes back short of its high-water mark (%s): no vote, no reads, /ready false with the reason; a new leader catches it up', async (how) => {
    const c = (cluster = await ProcessCluster.start({ name: 'qkv-wal-damage', tickMs: TICK_MS, electionTicks: ELECTION_TICKS }));
    await c.guard(async () => {
      const leader = await c.waitForLeader();
      const [victim, other] = c.nodes.map((n) => n.id).filter((id) => id !== leader.id) as [string, string];
      for (let i = 0; i < 10; i++) expect((await c.put(leader.id, `w/${i}`, `v${i}`)).status).toBe(200);
      // Idle means idle: the cluster may still append on its own right after the writes (the
      // leader records members' incarnations), so wait until the victim's last index holds still
      // for well over MARK_CONFIRM_DELAY_MS before killing it.
      const acked = await quietLastIndex(c, victim);

      if (how === 'SIGTERM') await c.stop(victim);
      else await c.kill9(victim); // converged above: idle for longer than MARK_CONFIRM_DELAY_MS
      damageLastAppend(newestWal(c.node(victim).dataDir));
      // The leader it acknowledged to would re-send the lost entries at once (the second test):
      // it is stopped first, so the damaged node stays short while it is examined.
      await c.stop(leader.id);
      await c.restart(victim);
      const port = c.node(victim).port;

      // It stays up and says why (the storage reason, not only a missing leader), everywhere an operator looks.
      await waitFor(`${victim} to open its store`, async () => ((await c.status(victim)) ? true : undefined), 10_000);
      const ready = await httpRequest(port, 'GET', '/ready');
      expect(ready.status).toBe(503);
      expect(jsonOf<{ ready: boolean; reason?: string }>(ready).reason).toMatch(/acknowledged entries up to \d+/);
      const status = jsonOf<{ lastIndex: number; storageShortfall: { lastIndex: number; markIndex: number } | null; votingSuspended: string | null }>(
        await httpRequest(port, 'GET', '/v1/status'),
      );
      expect(status.storageShortfall).toMatchObject({ markIndex: acked });
      expect(status.votingSuspended).toBe('storage');
      expect(status.storageShortfall!.lastIndex).toBeLessThan(acked);
      expect(readFileSync(c.node(victim).logPath, 'utf8')).toContain('storage is behind its high-water mark');
      // Gauges are refreshed on the node's tick, so the first scrape after the start may precede it.
      const shortfallLine = new RegExp(`^qkv_storage_shortfall_entries ${acked - status.storageShortfall!.lastIndex}$`, 'm');
      await waitFor('the shortfall gauge on /metrics', async () => (shortfallLine.test((await httpRequest(port, 'GET', '/metrics')).body.toString()) ? true : undefined), 5_000);
      // No reads, stale or linearizable.
      for (const consistency of ['stale', 'linearizable'] as const) {
        const r = await c.get(victim, 'w/9', consistency);
        expect(r.status, `${consistency} read on the damaged follower`).toBe(503);
        expect(r.body.toString()).toContain('cannot serve reads');
      }

      // No vote: with the leader gone, the other follower cannot win without it.
      await sleep(NO_LEADER_WINDOW_MS);
      const sts = await Promise.all([victim, other].map((id) => c.status(id)));
      expect(sts.map((s) => s?.role)).not.toContain('leader');
      expect(sts[1]?.leader, `${other} found no leader`).toBeNull();

      // A new leader probes it from scratch, re-sends what it lost, and it is whole again.
      await c.restart(leader.id);
      const next = await c.waitForLeader({ timeoutMs: 20_000 });
      expect(next.id).not.toBe(victim);
      await waitFor('the damaged follower to be ready again', async () => ((await httpRequest(port, 'GET', '/ready')).status === 200 ? true : undefined), 20_000);
      expect(jsonOf<{ storageShortfall: unknown; votingSuspended: unknown }>(await httpRequest(port, 'GET', '/v1/status'))).toMatchObject({
        storageShortfall: null,
        votingSuspended: null,
      });
      await c.waitConverged(20_000);
      const r = await c.get(victim, 'w/9', 'stale');
      expect(r.status).toBe(200);
      expect(readFileSync(c.node(victim).logPath, 'utf8')).toContain('voting and reads resume');
    })();
  }, 60_000);

  it('the leader it acknowledged to reports the lost entries and re-sends them on the next write', async () => {
    const c = (cluster = await ProcessCluster.start({ name: 'qkv-wal-regress', tickMs: TICK_MS, electionTicks: ELECTION_TICKS }));
    await c.guard(async () => {
      const leader = await c.waitForLeader();
      const victim = c.nodes.map((n) => n.id).find((id) => id !== leader.id)!;
      for (let i = 0; i < 10; i++) expect((await c.put(leader.id, `w/${i}`, `v${i}`)).status).toBe(200);
      await c.waitConverged(20_000);
      // The leader has recorded the victim's acknowledgement of its whole log.
      await waitFor(`the leader to record ${victim}'s last acknowledgement`, async () => {
        const st = await c.status(leader.id);
        return st && st.members.find((m) => m.id === victim)?.matchIndex === st.lastIndex ? true : undefined;
      });

      await c.stop(victim);
      damageLastAppend(newestWal(c.node(victim).dataDir));
      await c.restart(victim);
      const port = c.node(victim).port;
      await waitFor(`${victim} to hear the leader`, async () => ((await c.status(victim))?.leader === leader.id ? true : undefined), 10_000);

      // The next write makes the leader probe the victim at the index it acknowledged; the victim
      // rejects it. The leader used to probe that index again for ever (the victim stayed short).
      expect((await c.put(leader.id, 'w/after', 'v')).status).toBe(200);
      await waitFor('the damaged follower to be whole again', async () => ((await httpRequest(port, 'GET', '/ready')).status === 200 ? true : undefined), 10_000);
      const st = jsonOf<{ term: number; leader: string; peerSafety: { followerLogRegressions: number } }>(await httpRequest(c.node(leader.id).port, 'GET', '/v1/status'));
      expect({ leader: st.leader, term: st.term }).toEqual({ leader: leader.id, term: leader.term }); // repaired by the same leader
      expect(st.peerSafety.followerLogRegressions).toBeGreaterThanOrEqual(1);
      const metrics = (await httpRequest(c.node(leader.id).port, 'GET', '/metrics')).body.toString();
      expect(metrics).toMatch(/^qkv_raft_follower_log_regressions_total [1-9]\d*$/m);
      expect(readFileSync(c.node(leader.id).logPath, 'utf8')).toContain('it lost acknowledged entries');
      await c.waitConverged(20_000);
      expect((await c.get(victim, 'w/after', 'stale')).status).toBe(200);
    })();
  }, 60_000);
});

/** The victim's last index once the cluster has converged and it held still for 300 ms. */
async function quietLastIndex(c: ProcessCluster, victim: string): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const before = (await c.waitConverged(20_000)).find((s) => s.id === victim)!.lastIndex;
    await sleep(300);
    const after = (await c.waitConverged(20_000)).find((s) => s.id === victim)!.lastIndex;
    if (after === before) return after;
  }
  throw new Error(`${victim}'s log never held still for 300 ms`);
}
