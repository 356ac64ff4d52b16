// deploy/swarm/quorumkv-stack.yml on a one-node Docker Swarm: `docker stack deploy --resolve-image
// never` brings the stack up as a three-node cluster; a killed task is rescheduled by Swarm on its
// volume and rejoins; a rolling upgrade (deploy/swarm/rolling-upgrade.mjs: `docker service
// update`, one node at a time, each caught up and healthy before the next) under a write load
// loses no acknowledged write and changes the leader at most once per node restarted. It prints
// the numbers (writes acknowledged, client errors, elections).
//
// The swarm is left as it was found: when the engine was not in a swarm, the test makes a
// one-node swarm (`docker swarm init --advertise-addr 127.0.0.1`) and leaves it at the end (and
// removes the docker_gwbridge network the init made); its stack, volumes, secret file and the
// upgrade image tag are removed either way. Needs a Docker
// engine and the node image (`bash .ci/docker.sh`); skipped without them unless QKV_REQUIRE_DOCKER=1.
import { connect, type KvClient } from '@quorumkv/client';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_IMAGE, REPO_ROOT, docker, dockerPreflight, freePorts, run, sleep, waitFor } from './docker-env.js';
import { WriteLoad, lostWrites } from './write-load.js';

const preflight = dockerPreflight();
const required = process.env.QKV_REQUIRE_DOCKER === '1';
if (!preflight.ok && !required) console.log(`[swarm test] SKIPPED: ${preflight.reason}`);

const STACK = `qkvswarm${process.pid}`;
const STACK_FILE = path.join(REPO_ROOT, 'deploy', 'swarm', 'quorumkv-stack.yml');
const UPGRADE_SCRIPT = path.join(REPO_ROOT, 'deploy', 'swarm', 'rolling-upgrade.mjs');
/** The "new version" the upgrade rolls out: the same image under another tag (a new spec for Swarm). */
const UPGRADE_IMAGE = `quorumkv/node:swarm-upgrade-${process.pid}`;
const IDS = ['n1', 'n2', 'n3'] as const;
/** Bound of each wait for the stack to converge. */
const CONVERGE_MS = 90_000;

interface Status {
  id: string;
  role: string;
  term: number;
  leader: string | null;
  commitIndex: number;
  appliedIndex: number;
  members: { id: string }[];
}

