// Backup and restore with real processes: keys written through a session-keeping client (so the
// backup holds session records too), `quorumkv snapshot save` from a follower, `snapshot status`
// agreeing with what was saved, `snapshot restore` into three new data directories, and the new
// cluster started from them: its state hash (kv + sessions) equals the source's at the saved
// applied index, it has a different cluster id, and it accepts writes. A flipped body byte and a
// truncated file are refused by status and restore with a message naming the damage.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@quorumkv/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_ENV, CLI_PATH, ProcessCluster, httpRequest, jsonOf, waitFor } from '../harness/cluster.js';

const KEYS = 40;

/** Runs `quorumkv ARGS`; resolves with its exit code and output. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_PATH, ...args], { timeout: 30_000, env: CLI_ENV }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

async function stateHash(port: number): Promise<{ appliedIndex: number; stateHash: string }> {
  return jsonOf<{ appliedIndex: number; stateHash: string }>(await httpRequest(port, 'GET', '/v1/state-hash'));
}

describe('snapshot save / status / restore', () => {
  let source: ProcessCluster;
  let restored: ProcessCluster | undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'qkv-backup-'));
  const file = path.join(dir, 'backup.qkv');
  beforeAll(async () => {
    source = await ProcessCluster.start({ name: 'qkv-backup-src', tickMs: 20, electionTicks: 10 });
  });
  afterAll(async () => {
    await restored?.teardown();
    await source?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('restores a follower\'s backup into a new cluster with the same state and refuses damaged files', async () => {
    const leader = await source.waitForLeader();
    const kv = await connect({ endpoints: source.nodes.map((n) => n.address) });
    try {
      for (let i = 0; i < KEYS; i++) await kv.put(`bk/${i}`, `value ${i}`);
    } finally {
      await kv.close();
    }
    await source.waitConverged();
    const follower = source.nodes.find((n) => n.id !== leader.id)!;
    const saved = await cli(['snapshot', 'save', file, '--endpoints', follower.address]);
    expect(saved.code, saved.stderr).toBe(0);
    expect(saved.stderr).toContain(`from ${follower.id}`);
    const srcHash = await stateHash(follower.port);

    const st = await cli(['snapshot', 'status', file, '--json']);
    expect(st.code, st.stderr).toBe(0);
    const h = JSON.parse(st.stdout) as { appliedIndex: number; keys: number; sessionRecords: number; bytes: number; sha256: string; clusterId: string };
    expect(h.keys).toBe(KEYS);
    expect(h.sessionRecords).toBeGreaterThan(0);
    // No writes after the save: the follower's state is the saved one.
    expect(h.appliedIndex).toBe(srcHash.appliedIndex);

    restored = await ProcessCluster.start({
      name: 'qkv-backup-new',
      tickMs: 20,
      electionTicks: 10,
      prepare: async (nodes, peers) => {
        for (const n of nodes) {
          const r = await cli(['snapshot', 'restore', file, '--data', n.dataDir, '--id', n.id, '--peers', peers]);
          expect(r.code, r.stderr).toBe(0);
        }
        expect(existsSync(`${nodes[0]!.dataDir}.restoring`)).toBe(false);
        const again = await cli(['snapshot', 'restore', file, '--data', nodes[0]!.dataDir, '--id', nodes[0]!.id, '--peers', peers]);
        expect(again.code).not.toBe(0);
        expect(again.stderr).toContain('not empty');
      },
    });
    const newLeader = await restored.waitForLeader();
    await restored.waitConverged();
    // kv + sessions equal to the source's at the saved index (the new cluster's own entries —
    // its election and incarnation records — touch neither).
    for (const n of restored.nodes) expect((await stateHash(n.port)).stateHash).toBe(srcHash.stateHash);
    // The source's cluster id is in the data directory of every member: a founder wrote it, a
    // member replicated into while founding adopted it from a hello (docs/server.md, "Who a node
    // is"). The follower's backup records it.
    const sourceIds = new Set(source.nodes.map((n) => readFileSync(path.join(n.dataDir, 'CLUSTER_ID'), 'utf8').trim()));
    expect(sourceIds.size).toBe(1);
    const [sourceId] = [...sourceIds];
    expect(readFileSync(path.join(restored.node('n1').dataDir, 'CLUSTER_ID'), 'utf8').trim()).not.toBe(sourceId);
    expect(h.clusterId).toBe(sourceId);
    expect((await restored.get(newLeader.id, 'bk/7')).body.toString()).toContain('value 7');
    expect((await restored.put(newLeader.id, 'after-restore', 'x')).status).toBe(200);

    // Damage: one flipped byte in the body, then a truncated file.
    const size = statSync(file).size;
    const bytes = readFileSync(file);
    const flipped = path.join(dir, 'flipped.qkv');
    bytes[4096 + Math.floor((size - 4096) / 2)]! ^= 0x01;
    writeFileSync(flipped, bytes);
    const f = await cli(['snapshot', 'status', flipped]);
    expect(f.code).toBe(1);
    expect(f.stderr).toMatch(/damaged|checksum mismatch/);
    const fr = await cli(['snapshot', 'restore', flipped, '--data', path.join(dir, 'x'), '--id', 'n1', '--peers', 'n1=127.0.0.1:1']);
    expect(fr.code).toBe(1);
    const cut = path.join(dir, 'cut.qkv');
    writeFileSync(cut, readFileSync(file));
    truncateSync(cut, size - 100);
    const c = await cli(['snapshot', 'status', cut]);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain('truncated');
  }, 60_000);

  it('a directory restored with the OLD cluster\'s --peers cannot join it: the old members refuse it', async () => {
    // The mistake: n3's disk replaced by a restore of the old cluster's own backup, same id and peers.
    const leader = await source.waitForLeader();
    const victim = source.nodes.find((n) => n.id !== leader.id)!;
    await source.stop(victim.id);
    source.wipe(victim.id);
    const r = await cli(['snapshot', 'restore', file, '--data', victim.dataDir, '--id', victim.id, '--peers', source.peersFlag]);
    expect(r.code, r.stderr).toBe(0);
    await source.restart(victim.id);
    await waitFor('the old leader to log the refusal', () => (readFileSync(source.node(leader.id).logPath, 'utf8').includes('cluster id mismatch') ? true : undefined), 10_000);
    // The old cluster carries on without it (2 of 3), and the restored node follows no one.
    expect((await source.put(leader.id, 'still-writable', 'y')).status).toBe(200);
    const st = await source.status(victim.id);
    expect(st?.leader ?? null).toBeNull();
    const oldView = (await source.status(leader.id))!.members.find((m) => m.id === victim.id)!;
    expect(oldView.matchIndex ?? 0).toBeLessThan((await source.status(leader.id))!.commitIndex);
  }, 30_000);
});
