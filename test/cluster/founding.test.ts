// Who a node is (docs/server.md, "Who a node is"): founding is explicit, every data directory has
// an incarnation id, and a voter that lost its disk comes back only through remove / add as
// learner / promote.
//
// The first case is the confirmed bug of issue 14: three nodes; n2 down; 50 writes acknowledged
// by n1 + n3; n1's data directory is lost; n1 and n2 restart with their usual command line. Before,
// n1 bootstrapped a fresh log, voted, and n1 + n2 elected a leader without the 50 writes (every
// one read as 404), and two nodes crashed when n3 returned.
import { spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MessageType } from '@quorumkv/raft';
import { encodeFrame } from '@quorumkv/transport';
import { forgedMessage } from '@quorumkv/jepsen-lite/forger';
import { CLI_PATH, ProcessCluster, TEST_SECRET, freePorts, httpRequest, sleep, waitFor } from '../harness/cluster.js';

const WRITES = 50;
const TICK_MS = 20;
const ELECTION_TICKS = 10;
/** Long enough for several elections at TICK_MS × ELECTION_TICKS (up to 2× randomized). */
const SEVERAL_ELECTIONS_MS = 8 * TICK_MS * ELECTION_TICKS * 2;

const clusters: ProcessCluster[] = [];
afterAll(async () => {
  for (const c of clusters) await c.teardown();
});

async function startCluster(name: string): Promise<ProcessCluster> {
  const c = await ProcessCluster.start({ name, tickMs: TICK_MS, electionTicks: ELECTION_TICKS });
  clusters.push(c);
  return c;
}

/** A peer hello built from its documented format (docs/transport.md), signed with `secret`. */
function helloHeader(from: string, to: string, incarnation: string, ts = Date.now()): string {
  const h = { v: 2, channel: 'raft', from, to, ts, nonce: randomBytes(16).toString('hex'), cluster: '', incarnation };
  const mac = createHmac('sha256', TEST_SECRET).update(JSON.stringify(['quorumkv-hello', h.v, h.channel, h.from, h.to, h.ts, h.nonce, h.cluster, h.incarnation])).digest('hex');
  return Buffer.from(JSON.stringify({ ...h, mac })).toString('base64url');
}

/**
 * Dials /raft with a hello and sends `frame` once open; resolves with the close code and reason
 * (or 'open' if still open after `holdMs`).
 */
