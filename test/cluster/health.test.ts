// Operating a real three-node cluster (zones a, a, b): `/metrics` passes `promtool check metrics`
// after traffic and a leader change; each node records its zone and every node warns that zone a
// holds a quorum (status, CLI, metric); `quorumkv health` says healthy (exit 0) with every member's
// role, term, indexes, lag, fsync latency and zone, and warns that zone a holds a quorum; with a
// member killed it exits 1 and names it. One cluster for all of it, to keep CI time down. Without
// promtool the promtool case is skipped with a message, except under CI=true, where it fails.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, ProcessCluster, httpRequest, jsonOf, waitFor } from '../harness/cluster.js';

/** Writes before the scrape, so the histograms and counters have samples. */
const WRITES = 30;

/** Whether `promtool` is on PATH. */
const PROMTOOL = spawnSync('promtool', ['--version']).status === 0;
/** CI installs promtool (.ci/system-deps.sh) and sets CI=true: there a missing promtool fails. */
const RUN_PROMTOOL = PROMTOOL || process.env.CI === 'true';
if (!RUN_PROMTOOL) console.warn('skipping promtool check metrics: promtool is not on PATH (apt-get install -y prometheus)');

/** `promtool check metrics` over `text`: its exit code and output. */
function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (c: Buffer) => (output += c.toString()));
    p.stderr.on('data', (c: Buffer) => (output += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, output }));
    p.stdin.end(text);
  });
}

