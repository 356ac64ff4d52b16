// Maintenance mode on a real three-node cluster (`quorumkv maintenance on|off|status`): once on,
// every membership change is refused with QKV_MAINTENANCE wherever it is asked (follower or
// leader), including removing the leader (which would start an automatic leader transfer); an
// explicit `leader transfer` still works; the switch shows in /v1/status warnings, `quorumkv
// health` and `qkv_maintenance_mode`, and survives a restart of the node. Off, changes pass again.
// Then the availability metrics: a killed leader adds its failover time to the survivors'
// `qkv_leaderless_seconds_total`; refused requests are counted by cause; uptime counts up; the
// data directory's free and total bytes are there for the disk alert. Last, every metric the
// Grafana dashboard (deploy/grafana/quorumkv.json) names is declared on a live node's /metrics.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, ProcessCluster, REPO_ROOT, TEST_SECRET, httpRequest, jsonOf, waitFor } from '../harness/cluster.js';
import { dashboardMetrics } from '../../packages/server/test/dashboard-metrics.js';

/** One sample of `/metrics` on `port` (the first line matching `name` and the label filter), or NaN. */
async function sample(port: number, name: string, labels = ''): Promise<number> {
  const text = (await httpRequest(port, 'GET', '/metrics')).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(name) && !l.startsWith('#') && l.includes(labels) && /^[a-z_]+(\{[^}]*\})? /.test(l) && l.split(/[{ ]/)[0] === name);
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN;
}

/** Runs `quorumkv ARGS` with the test cluster's secret (admin commands prove it); resolves with its exit code and output. */
function cli(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env, QKV_CLUSTER_SECRET: TEST_SECRET, QKV_CLUSTER_SECRET_FILE: '' };
    execFile(process.execPath, [CLI_PATH, ...args], { timeout: 20_000, env }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout: stdout + stderr });
    });
  });
}

