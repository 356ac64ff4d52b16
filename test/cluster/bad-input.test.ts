// Hostile and broken input against a live node: garbage and oversized WebSocket frames on /raft
// and /client, unauthenticated peers (no hello, wrong secret, unknown id, a whole node started
// with the wrong secret), bad HTTP bodies, keys, routes, methods and request lines. Each gets its
// error, and afterwards every node is still running and takes writes.
import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { PROTOCOL_VERSION as CLIENT_PROTOCOL_VERSION, decodeResponseFrame, encodeFrame } from '@quorumkv/protocol';
import { mulberry32 } from '@quorumkv/testkit';
import { ProcessCluster, TEST_SECRET, httpRequest, jsonOf, sleep, waitFor, type HttpResult } from '../harness/cluster.js';

/** Seed of the garbage frames and bodies; a failure prints the command that replays it. */
const SEED = Number(process.env['QKV_SEED'] ?? 20261122);
const REPLAY = `replay: QKV_SEED=${SEED} pnpm vitest run --project cluster test/cluster/bad-input.test.ts`;
const random = mulberry32(SEED);
/** `n` seeded random bytes. */
function garbage(n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
}

/** The peer transport's default frame limit (packages/transport/src/limits.ts). */
const RAFT_MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** The /client frame limit the server configures with default key/value limits (server.ts). */
const CLIENT_MAX_FRAME_BYTES = 2 * 1024 * 1024;
const MAX_VALUE_BYTES = 1024 * 1024;
const MAX_KEY_BYTES = 4096;

/** A signed peer hello header, built independently of the transport's code (its documented format). */
function helloHeader(from: string, to: string, secret: string | null, overrides: Record<string, unknown> = {}): string {
  // cluster '' = a dialler without a cluster id (like a node waiting to join): accepted by any node.
  // incarnation: a peer's real one (ProcessCluster.incarnationOf) is needed to be accepted as it.
  const h = { v: 2, channel: 'raft', from, to, ts: Date.now(), nonce: randomBytes(16).toString('hex'), cluster: '', incarnation: '0'.repeat(32), ...overrides };
  const mac =
    secret === null
      ? ''
      : createHmac('sha256', secret).update(JSON.stringify(['quorumkv-hello', h.v, h.channel, h.from, h.to, h.ts, h.nonce, h.cluster, h.incarnation])).digest('hex');
  return Buffer.from(JSON.stringify({ ...h, mac })).toString('base64url');
}

interface WsOutcome {
  code: number;
  reason: string;
}

/** Opens a WebSocket; `act` runs once it is open; resolves with the close code and reason (bounded). */
function wsSession(url: string, headers: Record<string, string>, act: (ws: WebSocket) => void | Promise<void>, timeoutMs = 10_000): Promise<WsOutcome> {
  return new Promise<WsOutcome>((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${url}: no close within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on('error', () => undefined); // the close event carries the outcome
    ws.on('open', () => {
      Promise.resolve(act(ws)).catch((e: unknown) => {
        clearTimeout(timer);
        ws.terminate();
        reject(e as Error);
      });
    });
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      resolve({ code: -(res.statusCode ?? 0), reason: `HTTP ${res.statusCode}` });
      ws.terminate();
    });
  });
}

/** Writes raw bytes on a TCP connection and returns what the server sent before closing (bounded). */
function rawExchange(port: number, bytes: Buffer | string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const timer = setTimeout(done, timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', done);
    s.on('close', done);
    s.on('error', done);
  });
}

function expectError(r: HttpResult, status: number, code: string): void {
  expect(r.status, r.body.toString()).toBe(status);
  expect(r.headers['content-type']).toMatch(/application\/json/);
  const j = jsonOf<{ code: string; message: string }>(r);
  expect(j.code).toBe(code);
  expect(typeof j.message).toBe('string');
}