function dialRaft(port: number, hello: string, holdMs = 1500, frame?: Uint8Array): Promise<{ code: number; reason: string } | 'open'> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/raft`, { headers: { 'x-quorumkv-hello': hello } });
    if (frame) ws.on('open', () => ws.send(frame));
    const t = setTimeout(() => {
      ws.terminate();
      resolve('open');
    }, holdMs);
    ws.on('error', () => undefined);
    ws.on('close', (code, reason) => {
      clearTimeout(t);
      resolve({ code, reason: reason.toString() });
    });
  });
}

function logOf(c: ProcessCluster, id: string): string {
  return readFileSync(c.node(id).logPath, 'utf8');
}

describe('a voter that lost its disk (issue 14, confirmed case)', () => {
  it('restarted with its usual command line it never founds or votes; every acknowledged write stays; it is replaced', async () => {
    const c = await startCluster('qkv-wiped');
    await c.guard(async () => {
      await c.waitForLeader();
      await c.stop('n2');
      const leader = (await c.waitForLeader({ among: ['n1', 'n3'] })).id;
      const acked = new Map<string, string>();
      for (let i = 0; i < WRITES; i++) {
        const r = await c.put(leader, `w/${i}`, `v${i}`);
        expect(r.status, r.body.toString()).toBe(200);
        acked.set(`w/${i}`, `v${i}`);
      }
      // n1's data directory is lost, n3 is down; n1 and n2 come back with their usual command line.
      await c.kill9('n1');
      await c.kill9('n3');
      c.wipe('n1');
      await c.restart('n2');

      // With the founding flag (the harness's usual command line): n2 knows n1 under its old
      // incarnation, so n1 refuses to start, naming n2 and the replace procedure.
      c.launch('n1');
      expect(await c.waitExit('n1')).toBe(3);
      expect(logOf(c, 'n1')).toMatch(/refusing to start: n2 belongs to a founded cluster in which n1 is incarnation/);
      expect(logOf(c, 'n1')).toMatch(/member remove n1.*member add n1 .* --learner.*member promote n1/s);

      // Without it: n1 starts empty and waits; n2 takes none of its votes, so no leader appears.
      await c.restart('n1', { initialClusterState: 'existing' });
      await sleep(SEVERAL_ELECTIONS_MS);
      const [s1, s2] = [await c.status('n1'), await c.status('n2')];
      expect(s1).toMatchObject({ leader: null, lastIndex: 0, members: [] });
      expect(s2?.leader).toBeNull();
      expect(logOf(c, 'n2')).toMatch(/refused n1's votes and acknowledgements: it is incarnation \w+, this node knows it as \w+/);
      // Nothing acknowledged reads as missing: without a quorum the answer is "unavailable".
      for (const key of [...acked.keys()].slice(0, 5)) expect((await c.get('n2', key, 'linearizable', 3000)).status).not.toBe(404);

      // The third node returns: n2 + n3 elect a leader that has every acknowledged write, and stay up.
      await c.restart('n3');
      const l2 = (await c.waitForLeader({ among: ['n2', 'n3'] })).id;
      for (const [k, v] of acked) {
        const r = await c.get(l2, k);
        expect(r.status, k).toBe(200);
        expect(r.body.toString(), k).toBe(v);
      }
      await sleep(SEVERAL_ELECTIONS_MS);
      expect(c.node('n2').proc).not.toBeNull();
      expect(c.node('n3').proc).not.toBeNull();
      expect((await c.put(l2, 'after', 'x')).status).toBe(200);

      // The replace procedure (admin HTTP): remove, start empty, add as learner, promote.
      await c.stop('n1');
      await c.replaceNode('n1');
      await c.waitConverged(20_000);
      for (const [k, v] of [...acked].slice(0, 10)) expect((await c.get('n1', k, 'stale')).body.toString()).toBe(v);
      const replaced = (await c.status('n1'))!;
      expect(replaced.members.filter((m) => m.voter).map((m) => m.id).sort()).toEqual(['n1', 'n2', 'n3']);
      // A voter under its own, recorded incarnation: it may campaign again (docs/server.md, "Who may vote").
      expect(replaced).toMatchObject({ votingSuspended: null, votingSuspendedReason: null });
    })();
  }, 90_000);
});

describe('founding, restart and hellos', () => {
  it('a fresh cluster founds; a restart resumes; other incarnations\' votes and acknowledgements and replayed hellos are refused', async () => {
    const c = await startCluster('qkv-found');
    await c.guard(async () => {
      const leader = (await c.waitForLeader()).id;
      expect((await c.put(leader, 'k', 'v')).status).toBe(200);
      // The replicated membership records every member's incarnation (the one in its data directory).
      const want = c.nodes.map((n) => ({ id: n.id, incarnation: c.incarnationOf(n.id) }));
      await waitFor('every incarnation recorded on every node', async () => {
        for (const n of c.nodes) {
          const m = JSON.parse((await httpRequest(n.port, 'GET', '/v1/admin/members')).body.toString()) as { voters: { id: string; incarnation?: string }[] };
          const got = m.voters.map((v) => ({ id: v.id, incarnation: v.incarnation })).sort((a, b) => a.id.localeCompare(b.id));
          if (JSON.stringify(got) !== JSON.stringify(want)) return undefined;
        }
        return true;
      });
      // Every member knows the cluster id, a founder or not (one replicated into adopts it from a hello).
      await waitFor('one cluster id on every node', async () => {
        const ids = new Set<unknown>();
        for (const n of c.nodes) ids.add((JSON.parse((await httpRequest(n.port, 'GET', '/v1/status')).body.toString()) as { clusterId: unknown }).clusterId);
        const [id] = [...ids];
        return ids.size === 1 && typeof id === 'string' && /^[0-9a-f]{32}$/.test(id) ? true : undefined;
      });
      const n2 = c.incarnationOf('n2');
      // An authenticated hello from "n2" with another incarnation is let in (it could be a leader
      // that replaced n2 while n1 was away), but none of its votes or acknowledgements counts:
      // responses with a far higher term, which would make n1 adopt that term, change nothing.
      const termBefore = (await c.status('n1'))!.term;
      const forged = [MessageType.HeartbeatResp, MessageType.AppResp, MessageType.VoteResp].map((type) => forgedMessage({ type, from: 'n2', to: 'n1', term: termBefore + 100 }));
      const impostor = await dialRaft(c.node('n1').port, helloHeader('n2', 'n1', randomBytes(16).toString('hex')), 1500, encodeFrame(forged));
      // (The real n2 redials when its connection is replaced by this one, and replaces it back: 4409.)
      expect(impostor === 'open' || impostor.code === 4409, JSON.stringify(impostor)).toBe(true);
      expect((await c.status('n1'))!.term).toBe(termBefore);
      expect(logOf(c, 'n1')).toMatch(/dropped a message of another incarnation/);
      // A valid hello of the real n2, captured now and replayed after n1 restarted.
      const captured = helloHeader('n2', 'n1', n2);
      await sleep(1100); // older than the transport's clock-skew margin (1 s) when n1 restarts
      for (const n of c.nodes) await c.stop(n.id);
      for (const n of c.nodes) await c.restart(n.id); // same command line, founding flag included
      const l2 = (await c.waitForLeader()).id;
      expect((await c.get(l2, 'k')).body.toString()).toBe('v');
      expect(logOf(c, 'n1')).toMatch(/--initial-cluster-state new ignored: the data directory has state; resuming/);
      const replay = await dialRaft(c.node('n1').port, captured);
      expect(replay).toMatchObject({ code: 4401 });
      expect((replay as { reason: string }).reason).toMatch(/before this node started/);
    })();
  }, 60_000);
});

describe('the cluster secret', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'qkv-secret-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const serve = (extra: string[], env: Record<string, string>) =>
    spawnSync(process.execPath, [CLI_PATH, 'serve', '--id', 'n1', '--listen', '127.0.0.1:1', '--peers', 'n1=127.0.0.1:1', '--data', path.join(dir, 'd'), ...extra], {
      env: { ...process.env, QKV_CLUSTER_SECRET: '', QKV_CLUSTER_SECRET_FILE: '', ...env },
      encoding: 'utf8',
      timeout: 10_000,
    });

  it('is refused on argv, as the deploy placeholder, and when missing, with errors that say where it goes', () => {
    const argv = serve(['--cluster-secret', 'a-perfectly-long-secret-0123'], {});
    expect(argv.status).toBe(2);
    expect(argv.stderr).toMatch(/--cluster-secret is not accepted: .*visible .*QKV_CLUSTER_SECRET.*--cluster-secret-file/);
    const placeholder = serve([], { QKV_CLUSTER_SECRET: 'change-me-to-a-long-random-string' });
    expect(placeholder.status).toBe(2);
    expect(placeholder.stderr).toMatch(/placeholder from deploy\/cluster.env.example/);
    const missing = serve([], {});
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/no cluster secret: the peer endpoint always requires one/);
    // --insecure allows plaintext off loopback (docs/security.md); it never makes the secret optional.
    const insecure = serve(['--insecure'], {});
    expect(insecure.status).toBe(2);
    expect(insecure.stderr).toMatch(/no cluster secret: the peer endpoint always requires one/);
    const offLoopback = serve(['--listen', '0.0.0.0:1'], { QKV_CLUSTER_SECRET: TEST_SECRET });
    expect(offLoopback.status).toBe(2);
    expect(offLoopback.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 without TLS.*--insecure/);
  });

  it('`quorumkv dev` makes one (0600, passed by environment), founds on the first start and resumes after Ctrl-C', async () => {
    const [base] = await freePorts(1);
    const data = path.join(dir, 'dev');
    const runDev = async () => {
      const p = spawn(process.execPath, [CLI_PATH, 'dev', '--nodes', '3', '--base-port', String(base), '--data', data], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (b: Buffer) => (out += b.toString()));
      const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
      await waitFor('the dev cluster', () => (out.includes('cluster running') ? true : undefined), 20_000).catch((e: Error) => {
        p.kill('SIGKILL');
        throw e;
      });
      return { p, exited };
    };
    const first = await runDev();
    try {
      await waitFor('a write', async () => ((await httpRequest(base!, 'PUT', '/v1/kv/dev-key', { body: 'dev-value' })).status === 200 ? true : undefined));
      expect(statSync(path.join(data, 'cluster-secret')).mode & 0o777).toBe(0o600);
      const secret = readFileSync(path.join(data, 'cluster-secret'), 'utf8').trim();
      const ps = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
      expect(ps.stdout).not.toContain(secret);
    } finally {
      first.p.kill('SIGINT');
      expect(await first.exited).toBe(0);
    }
    const second = await runDev();
    try {
      const r = await waitFor('the key after the restart', async () => {
        const g = await httpRequest(base!, 'GET', '/v1/kv/dev-key', { timeoutMs: 2000 });
        return g.status === 200 ? g : undefined;
      });
      expect(r.body.toString()).toBe('dev-value');
      expect(readFileSync(path.join(data, 'n1.log'), 'utf8')).toMatch(/ignored: the data directory has state; resuming/);
    } finally {
      second.p.kill('SIGINT');
      await second.exited;
    }
  }, 60_000);
});