describe.skipIf(!preflight.ok)('quorumkv on Docker Swarm (deploy/swarm)', () => {
  let madeSwarm = false;
  /** Whether `docker swarm init` made the docker_gwbridge network (then it is removed at the end). */
  let madeGwBridge = false;
  let ports: number[] = [];
  let secretDir = '';
  let kv: KvClient | undefined;
  const address = (i: number) => `127.0.0.1:${ports[i]}`;

  async function statusOf(i: number): Promise<Status | null> {
    try {
      const r = await fetch(`http://${address(i)}/v1/status`, { signal: AbortSignal.timeout(2_000) });
      return r.ok ? ((await r.json()) as Status) : null;
    } catch {
      return null;
    }
  }

  /** The leader's status once all three answer, agree on it, list three members and are caught up. */
  async function healthy(): Promise<Status | undefined> {
    const sts = await Promise.all(IDS.map((_, i) => statusOf(i)));
    if (sts.some((s) => s === null)) return undefined;
    const all = sts as Status[];
    const leader = all.find((s) => s.role === 'leader');
    if (!leader || all.some((s) => s.leader !== leader.id || s.term !== leader.term || s.members.length !== 3)) return undefined;
    return all.every((s) => leader.commitIndex - s.appliedIndex <= 50) ? leader : undefined;
  }

  beforeAll(async () => {
    const state = (await docker('info', '--format', '{{.Swarm.LocalNodeState}}')).trim();
    if (state === 'inactive') {
      const hadGwBridge = (await docker('network', 'ls', '-q', '--filter', 'name=^docker_gwbridge$')).trim() !== '';
      await docker('swarm', 'init', '--advertise-addr', '127.0.0.1');
      madeSwarm = true;
      madeGwBridge = !hadGwBridge;
    }
    const host = (await docker('node', 'inspect', 'self', '--format', '{{.Description.Hostname}}')).trim();
    ports = await freePorts(3);
    secretDir = mkdtempSync(path.join(tmpdir(), 'qkv-swarm-'));
    writeFileSync(path.join(secretDir, 'cluster-secret'), randomBytes(24).toString('hex'), { mode: 0o600 });
    const env = {
      ...process.env,
      QKV_IMAGE: NODE_IMAGE,
      QKV_SECRET_FILE: path.join(secretDir, 'cluster-secret'),
      QKV_INSECURE: '1', // plaintext on one machine: the stack file refuses it otherwise
      QKV_UPDATE_MONITOR: '1s', // the script waits for health itself; a shorter watch keeps the test short
      ...Object.fromEntries(IDS.flatMap((id, i) => [[`QKV_NODE_N${i + 1}`, host], [`QKV_PORT_N${i + 1}`, String(ports[i])]])),
    };
    await run('docker', ['stack', 'deploy', '--resolve-image', 'never', '-c', STACK_FILE, STACK], { env, timeoutMs: 60_000 });
    await docker('tag', NODE_IMAGE, UPGRADE_IMAGE);
  }, 120_000);

  afterAll(async () => {
    await kv?.close().catch(() => undefined);
    await run('docker', ['stack', 'rm', STACK]).catch(() => undefined);
    // Volumes can go only once the stack's containers are gone.
    await waitFor('the stack containers to be gone', async () => ((await docker('ps', '-aq', '--filter', `label=com.docker.stack.namespace=${STACK}`)).trim() === '' ? true : undefined), 60_000).catch(() => undefined);
    for (const id of IDS) await docker('volume', 'rm', `${STACK}_${id}-data`).catch(() => undefined);
    await docker('rmi', UPGRADE_IMAGE).catch(() => undefined);
    if (madeSwarm) await docker('swarm', 'leave', '--force').catch(() => undefined);
    if (madeGwBridge) await docker('network', 'rm', 'docker_gwbridge').catch(() => undefined);
    if (secretDir) rmSync(secretDir, { recursive: true, force: true });
  }, 120_000);

  it('the stack comes up as a three-node cluster', async () => {
    const leader = await waitFor('the stack to elect a leader with three members', healthy, CONVERGE_MS);
    expect(leader.members.map((m) => m.id).sort()).toEqual([...IDS]);
    kv = await connect({ endpoints: IDS.map((_, i) => address(i)), timeoutMs: 8_000, attemptTimeoutMs: 1_000, connectTimeoutMs: 2_000 });
    await kv.put('swarm/hello', 'world');
    expect((await kv.get('swarm/hello'))?.text()).toBe('world');
  });

  it('a killed task is rescheduled on its volume and rejoins', async () => {
    const container = async () => (await docker('ps', '-q', '--filter', `label=com.docker.swarm.service.name=${STACK}_n3`)).trim();
    const before = await container();
    expect(before).not.toBe('');
    await docker('kill', before);
    for (let i = 0; i < 20; i++) await kv!.put(`swarm/during-kill/${i}`, `v${i}`);
    const after = await waitFor('Swarm to start a new n3 task', async () => {
      const c = await container();
      return c && c !== before ? c : undefined;
    }, CONVERGE_MS);
    console.log(`[swarm] n3's task ${before.slice(0, 12)} killed; Swarm started ${after.slice(0, 12)}`);
    await waitFor('n3 to rejoin and catch up', healthy, CONVERGE_MS);
    // Same volume: it came back as the same member (a new volume would have refused to start)
    // and holds what was written while it was down.
    expect((await statusOf(2))?.id).toBe('n3');
    await waitFor('n3 to serve the writes made while it was down', async () => {
      const r = await fetch(`http://${address(2)}/v1/kv/swarm%2Fduring-kill%2F19?consistency=stale`, { signal: AbortSignal.timeout(2_000) }).catch(() => null);
      return r?.ok && (await r.text()).includes('v19') ? true : undefined;
    }, 30_000);
  });

  it('a rolling upgrade under writes loses no acknowledged write, at most one leader change per node', async () => {
    const start = (await waitFor('a healthy cluster', healthy, CONVERGE_MS))!;
    const load = new WriteLoad(kv!, { prefix: 'swarm/upgrade', concurrency: 2, pauseMs: 20, writeTimeoutMs: 8_000 });
    await load.waitForMoreAcks(20, 30_000);
    const leaders: string[] = [start.id];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const l = (await Promise.all(IDS.map((_, i) => statusOf(i)))).find((x) => x?.role === 'leader');
        if (l && l.id !== leaders.at(-1)) leaders.push(l.id);
        await sleep(200);
      }
    })();
    const t0 = Date.now();
    // The script's admin steps run the CLI, which proves the cluster secret: hand it the file.
    const env = { ...process.env, QKV_CLUSTER_SECRET: '', QKV_CLUSTER_SECRET_FILE: path.join(secretDir, 'cluster-secret') };
    const out = await run('node', [UPGRADE_SCRIPT, '--stack', STACK, '--image', UPGRADE_IMAGE, '--endpoints', IDS.map((id, i) => `${id}=${address(i)}`).join(',')], { timeoutMs: 240_000, env });
    const upgradeMs = Date.now() - t0;
    await load.waitForMoreAcks(20, 30_000);
    await load.stop();
    watching = false;
    await watcher;
    const end = (await waitFor('a healthy cluster', healthy, CONVERGE_MS))!;
    const lost = await lostWrites(kv!, 'swarm/upgrade', load.acked);
    const elections = end.term - start.term;
    console.log(
      `[swarm] rolling upgrade of 3 nodes in ${(upgradeMs / 1000).toFixed(1)} s: ${load.acked.length} writes acknowledged, ` +
        `${load.failed} client errors, ${lost.length} acknowledged writes lost, leaders ${leaders.join(' -> ')} ` +
        `(${leaders.length - 1} changes seen), term ${start.term} -> ${end.term}\n${out}`,
    );
    for (const id of IDS) expect((await docker('service', 'inspect', '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}', `${STACK}_${id}`)).trim()).toBe(UPGRADE_IMAGE);
    expect(out).toContain('done: every member runs the new image');
    expect(out).not.toContain('warning: maintenance'); // on for the upgrade, off after, on every member
    expect(lost).toEqual([]);
    expect(load.acked.length).toBeGreaterThan(40);
    expect(elections).toBeLessThanOrEqual(IDS.length);
    expect(leaders.length - 1).toBeLessThanOrEqual(IDS.length);
  });
});

if (!preflight.ok && required) {
  describe('Docker is required here (QKV_REQUIRE_DOCKER=1)', () => {
    it('has a Docker engine and the node image for the Swarm test', () => {
      expect.fail(`[swarm test] cannot run: ${preflight.ok ? '' : preflight.reason}`);
    });
  });
}