describe('maintenance mode', () => {
  let cluster: ProcessCluster;
  let endpoints = '';
  beforeAll(async () => {
    cluster = await ProcessCluster.start({ name: 'qkv-maintenance', tickMs: 20, electionTicks: 10 });
    endpoints = cluster.nodes.map((n) => n.address).join(',');
  });
  afterAll(async () => {
    await cluster?.teardown();
  });
  const guard = (fn: () => Promise<void>) => () => cluster.guard(fn)();
  const call = async (id: string, method: string, path: string, body?: unknown) => {
    const r = await httpRequest(cluster.node(id).port, method, path, body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    return { status: r.status, body: jsonOf<Record<string, unknown>>(r) };
  };

  it('on: membership changes are refused on follower and leader; leader transfer passes; shown everywhere; kept across a restart', guard(async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((n) => n.id !== leader.id)!.id;
    const on = await cli(['maintenance', 'on', '--endpoints', endpoints]);
    expect(on.code, on.stdout).toBe(0);
    for (const n of cluster.nodes) expect(on.stdout).toContain(`${n.address}: 200`);

    // Refused where asked (the follower does not forward it) and on the leader.
    for (const id of [follower, leader.id]) {
      const zone = await call(id, 'PUT', `/v1/admin/members/${follower}/zone`, { zone: 'z9' });
      expect({ id, status: zone.status, code: zone.body.code }).toEqual({ id, status: 409, code: 'QKV_MAINTENANCE' });
    }
    const removeLeader = await call(leader.id, 'DELETE', `/v1/admin/members/${leader.id}`);
    expect(removeLeader.status).toBe(409);
    const add = await cli(['member', 'add', 'n9', '127.0.0.1:1', '--endpoints', cluster.node(follower).address]);
    expect(add.code).toBe(1);
    expect(add.stdout).toContain('QKV_MAINTENANCE');
    // Nothing changed: still three voters, the same leader.
    const st = jsonOf<{ members: { id: string; zone: string | null }[]; warnings: string[]; switches: { maintenance: boolean; snapshotSendsPaused: boolean } }>(
      await httpRequest(cluster.node(follower).port, 'GET', '/v1/status'),
    );
    expect(st.switches).toEqual({ maintenance: true, snapshotSendsPaused: false });
    expect(st.members.map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3']);
    expect(st.members.find((m) => m.id === follower)?.zone ?? null).toBeNull();
    expect(st.warnings.some((w) => w.startsWith(`${follower}: maintenance mode is on`))).toBe(true);
    expect((await httpRequest(cluster.node(follower).port, 'GET', '/metrics')).body.toString()).toMatch(/^qkv_maintenance_mode 1$/m);
    const health = await cli(['health', '--endpoints', endpoints]);
    expect(health.stdout).toMatch(/warning: n\d: maintenance mode is on/);
    // The status page renders `health.warnings` of /v1/cluster (status-page.ts renderVerdict).
    const view = jsonOf<{ health: { warnings: string[] } }>(await httpRequest(cluster.node(leader.id).port, 'GET', '/v1/cluster'));
    expect(view.health.warnings.filter((w) => w.includes('maintenance mode is on'))).toHaveLength(3);

    // The operator's own leader transfer is not frozen.
    const t = await call(leader.id, 'POST', '/v1/admin/leader/transfer', { id: follower });
    expect(t.status, JSON.stringify(t.body)).toBe(200);
    await cluster.waitForLeader({ minTerm: leader.term });

    // Persisted: a restarted node still refuses.
    await cluster.stop(follower);
    await cluster.restart(follower);
    expect((await call(follower, 'GET', '/v1/admin/maintenance')).body).toEqual({ id: follower, maintenance: true });
  }), 60_000);

  it('off: the same change passes and the gauge drops to 0', guard(async () => {
    const off = await cli(['maintenance', 'off', '--endpoints', endpoints]);
    expect(off.code, off.stdout).toBe(0);
    const status = await cli(['maintenance', 'status', '--endpoints', endpoints]);
    expect(status.stdout.match(/"maintenance":false/g)).toHaveLength(3);
    const leader = await cluster.waitForLeader();
    const target = cluster.nodes.find((n) => n.id !== leader.id)!.id;
    await waitFor('the zone change to pass', async () => ((await call(target, 'PUT', `/v1/admin/members/${target}/zone`, { zone: 'z9' })).status === 200 ? true : undefined));
    expect((await httpRequest(cluster.node(target).port, 'GET', '/metrics')).body.toString()).toMatch(/^qkv_maintenance_mode 0$/m);
    expect((await call(target, 'PUT', '/v1/admin/maintenance', { on: 'yes' })).status).toBe(400);
  }), 30_000);

  it('availability metrics: failover time, errors by cause, uptime, disk space', guard(async () => {
    const leader = await cluster.waitForLeader();
    const survivors = cluster.nodes.filter((n) => n.id !== leader.id);
    const before = await Promise.all(survivors.map((n) => sample(n.port, 'qkv_leaderless_seconds_total')));
    for (const v of before) expect(v).toBeGreaterThan(0); // every node starts without a leader
    const killedAt = Date.now();
    await cluster.kill9(leader.id);
    await cluster.waitForLeader({ minTerm: leader.term });
    const windowSec = (Date.now() - killedAt) / 1000;
    const after = await Promise.all(survivors.map((n) => sample(n.port, 'qkv_leaderless_seconds_total')));
    const grew = after.map((v, i) => v - before[i]!);
    console.log(`failover: leaderless seconds grew by ${grew.map((g) => g.toFixed(3)).join(', ')} within ${windowSec.toFixed(3)} s`);
    for (const g of grew) {
      // At least an election timeout (10 ticks of 20 ms) less a heartbeat: the gap starts at the
      // dead leader's last message, not when the follower noticed.
      expect(g).toBeGreaterThanOrEqual(0.15);
      expect(g).toBeLessThanOrEqual(windowSec + 0.5); // the gap starts at the last heartbeat before the kill
    }
    // Errors are counted by cause: two bad requests add exactly two `invalid_argument`.
    const port = survivors[0]!.port;
    const bad = await sample(port, 'qkv_request_errors_total', 'cause="invalid_argument"');
    for (let i = 0; i < 2; i++) expect((await call(survivors[0]!.id, 'PUT', '/v1/admin/maintenance', { on: 'yes' })).status).toBe(400);
    expect((await sample(port, 'qkv_request_errors_total', 'cause="invalid_argument"')) - (Number.isNaN(bad) ? 0 : bad)).toBe(2);
    const uptime = await sample(survivors[0]!.port, 'qkv_uptime_seconds');
    expect(uptime).toBeGreaterThan(0);
    expect(uptime).toBeLessThan(300);
    const free = await sample(port, 'qkv_data_dir_free_bytes');
    const capacity = await sample(port, 'qkv_data_dir_capacity_bytes');
    expect(free).toBeGreaterThan(0);
    expect(free).toBeLessThanOrEqual(capacity);
  }), 30_000);

  it('every metric the Grafana dashboard names exists on a live node\'s /metrics', guard(async () => {
    const names = dashboardMetrics(readFileSync(path.join(REPO_ROOT, 'deploy', 'grafana', 'quorumkv.json'), 'utf8'));
    const live = cluster.nodes.find((n) => n.proc !== null)!;
    const text = (await httpRequest(live.port, 'GET', '/metrics')).body.toString();
    const declared = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const missing = names.filter((n) => !declared.has(n) && !(n.endsWith('_bucket') && declared.get(n.slice(0, -'_bucket'.length)) === 'histogram'));
    expect(names.length).toBeGreaterThan(10);
    expect(missing).toEqual([]);
  }), 10_000);
});