/** Runs `quorumkv health ARGS`; resolves with its exit code and stdout. */
function health(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_PATH, 'health', '--timeout-ms', '2000', ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

describe('cluster health and Prometheus metrics', () => {
  let cluster: ProcessCluster;
  /** /metrics of every node after traffic and a leader change (the first test scrapes them). */
  let scraped: string[] = [];
  beforeAll(async () => {
    cluster = await ProcessCluster.start({
      name: 'qkv-health',
      tickMs: 20,
      electionTicks: 10,
      nodeArgs: { n1: ['--zone', 'a'], n2: ['--zone', 'a'], n3: ['--zone', 'b'] },
    });
  });
  afterAll(async () => {
    await cluster?.teardown();
  });
  const guard = (fn: () => Promise<void>) => () => cluster.guard(fn)();

  it('/metrics on every node follows the conventions after writes and a leader change', guard(async () => {
    const first = await cluster.waitForLeader();
    for (let i = 0; i < WRITES; i++) expect((await cluster.put(first.id, `m/${i}`, `v${i}`)).status).toBe(200);
    const target = cluster.nodes.find((n) => n.id !== first.id)!.id;
    const t = await httpRequest(cluster.node(first.id).port, 'POST', '/v1/admin/leader/transfer', { body: JSON.stringify({ id: target }) });
    expect(t.status, t.body.toString()).toBe(200);
    await cluster.waitForLeader({ minTerm: first.term });
    expect((await cluster.put(target, 'm/after', 'v')).status).toBe(200);

    const texts = await Promise.all(cluster.nodes.map(async (n) => (await httpRequest(n.port, 'GET', '/metrics')).body.toString()));
    for (const text of texts) {
      expect(text).toMatch(/^# TYPE qkv_peer_sent_messages_total counter$/m);
      expect(text).toMatch(/^qkv_peer_rtt_seconds\{peer="n\d"\} 0\.\d+/m);
      expect(text).not.toMatch(/^qkv_peer_rtt_ms/m);
      expect(text).toMatch(/^qkv_zone_quorum_at_risk \d$/m);
    }
    expect(texts.some((x) => /^qkv_raft_leader_changes_total [1-9]/m.test(x))).toBe(true);

    scraped = texts;
  }), 60_000);

  it.skipIf(!RUN_PROMTOOL)('promtool check metrics passes on every node\'s /metrics', async () => {
    if (!PROMTOOL) throw new Error('promtool is not installed (CI=true): .ci/system-deps.sh should have installed the prometheus package');
    expect(scraped).toHaveLength(3);
    for (const [i, text] of scraped.entries()) {
      const r = await promtoolCheck(text);
      expect({ node: cluster.nodes[i]!.id, code: r.code, output: r.output }).toEqual({ node: cluster.nodes[i]!.id, code: 0, output: '' });
    }
  });

  it('every node records its --zone, then warns in /v1/status, quorumkv status and qkv_zone_quorum_at_risk that zone a holds a quorum', guard(async () => {
    const warning = 'zone "a" holds 2 of 3 voters, a quorum: losing that zone stops the cluster';
    for (const n of cluster.nodes) {
      await waitFor(`${n.id} to see every zone`, async () => {
        const st = jsonOf<{ members: { id: string; zone: string | null }[]; warnings: string[] }>(await httpRequest(n.port, 'GET', '/v1/status'));
        const zones = Object.fromEntries(st.members.map((m) => [m.id, m.zone]));
        return zones.n1 === 'a' && zones.n2 === 'a' && zones.n3 === 'b' && st.warnings.includes(warning) ? true : undefined;
      });
      expect((await httpRequest(n.port, 'GET', '/metrics')).body.toString()).toMatch(/^qkv_zone_quorum_at_risk 1$/m);
    }
    const out = await new Promise<string>((resolve) =>
      execFile(process.execPath, [CLI_PATH, 'status', '--endpoints', cluster.nodes[0]!.address], (_e, stdout) => resolve(stdout)),
    );
    expect(out).toContain(`warning: ${warning}`);
  }), 30_000);

  it('quorumkv health exits 0 on a healthy cluster and --json gives every member with its figures', guard(async () => {
    await cluster.waitConverged();
    const seed = cluster.nodes[2]!.address; // one endpoint: the rest come from its member list
    const table = await health(['--endpoints', seed]);
    expect(table.code, table.stdout + table.stderr).toBe(0);
    expect(table.stdout).toMatch(/cluster is healthy: leader n\d, term \d+/);
    for (const n of cluster.nodes) expect(table.stdout).toMatch(new RegExp(`^${n.id}\\s+${n.address.replace(/\./g, '\\.')}\\s+yes\\s`, 'm'));
    expect(table.stdout).toContain('warning: zone "a" holds 2 of 3 voters, a quorum');

    const r = await health(['--endpoints', seed, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const h = JSON.parse(r.stdout) as { healthy: boolean; leader: string; term: number; problems: string[]; warnings: string[]; members: Record<string, unknown>[] };
    const leader = await cluster.waitForLeader();
    expect({ healthy: h.healthy, leader: h.leader, term: h.term, problems: h.problems }).toEqual({ healthy: true, leader: leader.id, term: leader.term, problems: [] });
    expect(h.members.map((m) => [m.id, m.zone, m.reachable]).sort()).toEqual([['n1', 'a', true], ['n2', 'a', true], ['n3', 'b', true]]);
    for (const m of h.members) {
      expect(Object.keys(m).sort()).toEqual(['address', 'appliedIndex', 'commitIndex', 'fsyncP99Seconds', 'id', 'lagEntries', 'leader', 'problems', 'reachable', 'role', 'storageShortfall', 'term', 'votingSuspended', 'zone']);
      expect(m.leader).toBe(leader.id);
      expect(m.role).toBe(m.id === leader.id ? 'leader' : 'follower');
      expect(m.lagEntries).toBeLessThanOrEqual(5);
      expect(typeof m.fsyncP99Seconds).toBe('number');
    }
    expect(h.warnings).toContain('zone "a" holds 2 of 3 voters, a quorum: losing that zone stops the cluster');
    // The figures come from /v1/status, which now carries the fsync summary and the warnings list.
    const st = jsonOf<{ fsync: { samples: number; p99Seconds: number }; warnings: string[] }>(await httpRequest(cluster.nodes[0]!.port, 'GET', '/v1/status'));
    expect(st.fsync.samples).toBeGreaterThan(0);
    expect(Array.isArray(st.warnings)).toBe(true);
  }), 60_000);

  it('quorumkv health exits 1 and names the member when one is killed', guard(async () => {
    const leader = await cluster.waitForLeader();
    const victim = cluster.nodes.find((n) => n.id !== leader.id)!;
    await cluster.kill9(victim.id);
    const survivor = cluster.nodes.find((n) => n.id !== victim.id)!.address;
    const r = await health(['--endpoints', survivor]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain('cluster is UNHEALTHY');
    expect(r.stdout).toMatch(new RegExp(`- ${victim.id}: unreachable \\(ECONNREFUSED\\)`));
    const j = await health(['--endpoints', survivor, '--json']);
    expect(j.code).toBe(1);
    const h = JSON.parse(j.stdout) as { healthy: boolean; leader: string | null; members: { id: string; reachable: boolean }[] };
    expect(h.healthy).toBe(false);
    expect(h.leader).toBe(leader.id); // the two survivors still agree on the leader
    expect(h.members.filter((m) => !m.reachable).map((m) => m.id)).toEqual([victim.id]);
    // With --endpoints-only the member list is not consulted: the one survivor asked is healthy.
    await waitFor('health of the survivor alone to pass', async () => ((await health(['--endpoints', survivor, '--endpoints-only'])).code === 0 ? true : undefined));
  }), 60_000);
});
