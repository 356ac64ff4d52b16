import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { joinerArgs } from '../src/db.js';
import type { ReplaceEnv } from '../src/replace.js';
import { replaceMember } from '../src/replace.js';

/** An admin API that answers each request from a script, keyed by "METHOD path", and logs them. */
async function fakeAdmin(script: Record<string, [number, string][]>): Promise<{ endpoint: string; log: string[]; close: () => Promise<void> }> {
  const log: string[] = [];
  const server = createServer((req, res) => {
    const key = `${req.method} ${req.url}`;
    log.push(key);
    const [status, code] = script[key]?.shift() ?? [200, ''];
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(code === '' ? { ok: true } : { code, message: code }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { endpoint: `127.0.0.1:${(server.address() as AddressInfo).port}`, log, close: () => new Promise((r) => server.close(() => r())) };
}

function env(endpoint: string, steps: string[], over: Partial<ReplaceEnv> = {}): ReplaceEnv {
  return {
    authorization: 'Bearer test-token',
    otherEndpoints: () => [endpoint],
    peerAddress: '127.0.0.1:9001',
    stop: async () => void steps.push('stop'),
    startJoiner: async () => void steps.push('start joiner'),
    log: () => undefined,
    sleep: async () => undefined,
    ...over,
  };
}

describe('replacing a member that lost its disk', () => {
  it('stops it, removes it, starts it empty as a joiner, adds it as a learner, promotes it once caught up', async () => {
    const admin = await fakeAdmin({
      'DELETE /v1/admin/members/n2': [[503, 'QKV_NOT_LEADER']],
      'POST /v1/admin/members/n2/promote': [[409, 'QKV_NOT_CAUGHT_UP'], [409, 'QKV_NOT_CAUGHT_UP']],
    });
    const steps: string[] = [];
    try {
      const note = await replaceMember('n2', env(admin.endpoint, steps, { log: (l) => steps.push(l) }));
      expect(note).toMatch(/^n2 replaced \(removed, joined empty, learner, promoted\) in \d+ ms$/);
      expect(admin.log).toEqual(['DELETE /v1/admin/members/n2', 'DELETE /v1/admin/members/n2', 'POST /v1/admin/members', 'POST /v1/admin/members/n2/promote', 'POST /v1/admin/members/n2/promote', 'POST /v1/admin/members/n2/promote']);
      expect(steps).toEqual([
        'stop',
        '# jepsen-lite: replace: quorumkv member remove n2',
        'start joiner',
        '# jepsen-lite: replace: quorumkv member add n2 127.0.0.1:9001 --learner',
        '# jepsen-lite: replace: quorumkv member promote n2',
      ]);
    } finally {
      await admin.close();
    }
  });

  it('takes "already removed" and "already a member" as done (an earlier attempt landed)', async () => {
    const admin = await fakeAdmin({ 'DELETE /v1/admin/members/n2': [[404, 'QKV_NOT_FOUND']], 'POST /v1/admin/members': [[409, 'QKV_CONFLICT']] });
    try {
      expect(await replaceMember('n2', env(admin.endpoint, []))).toMatch(/^n2 replaced/);
    } finally {
      await admin.close();
    }
  });

  it('says which step failed when the cluster cannot do it, and starts no joiner before the removal', async () => {
    const admin = await fakeAdmin({ 'DELETE /v1/admin/members/n2': Array.from({ length: 1000 }, () => [503, 'QKV_UNAVAILABLE'] as [number, string]) });
    const steps: string[] = [];
    try {
      const note = await replaceMember('n2', env(admin.endpoint, steps, { stepWaitMs: 50 }));
      expect(note).toMatch(/^replace n2 FAILED: quorumkv member remove n2 did not succeed within 50 ms \(.* answered 503 .*QKV_UNAVAILABLE/);
      expect(steps).toEqual(['stop']);
    } finally {
      await admin.close();
    }
  });

  it('starts the replacement with the usual command line minus the founding flag, plus --join', () => {
    expect(joinerArgs(['cli.js', 'serve', '--id', 'n1', '--initial-cluster-state', 'new', '--data', 'd'])).toEqual(['cli.js', 'serve', '--id', 'n1', '--data', 'd', '--join']);
    expect(joinerArgs(['serve', '--initial-cluster-state=new', '--id', 'n1'])).toEqual(['serve', '--id', 'n1', '--join']);
  });
});
