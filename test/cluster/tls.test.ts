// A three-node cluster with TLS everywhere and --client-cert-auth (certificates from
// `quorumkv certs init`): it elects and replicates over mutual TLS; a peer certificate from
// another CA, or one naming another node than the hello, is refused and logged; plain HTTP to the
// TLS port fails at once and leaves the node serving; clients without a certificate get 401;
// the client library and the CLI work with --cacert/--cert/--key; and every certificate — the CA
// included — is rotated in three steps under a write load without losing a request or a peer link.
import { execFile } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect } from '@quorumkv/client';
import { initDevCerts, peerServername } from '@quorumkv/server';
import { HELLO_HEADER, createHelloHeader } from '@quorumkv/transport';
import { CLI_PATH, ProcessCluster, TEST_SECRET, WriteLoad, httpRequest, jsonOf, verifyAcked, waitFor } from '../harness/cluster.js';

const run = promisify(execFile);

describe('TLS everywhere', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.start({ name: 'qkv-tls', tickMs: 20, electionTicks: 10, tls: { clientCertAuth: true } });
  });
  afterAll(async () => {
    await cluster?.teardown();
  });
  const guard = (fn: () => Promise<void>) => () => cluster.guard(fn)();
  const logOf = (id: string) => readFileSync(cluster.node(id).logPath, 'utf8');
  const count = (id: string, re: RegExp) => logOf(id).split('\n').filter((l) => re.test(l)).length;

  it('elects, replicates writes sent to every node (followers forward over HTTPS), and serves the client library and the CLI', guard(async () => {
    const leader = await cluster.waitForLeader();
    const load = new WriteLoad(cluster, { writers: 8, targets: () => cluster.nodes.map((n) => n.id), prefix: 'tls/', maxWritesPerWriter: 25 }).start();
    await load.waitAcked(200);
    await load.stop();
    expect(load.unknown).toEqual([]);
    expect(load.acked).toHaveLength(200);
    expect(load.acked.some((a) => a.sentTo !== leader.id && a.servedBy === leader.id)).toBe(true); // forwarded
    for (const n of cluster.nodes) expect(await verifyAcked(cluster, n.id, load.acked.slice(0, 50), 'stale')).toEqual([]);

    const tls = cluster.clientTls!;
    const kv = await connect({ endpoints: cluster.nodes.map((n) => n.address), tls: { ca: tls.ca, cert: tls.cert!, key: tls.key! } });
    try {
      await kv.put('tls/client', 'over wss');
      expect((await kv.get('tls/client'))?.text()).toBe('over wss');
    } finally {
      await kv.close();
    }
    const f = (name: string) => path.join(cluster.certsDir, name);
    const got = await run(process.execPath, [CLI_PATH, 'get', 'tls/client', '--endpoints', cluster.nodes[2]!.address, '--cacert', f('ca.crt'), '--cert', f('client.crt'), '--key', f('client.key')]);
    expect(got.stdout.trim()).toBe('over wss');
  }));

  it('refuses clients without a certificate: HTTPS gets 401 QKV_CLIENT_CERT_REQUIRED, the client library cannot connect', guard(async () => {
    const n1 = cluster.node('n1');
    const r = await httpRequest(n1.port, 'GET', '/v1/status', { tls: { ca: cluster.clientTls!.ca } });
    expect(r.status).toBe(401);
    expect(jsonOf<{ code: string }>(r).code).toBe('QKV_CLIENT_CERT_REQUIRED');
    await expect(connect({ endpoints: [n1.address], tls: { ca: cluster.clientTls!.ca }, connectTimeoutMs: 1500 })).rejects.toThrow();
  }));

  it('plain HTTP and plain WebSocket to the TLS port fail at once; the node keeps serving', guard(async () => {
    const n1 = cluster.node('n1');
    const started = Date.now();
    await expect(httpRequest(n1.port, 'GET', '/health', { timeoutMs: 3000 })).rejects.toThrow(/socket hang up|ECONNRESET/);
    const ws = new WebSocket(`ws://127.0.0.1:${n1.port}/raft`);
    const wsFailed = await new Promise<string>((resolve) => {
      ws.once('error', (e) => resolve(e.message));
      ws.once('open', () => resolve('opened'));
    });
    expect(wsFailed).not.toBe('opened');
    expect(Date.now() - started).toBeLessThan(2500);
    expect((await cluster.request(n1.port, 'GET', '/health')).status).toBe(200);
    await waitFor('the failed handshakes in the log', () => (count('n1', /TLS handshake failed/) > 0 ? true : undefined), 3000);
    const metrics = (await cluster.request(n1.port, 'GET', '/metrics')).body.toString();
    expect(Number(/^qkv_tls_handshake_failures_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    const expiry = Number(/^qkv_tls_certificate_expiry_timestamp_seconds\{cert="peer"\} (\d+)/m.exec(metrics)?.[1]);
    expect(expiry * 1000).toBeGreaterThan(Date.now() + 30 * 86_400_000); // certs init: 825 days
  }));

  it('refuses a peer certificate from another CA, or one naming another node than the hello, and logs why', guard(async () => {
    const n1 = cluster.node('n1');
    const status = await cluster.status('n1');
    const clusterId = (status as unknown as { clusterId: string }).clusterId;
    const foreign = initDevCerts({ nodes: ['n2'], outDir: path.join(cluster.dir, 'foreign') });
    const ours = (id: string) => ({ cert: readFileSync(path.join(cluster.certsDir, `${id}.crt`)), key: readFileSync(path.join(cluster.certsDir, `${id}.key`)) });
    const probe = (cert: { cert: Buffer; key: Buffer }) =>
      new Promise<{ code: number; reason: string; answered: boolean }>((resolve) => {
        const hello = createHelloHeader({ from: 'n2', to: 'n1', channel: 'probe', clusterSecret: TEST_SECRET, nowMs: Date.now(), clusterId, incarnation: cluster.incarnationOf('n2') });
        // What is tested is n1's check of this certificate; n1's own is not checked here.
        const tlsOptions: ConnectionOptions = { ...cert, servername: peerServername('n2'), rejectUnauthorized: false };
        const ws = new WebSocket(`wss://127.0.0.1:${n1.port}/raft`, { headers: { [HELLO_HEADER]: hello }, ...tlsOptions });
        let answered = false;
        ws.on('message', () => (answered = true));
        ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), answered }));
        ws.once('error', () => undefined);
      });
    const control = await probe(ours('n2'));
    expect(control.answered).toBe(true); // the same hello with n2's own certificate is answered
    const otherCa = await probe({ cert: readFileSync(foreign.nodes.n2!.cert), key: readFileSync(foreign.nodes.n2!.key) });
    expect(otherCa).toMatchObject({ code: 4403, answered: false });
    expect(otherCa.reason).toMatch(/peer certificate refused: certificate not trusted/);
    const otherNode = await probe(ours('n3'));
    expect(otherNode).toMatchObject({ code: 4403, answered: false });
    expect(otherNode.reason).toMatch(/not the hello's node id n2/);
    await waitFor('both refusals in the log', () => (count('n1', /refused peer connection.*|peer certificate refused/) >= 2 ? true : undefined), 3000);
    expect(logOf('n1')).toMatch(/"reason":"peer certificate refused: certificate not trusted: UNABLE_TO_VERIFY_LEAF_SIGNATURE","peer":"n2","msg":"refused peer connection"/);
  }));

  it('rotates every certificate, the CA included, under a write load: no request lost, no peer link dropped', guard(async () => {
    const dir = cluster.certsDir;
    const next = initDevCerts({ nodes: cluster.nodes.map((n) => n.id), outDir: path.join(cluster.dir, 'next') });
    const oldCa = readFileSync(path.join(dir, 'ca.crt'), 'utf8');
    const replace = (name: string, content: string | Buffer) => {
      writeFileSync(path.join(dir, `${name}.tmp`), content);
      renameSync(path.join(dir, `${name}.tmp`), path.join(dir, name)); // as a deploy tool swaps files
    };
    const reloads = (id: string) => count(id, /"msg":"TLS certificates reloaded"/);
    const peerDrops = () => cluster.nodes.reduce((s, n) => s + count(n.id, /peer refused or closed the link|refused peer connection/), 0);
    const waitReloads = (n: number) => Promise.all(cluster.nodes.map((x) => waitFor(`${x.id} reload #${n}`, () => (reloads(x.id) >= n ? true : undefined), 10_000)));
    const load = new WriteLoad(cluster, { writers: 8, targets: () => cluster.nodes.map((n) => n.id), prefix: 'rot/', maxWritesPerWriter: 100_000, requestTimeoutMs: 5000 }).start();
    try {
      await load.waitAcked(50);
      const dropsBefore = peerDrops();
      // 1. Trust both CAs everywhere.
      replace('ca.crt', oldCa + readFileSync(next.caCert, 'utf8'));
      await waitReloads(1);
      cluster.reloadClientTls();
      // 2. New certificates from the new CA (key first: the node refuses the mismatched pair and waits).
      for (const n of cluster.nodes) {
        replace(`${n.id}.key`, readFileSync(next.nodes[n.id]!.key));
        replace(`${n.id}.crt`, readFileSync(next.nodes[n.id]!.cert));
      }
      replace('client.key', readFileSync(next.client.key));
      replace('client.crt', readFileSync(next.client.cert));
      await waitReloads(2);
      cluster.reloadClientTls();
      // 3. Drop the old CA.
      replace('ca.crt', readFileSync(next.caCert));
      await waitReloads(3);
      cluster.reloadClientTls();
      const acked = load.acked.length;
      await load.waitAcked(acked + 50);
      expect(peerDrops()).toBe(dropsBefore);
    } finally {
      await load.stop();
    }
    expect([...load.failuresByKind]).toEqual([]);
    expect(load.unknown).toEqual([]);
    const metrics = (await cluster.request(cluster.node('n2').port, 'GET', '/metrics')).body.toString();
    expect(Number(/^qkv_tls_reloads_total\{result="ok"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3);
    // New connections use the new certificates: SIGHUP re-reads them, and a restarted node rejoins.
    cluster.node('n1').proc!.kill('SIGHUP');
    await waitFor('the SIGHUP reload', () => (/"reason":"SIGHUP".*"msg":"TLS certificates reloaded"/.test(logOf('n1')) ? true : undefined), 5000);
    const follower = (await cluster.statuses()).find((s) => s.role !== 'leader')!.id;
    await cluster.stop(follower);
    await cluster.restart(follower);
    const after = await cluster.waitForLeader();
    await waitFor(`${follower} to catch up`, async () => ((await cluster.status(follower))?.appliedIndex ?? 0) >= after.commitIndex ? true : undefined, 10_000);
    expect(await verifyAcked(cluster, follower, load.acked, 'stale')).toEqual([]);
  }));
});
