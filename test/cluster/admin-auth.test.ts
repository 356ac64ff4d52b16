// Admin endpoints without users and roles: plain (curl-style) requests to every admin route are
// refused with 401 QKV_AUTH_FAILED and change nothing; a wrong token is refused the same way; the
// CLI with the cluster secret (environment or --cluster-secret-file) works, without it it is
// refused; a follower relays an authenticated admin request to the leader; neither the secret
// nor the admin token appears in any node's log. One three-node cluster for all of it.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminAuthorization, adminToken } from '@quorumkv/transport';
import { CLI_PATH, ProcessCluster, TEST_SECRET, httpRequest, jsonOf, waitFor } from '../harness/cluster.js';

/** Every admin route, as a curl user would call it. */
const ADMIN_ROUTES: [string, string, unknown?][] = [
  ['GET', '/v1/admin/members'],
  ['POST', '/v1/admin/members', { id: 'n9', address: '127.0.0.1:1', learner: true }],
  ['POST', '/v1/admin/members/n3/promote'],
  ['DELETE', '/v1/admin/members/n3'],
  ['PUT', '/v1/admin/members/n3/zone', { zone: 'z' }],
  ['POST', '/v1/admin/leader/transfer', { id: 'n2' }],
  ['PUT', '/v1/admin/snapshot-rate', { bytesPerSecond: 1 }],
  ['GET', '/v1/admin/snapshots'],
  ['GET', '/v1/admin/snapshot'],
  ['PUT', '/v1/admin/faults', { fsyncDelayMs: 1 }],
  ['GET', '/v1/admin/maintenance'],
  ['PUT', '/v1/admin/maintenance', { on: true }],
  ['POST', '/v1/compact?revision=1'],
];

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_PATH, ...args], { timeout: 20_000, env, cwd: tmpdir() }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

const NO_SECRET_ENV = { ...process.env, QKV_CLUSTER_SECRET: '', QKV_CLUSTER_SECRET_FILE: '' };

describe('admin endpoints need the cluster secret', () => {
  let cluster: ProcessCluster;
  let leader: string;
  let follower: string;

  beforeAll(async () => {
    cluster = await ProcessCluster.start({ nodes: 3, name: 'qkv-admin-auth' });
    leader = (await cluster.waitForLeader()).id;
    follower = cluster.nodes.find((n) => n.id !== leader)!.id;
  });
  afterAll(async () => cluster?.teardown());

  it('refuses plain and wrongly signed requests to every admin route with 401 QKV_AUTH_FAILED', async () => {
    const wrong = adminAuthorization('not-the-cluster-secret-0123456789');
    for (const id of [leader, follower]) {
      for (const [method, route, body] of ADMIN_ROUTES) {
        for (const authorization of ['', wrong, `Bearer ${TEST_SECRET}`]) {
          const r = await httpRequest(cluster.node(id).port, method, route, { headers: { authorization }, ...(body ? { body: JSON.stringify(body) } : {}) });
          expect(r.status, `${method} ${route} on ${id} with "${authorization.slice(0, 12)}"`).toBe(401);
          const answer = jsonOf<{ code: string; message: string }>(r);
          expect(answer.code).toBe('QKV_AUTH_FAILED');
          expect(answer.message).not.toContain(TEST_SECRET);
        }
      }
    }
    // Nothing changed: three voters, the same leader, the default snapshot rate.
    const members = jsonOf<{ voters: unknown[]; learners: unknown[] }>(await httpRequest(cluster.node(leader).port, 'GET', '/v1/admin/members'));
    expect(members.voters).toHaveLength(3);
    expect(members.learners).toHaveLength(0);
    const snaps = jsonOf<{ rateBytesPerSec: number }>(await httpRequest(cluster.node(leader).port, 'GET', '/v1/admin/snapshots'));
    expect(snaps.rateBytesPerSec).not.toBe(1);
    for (const id of [leader, follower]) expect(jsonOf<{ maintenance: boolean }>(await httpRequest(cluster.node(id).port, 'GET', '/v1/admin/maintenance')).maintenance).toBe(false);
    // Client routes stay open.
    expect((await httpRequest(cluster.node(follower).port, 'GET', '/v1/status')).status).toBe(200);
  });

  it('lets the CLI in with the secret from the environment or a file, and not without it', async () => {
    const endpoints = `--endpoints=${cluster.node(follower).address}`;
    const withEnv = await cli(['snapshot-rate', '123456', endpoints], { ...process.env, QKV_CLUSTER_SECRET: TEST_SECRET, QKV_CLUSTER_SECRET_FILE: '' });
    expect(withEnv.code, withEnv.stdout + withEnv.stderr).toBe(0);
    const rate = jsonOf<{ rateBytesPerSec: number }>(await httpRequest(cluster.node(follower).port, 'GET', '/v1/admin/snapshots'));
    expect(rate.rateBytesPerSec).toBe(123456);

    const file = path.join(mkdtempSync(path.join(tmpdir(), 'qkv-admin-secret-')), 'cluster-secret');
    writeFileSync(file, `${TEST_SECRET}\n`, { mode: 0o600 });
    const withFile = await cli(['member', 'list', endpoints, `--cluster-secret-file=${file}`], NO_SECRET_ENV);
    expect(withFile.code, withFile.stderr).toBe(0);
    expect(withFile.stdout).not.toContain('(not recorded yet)');

    const listWithout = await cli(['member', 'list', endpoints], NO_SECRET_ENV);
    expect(listWithout.stdout).toContain('(needs the cluster secret)');

    const without = await cli(['snapshot-rate', '1', endpoints], NO_SECRET_ENV);
    expect(without.code).toBe(1);
    expect(without.stdout).toContain('QKV_AUTH_FAILED');
    expect(jsonOf<{ rateBytesPerSec: number }>(await httpRequest(cluster.node(follower).port, 'GET', '/v1/admin/snapshots')).rateBytesPerSec).toBe(123456);
  });

  it('relays an authenticated request from a follower to the leader', async () => {
    // Retried while leadership moves on its own (a loaded machine): each attempt asks a current follower.
    const answer = await waitFor('a relayed leader transfer', async () => {
      const current = (await cluster.waitForLeader()).id;
      const via = cluster.nodes.find((n) => n.id !== current)!.id;
      const target = cluster.nodes.find((n) => n.id !== current && n.id !== via)!.id;
      const r = await httpRequest(cluster.node(via).port, 'POST', '/v1/admin/leader/transfer', { body: JSON.stringify({ id: target }), timeoutMs: 15_000 });
      return r.status === 200 ? { r, current, target } : undefined;
    }, 30_000);
    expect(answer.r.headers['x-qkv-forwarded-to']).toBe(answer.current);
    expect(jsonOf<{ leader: string }>(answer.r).leader).toBe(answer.target);
  });

  it('never writes the secret or the admin token to a log', () => {
    for (const n of cluster.nodes) {
      const log = readFileSync(n.logPath, 'utf8');
      expect(log.length).toBeGreaterThan(0);
      expect(log).not.toContain(TEST_SECRET);
      expect(log).not.toContain(adminToken(TEST_SECRET));
    }
  });
});