describe('bad input against a live node', () => {
  let c: ProcessCluster;
  let target: { id: string; port: number };
  beforeAll(async () => {
    c = await ProcessCluster.start({ name: 'qkv-bad-input', tickMs: 20, electionTicks: 10 });
    const l = await c.waitForLeader();
    target = { id: l.id, port: c.node(l.id).port };
  });
  afterAll(async () => {
    await c?.teardown();
  });

  /** Every node runs and a write through each of them is acknowledged. */
  async function clusterStillServes(tag: string): Promise<void> {
    for (const n of c.nodes) expect(n.proc, `${n.id} process`).not.toBeNull();
    for (const n of c.nodes) {
      const r = await waitFor(`a write via ${n.id}`, async () => {
        const x = await c.put(n.id, `alive/${tag}/${n.id}`, 'yes');
        return x.status === 200 ? x : undefined;
      });
      expect(r.status).toBe(200);
      // Retried: a ReadIndex request sent while a peer link is reconnecting is lost and answered
      // 504 only at its deadline (node-bugs.md B2).
      const g = await waitFor(`a linearizable read via ${n.id}`, async () => {
        const x = await c.get(n.id, `alive/${tag}/${n.id}`);
        return x.status === 503 || x.status === 504 ? undefined : x;
      }, 30_000);
      expect(g.body.toString()).toBe('yes');
    }
  }

  it('HTTP: oversized values, bad keys, unknown routes, wrong methods and bad parameters get their errors', () =>
    c.guard(async () => {
      const p = target.port;
      // Values: the limit is accepted, one byte more is 413 (declared length and chunked body).
      expect((await httpRequest(p, 'PUT', '/v1/kv/big-ok', { body: Buffer.alloc(MAX_VALUE_BYTES, 1), timeoutMs: 20_000 })).status).toBe(200);
      expectError(await httpRequest(p, 'PUT', '/v1/kv/big', { body: Buffer.alloc(MAX_VALUE_BYTES + 1, 1) }), 413, 'QKV_TOO_LARGE');
      const chunked = await new Promise<HttpResult>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: p, method: 'PUT', path: '/v1/kv/big-chunked', agent: false, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
        });
        req.on('error', reject);
        for (let i = 0; i < 5; i++) req.write(Buffer.alloc(256 * 1024, 2));
        req.end();
      });
      expectError(chunked, 413, 'QKV_TOO_LARGE');
      expect((await c.get(target.id, 'big-chunked')).status).toBe(404);

      // Keys.
      expectError(await httpRequest(p, 'PUT', '/v1/kv/', { body: 'v' }), 400, 'QKV_INVALID_ARGUMENT');
      expectError(await httpRequest(p, 'GET', '/v1/kv/'), 400, 'QKV_INVALID_ARGUMENT');
      expect((await httpRequest(p, 'PUT', `/v1/kv/${'k'.repeat(MAX_KEY_BYTES)}`, { body: 'v' })).status).toBe(200);
      expectError(await httpRequest(p, 'PUT', `/v1/kv/${'k'.repeat(MAX_KEY_BYTES + 1)}`, { body: 'v' }), 400, 'QKV_INVALID_ARGUMENT');
      // Multi-byte: 2049 x 'é' is 4098 bytes in UTF-8.
      expectError(await httpRequest(p, 'PUT', `/v1/kv/${encodeURIComponent('é'.repeat(2049))}`, { body: 'v' }), 400, 'QKV_INVALID_ARGUMENT');
      for (const bad of ['%ZZ', 'a%', '%E0%A4%A', '%C0%AF', '%FF']) {
        expectError(await httpRequest(p, 'PUT', `/v1/kv/${bad}`, { body: 'v' }), 400, 'QKV_INVALID_ARGUMENT');
      }
      // Routes and methods.
      expectError(await httpRequest(p, 'GET', '/nope'), 404, 'QKV_NOT_FOUND');
      expectError(await httpRequest(p, 'GET', '/v1/nope'), 404, 'QKV_NOT_FOUND');
      expectError(await httpRequest(p, 'POST', '/v1/kv/a', { body: 'v' }), 405, 'QKV_METHOD_NOT_ALLOWED');
      expectError(await httpRequest(p, 'PATCH', '/v1/kv/a', { body: 'v' }), 405, 'QKV_METHOD_NOT_ALLOWED');
      expectError(await httpRequest(p, 'PUT', '/v1/kv', { body: 'v' }), 405, 'QKV_METHOD_NOT_ALLOWED');
      expectError(await httpRequest(p, 'DELETE', '/v1/status'), 405, 'QKV_METHOD_NOT_ALLOWED');
      expectError(await httpRequest(p, 'POST', '/health'), 405, 'QKV_METHOD_NOT_ALLOWED');
      // Parameters.
      expectError(await httpRequest(p, 'GET', '/v1/kv/a?consistency=eventual'), 400, 'QKV_INVALID_ARGUMENT');
      expectError(await httpRequest(p, 'PUT', '/v1/kv/a?ifModRevision=abc', { body: 'v' }), 400, 'QKV_INVALID_ARGUMENT');
      expectError(await httpRequest(p, 'GET', '/v1/kv?prefix=a&limit=0'), 400, 'QKV_INVALID_ARGUMENT');
      expectError(await httpRequest(p, 'GET', '/v1/kv?prefix=a&limit=-1'), 400, 'QKV_INVALID_ARGUMENT');
      expectError(await httpRequest(p, 'GET', '/v1/kv?prefix=a&limit=99999999'), 400, 'QKV_INVALID_ARGUMENT');
      await clusterStillServes('http');
    })());

  it('HTTP: malformed request lines and headers get 400 and the connection is closed', () =>
    c.guard(async () => {
      const p = target.port;
      for (const junk of [
        'BLAH\r\n\r\n',
        'GET /v1/status HTTP/9.9\r\n\r\n',
        'GET /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
        'GET /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
        garbage(2048).toString('latin1').replace(/^[A-Z]/, '\x00'),
      ]) {
        const answer = await rawExchange(p, Buffer.from(junk, 'latin1'));
        // Either a 400 or a plain close, never a hang (rawExchange is bounded) and never a 200.
        expect(answer === '' || answer.startsWith('HTTP/1.1 400'), `${REPLAY}: ${JSON.stringify(answer.slice(0, 80))}`).toBe(true);
      }
      // A WebSocket upgrade on an unknown path, and a broken upgrade on /raft and /client.
      expect(await rawExchange(p, 'GET /other HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')).toMatch(/^HTTP\/1.1 404/);
      for (const path of ['/raft', '/client']) {
        expect(await rawExchange(p, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`)).toMatch(/^HTTP\/1.1 400/);
      }
      await clusterStillServes('http-raw');
    })());

  it('/raft: unauthenticated, unknown and malformed peers are closed with a reason', () =>
    c.guard(async () => {
      const url = `ws://127.0.0.1:${target.port}/raft`;
      const other = c.nodes.find((n) => n.id !== target.id)!.id;
      const hold = (ws: WebSocket) => void ws; // send nothing; the node decides
      const none = await wsSession(url, {}, hold);
      expect(none.code).toBe(4401);
      const wrong = await wsSession(url, { 'x-quorumkv-hello': helloHeader(other, target.id, 'not-the-cluster-secret-at-all') }, hold);
      expect(wrong).toMatchObject({ code: 4401 });
      expect(wrong.reason).toMatch(/secret/);
      const unsigned = await wsSession(url, { 'x-quorumkv-hello': helloHeader(other, target.id, null) }, hold);
      expect(unsigned.code).toBe(4401);
      const garbled = await wsSession(url, { 'x-quorumkv-hello': '!!!not base64 json!!!' }, hold);
      expect(garbled.code).toBe(4400);
      const stale = await wsSession(url, { 'x-quorumkv-hello': helloHeader(other, target.id, TEST_SECRET, { ts: Date.now() - 10 * 60_000 }) }, hold);
      expect(stale.code).toBe(4401);
      const unknown = await wsSession(url, { 'x-quorumkv-hello': helloHeader('n9', target.id, TEST_SECRET) }, hold);
      expect(unknown.code).toBe(4403);
      const misaddressed = await wsSession(url, { 'x-quorumkv-hello': helloHeader(other, 'n9', TEST_SECRET) }, hold);
      expect(misaddressed.code).toBe(4403);
      await clusterStillServes('raft-auth');
    })());

  it('/raft: garbage, text and oversized frames from an authenticated peer close that connection only', () =>
    c.guard(async () => {
      const url = `ws://127.0.0.1:${target.port}/raft`;
      const other = c.nodes.find((n) => n.id !== target.id)!.id;
      const signed = () => ({ 'x-quorumkv-hello': helloHeader(other, target.id, TEST_SECRET, { incarnation: c.incarnationOf(other) }) });
      // We speak as peer `other`, whose real connection ours replaces; `other` is frozen meanwhile
      // so its reconnects cannot replace ours in turn (close 4409) before the node judges our frame.
      c.pause(other);
      try {
        const junk = await wsSession(url, signed(), (ws) => ws.send(garbage(300), { binary: true }));
        expect(junk.code, REPLAY).toBe(4400);
        const msgpackJunk = await wsSession(url, signed(), (ws) => ws.send(Buffer.from([0x93, 0x01, 0xc1, 0xff]), { binary: true }));
        expect(msgpackJunk.code).toBe(4400);
        const text = await wsSession(url, signed(), (ws) => ws.send('hello'));
        expect(text.code).toBe(4400);
        const big = await wsSession(url, signed(), (ws) => ws.send(Buffer.alloc(RAFT_MAX_FRAME_BYTES + 1024, 7), { binary: true }));
        expect(big.code).toBe(1009);
      } finally {
        c.resume(other);
      }
      // The real peer reconnects and the cluster goes on.
      await clusterStillServes('raft-frames');
    })());

  it('/client: garbage, text, oversized frames and requests before hello close the connection; bad arguments get an answer', () =>
    c.guard(async () => {
      const url = `ws://127.0.0.1:${target.port}/client`;
      const junk = await wsSession(url, {}, (ws) => ws.send(garbage(100), { binary: true }));
      expect(junk.code, REPLAY).toBe(1002);
      // A frame whose decode error quotes ~170 bytes of multi-byte text: the close reason must be
      // cut by bytes (ws throws on a reason over 123 bytes, which once took the node down).
      const euro = new TextEncoder().encode('€'.repeat(40));
      const quoted = await wsSession(url, {}, (ws) => ws.send(Uint8Array.from([0xd9, euro.length, ...euro, 0x00]), { binary: true }));
      expect(quoted.code).toBe(1002);
      const text = await wsSession(url, {}, (ws) => ws.send('{"op":"hello"}'));
      expect(text.code).toBe(1003);
      const big = await wsSession(url, {}, (ws) => ws.send(Buffer.alloc(CLIENT_MAX_FRAME_BYTES + 1024, 7), { binary: true }));
      expect(big.code).toBe(1009);
      const early = await wsSession(url, {}, (ws) => ws.send(encodeFrame({ op: 'get', id: 1, key: new TextEncoder().encode('a'), consistency: 'stale' }, 1 << 20)));
      expect(early.code).toBe(1002);
      const wrongVersion = await wsSession(url, {}, (ws) => ws.send(encodeFrame({ op: 'hello', id: 1, version: 999 }, 1 << 20)));
      expect(wrongVersion.code).toBe(1002);

      // A well-framed request with bad arguments is answered with an error; the connection stays
      // and serves the next request.
      const answers: unknown[] = [];
      const ok = await wsSession(url, {}, async (ws) => {
        const next = () => new Promise<unknown>((resolve) => ws.once('message', (d: Buffer) => resolve(decodeResponseFrame(new Uint8Array(d), 1 << 22))));
        ws.send(encodeFrame({ op: 'hello', id: 1, version: CLIENT_PROTOCOL_VERSION }, 1 << 20));
        answers.push(await next());
        ws.send(encodeFrame({ op: 'get', id: 2, key: new Uint8Array(0), consistency: 'stale' }, 1 << 20));
        answers.push(await next());
        ws.send(encodeFrame({ op: 'get', id: 3, key: new TextEncoder().encode('alive/raft-frames/n1'), consistency: 'linearizable' }, 1 << 20));
        answers.push(await next());
        ws.close(1000, 'done');
      });
      expect(ok.code).toBe(1000);
      expect(answers[0]).toMatchObject({ id: 1, ok: true });
      expect(answers[1]).toMatchObject({ id: 2, ok: false, error: { code: 'QKV_INVALID_ARGUMENT' } });
      expect(answers[2]).toMatchObject({ id: 3, ok: true });
      await clusterStillServes('client');
    })());

  it('a whole node started with the wrong cluster secret is refused by its peers; with the right one it catches up', () =>
    c.guard(async () => {
      const victim = c.nodes.find((n) => n.id !== target.id)!.id;
      // SIGTERM is a graceful stop: exit code 0.
      expect(await c.stop(victim)).toBe(0);
      await c.restart(victim, { secret: 'a-wrong-cluster-secret-0123456789' });
      // The other two keep serving; the impostor learns nothing: no leader, nothing applied.
      const others = c.nodes.map((n) => n.id).filter((id) => id !== victim);
      // The stopped node may have been the leader: the other two elect one first.
      await c.waitForLeader({ among: others });
      for (const id of others) expect((await c.put(id, `while-impostor/${id}`, 'v')).status).toBe(200);
      await sleep(1000);
      const st = await c.status(victim);
      expect(st?.leader).toBeNull();
      expect((await c.get(victim, `while-impostor/${others[0]}`, 'stale')).status).toBe(404);
      await c.stop(victim);
      await c.restart(victim);
      await c.waitConverged(20_000);
      expect((await c.get(victim, `while-impostor/${others[0]}`, 'stale')).body.toString()).toBe('v');
      await clusterStillServes('secret');
    })(), 60_000);
});
