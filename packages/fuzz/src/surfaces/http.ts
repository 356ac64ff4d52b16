// HTTP paths, headers and bodies against a real node started in-process (one founding member on
// 127.0.0.1, LevelDB in a temporary directory): each input is one raw HTTP/1.1 request sent on
// its own TCP connection. Generated requests use the node's routes, methods, query parameters,
// headers (Content-Length right and wrong, the admin token right, wrong and absent) and bodies,
// and half of them are raw-mutated bytes; a fifth are WebSocket upgrades of /raft (hello headers)
// and /client (followed by client frames). Invariants: every request gets an answer or a closed
// connection within RESPONSE_TIMEOUT_MS; an error answered by the API is JSON with a QKV_ code
// and never QKV_INTERNAL (500); the node keeps answering GET /v1/status.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { HELLO_HEADER, adminAuthorization, createHelloHeader } from '@quorumkv/transport';
import { createSinkLogger, parseServeConfig, startServer, type RunningServer } from '@quorumkv/server';
import { FuzzViolation, type FuzzTarget, type Outcome, type Surface } from '../runner.js';
import { showBytes, withMutation } from '../mutate.js';
import { clientFrameSurface } from './client-frame.js';

const SECRET = 'fuzz-http-secret-0123456789abcdef';
/** Longest wait for an answer or a close. */
const RESPONSE_TIMEOUT_MS = 5_000;
/** The hello clock of generated upgrades: fixed, so a run replays (such hellos are stale). */
const UPGRADE_CLOCK_MS = 1_700_000_000_000;
/** Most response bytes kept per request (a backup stream can be long; the rest is drained). */
const RESPONSE_KEEP_BYTES_MAX = 64 * 1024;

const ROUTES = [
  '/v1/kv/a', '/v1/kv/%00', '/v1/kv/%ZZ', '/v1/kv/', '/v1/kv', '/v1/kv/a/b', '/v1/txn', '/v1/compact', '/v1/status', '/v1/state-hash', '/health', '/ready', '/metrics', '/ui', '/', '/v1/cluster', '/v1/events',
  '/v1/admin/members', '/v1/admin/members/n1', '/v1/admin/members/n9/promote', '/v1/admin/members/n1/zone', '/v1/admin/leader/transfer', '/v1/admin/snapshot-rate',
  '/v1/admin/snapshots', '/v1/admin/snapshot', '/v1/admin/faults', '/raft', '/client', '//v1/kv/a', '/v1/kv/..%2f..%2fetc',
];
/** Routes that may carry the right admin token: none of them waits long (member add waits for catch-up). */
const TOKEN_SAFE = new Set(['/v1/admin/members', '/v1/admin/snapshot-rate', '/v1/admin/snapshots', '/v1/admin/snapshot', '/v1/admin/leader/transfer', '/v1/compact', '/v1/admin/members/n9/promote', '/v1/admin/faults']);
const QUERY_NAMES = ['revision', 'prefix', 'limit', 'consistency', 'encoding', 'start', 'end', 'after', 'ifModRevision', 'timeoutMs', 'x'];
const QUERY_VALUES = ['0', '1', '-1', '10000', '10001', '9007199254740993', '1.5', '', 'stale', 'linearizable', 'base64', 'a', '%', '%FF', 'YQ==', '\u00e9'];

/** Mostly `right`, sometimes `other`: most requests are well-formed, so handlers' success paths run too. */
const mostly = <T>(right: fc.Arbitrary<T>, other: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: right }, { weight: 1, arbitrary: other });
const method = mostly(fc.constantFrom('GET', 'GET', 'GET', 'PUT', 'POST', 'DELETE'), fc.oneof(fc.constantFrom('HEAD', 'OPTIONS', 'PATCH'), fc.stringMatching(/^[A-Z]{1,8}$/)));
const query = mostly(fc.constant([] as [string, string][]), fc.array(fc.tuple(fc.constantFrom(...QUERY_NAMES), fc.oneof(fc.constantFrom(...QUERY_VALUES), fc.string({ maxLength: 8 }))), { maxLength: 3 }));
const body = fc.oneof(
  fc.constant(''),
  fc.constantFrom('{"compare":[],"success":[{"put":{"key":"a","value":"b"}}],"failure":[]}', '{"success":[{"range":{"prefix":""}}]}', '{"bytesPerSecond":1048576}', '{"bytesPerSecond":-1}', '{"id":"n1"}', '{"id":"n9"}', '{"zone":"z"}', '{"fsyncDelayMs":1}', '{', '[]', 'null', '{"id":"n1","address":"127.0.0.1:1","learner":true}'),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 64 }),
);

/** One structure-aware request, serialized to raw bytes. */
const request = fc
  .record({
    method,
    route: fc.constantFrom(...ROUTES),
    suffix: mostly(fc.constant(''), fc.constantFrom('x', '/', '%2F')),
    query,
    auth: mostly(fc.constantFrom('none', 'valid'), fc.constantFrom('wrong', 'garbage')),
    contentLength: mostly(fc.constant('right'), fc.constantFrom('absent', 'short', 'long', 'negative', 'chunked')),
    contentType: fc.constantFrom(undefined, 'application/json', 'application/octet-stream', 'text/plain'),
    extraHeaders: fc.array(fc.tuple(fc.constantFrom('x-qkv-forwarded', 'idempotency-key', 'transfer-encoding', 'expect', 'upgrade', 'x-a'), fc.string({ maxLength: 16 })), { maxLength: 2 }),
    body,
  })
  .map((r) => {
    const path = r.route + r.suffix + (r.query.length ? '?' + r.query.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&') : '');
    const bodyBytes = Buffer.from(r.body);
    const h: string[] = ['Host: fuzz', 'Connection: close'];
    if (r.auth === 'valid' && TOKEN_SAFE.has(r.route)) h.push(`Authorization: ${adminAuthorization(SECRET)}`);
    if (r.auth === 'wrong') h.push(`Authorization: ${adminAuthorization('another-secret-0123456789')}`);
    if (r.auth === 'garbage') h.push('Authorization: Bearer zz');
    if (r.contentType) h.push(`Content-Type: ${r.contentType}`);
    const len = { right: bodyBytes.length, short: Math.max(0, bodyBytes.length - 1), long: bodyBytes.length + 5, negative: -1 }[r.contentLength as 'right'];
    if (r.contentLength === 'chunked') h.push('Transfer-Encoding: chunked');
    else if (r.contentLength !== 'absent') h.push(`Content-Length: ${len}`);
    for (const [k, v] of r.extraHeaders) h.push(`${k}: ${v.replace(/[\r\n]/g, '')}`);
    const payload = r.contentLength === 'chunked' ? Buffer.from(`${bodyBytes.length.toString(16)}\r\n${r.body}\r\n0\r\n\r\n`) : bodyBytes;
    return new Uint8Array(Buffer.concat([Buffer.from(`${r.method} ${path} HTTP/1.1\r\n${h.join('\r\n')}\r\n\r\n`, 'latin1'), payload]));
  });

/** A client-to-server WebSocket frame (binary, FIN, masked as RFC 6455 requires of clients). */
function wsFrame(payload: Uint8Array, mask: Uint8Array): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x82, 0x80 | n]) : Buffer.from([0x82, 0x80 | 126, n >> 8, n & 0xff]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([head, Buffer.from(mask), masked]);
}

/**
 * WebSocket upgrades of both upgrade routes: `/raft` with a hello header (signed with this node's
 * secret or not, from a member or not; at a fixed clock, so stale unless mutated), `/client` with
 * client frames after the handshake — the peer and client surfaces through the real sockets.
 */
const upgrade = fc
  .record({
    path: fc.constantFrom('/raft', '/client', '/client', '/x'),
    key: mostly(fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('base64')), fc.string({ maxLength: 30 }).map((x) => x.replace(/[\r\n]/g, ''))),
    version: mostly(fc.constant('13'), fc.constantFrom('8', '', 'x')),
    hello: fc.record({ from: fc.constantFrom('n1', 'n2'), secret: fc.constantFrom<string | null>(SECRET, 'another-secret-0123456789', null), channel: fc.constantFrom('raft', 'snapshot', 'probe'), ageMs: fc.integer({ min: -60_000, max: 60_000 }) }),
    frames: fc.array(clientFrameSurface.arbitrary().map((i) => i.bytes), { maxLength: 2 }),
    mask: fc.uint8Array({ minLength: 4, maxLength: 4 }),
  })
  .map((u) => {
    const h = ['Host: fuzz', 'Connection: Upgrade', 'Upgrade: websocket', `Sec-WebSocket-Version: ${u.version}`, `Sec-WebSocket-Key: ${u.key}`];
    if (u.path === '/raft') {
      const hello = createHelloHeader({ from: u.hello.from, to: 'n1', channel: u.hello.channel as 'raft', clusterSecret: u.hello.secret, nowMs: UPGRADE_CLOCK_MS + u.hello.ageMs, incarnation: 'b'.repeat(32), nonce: 'c'.repeat(32) });
      h.push(`${HELLO_HEADER}: ${hello}`);
    }
    const frames = u.path === '/client' ? u.frames.filter((f) => f.length < 0x10000).map((f) => wsFrame(f, u.mask)) : [];
    return new Uint8Array(Buffer.concat([Buffer.from(`GET ${u.path} HTTP/1.1\r\n${h.join('\r\n')}\r\n\r\n`, 'latin1'), ...frames]));
  });

export const httpSurface: Surface<Uint8Array> = {
  name: 'http',
  description: 'raw HTTP requests (paths, headers, bodies) to a node started in-process',
  arbitrary: () => withMutation(fc.oneof({ weight: 4, arbitrary: request }, { weight: 1, arbitrary: upgrade }), 512),
  open: () => openHttpTarget(),
  show: (b) => `${showBytes(b)}\n  as text: ${JSON.stringify(Buffer.from(b).toString('latin1'))}`,
};

/** Sends raw bytes on a new connection, half-closes, and collects the answer until the server closes. */
function exchange(port: number, bytes: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    const s = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new FuzzViolation(`no answer and no close within ${RESPONSE_TIMEOUT_MS} ms`));
    }, RESPONSE_TIMEOUT_MS);
    s.on('data', (c: Buffer) => {
      if (kept < RESPONSE_KEEP_BYTES_MAX) (chunks.push(c), (kept += c.length));
    });
    s.on('error', () => undefined); // a reset is a close
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    s.end(bytes);
  });
}

/** Checks one answer; an empty answer is a closed connection. `head`: the answer has no body. */
function judge(answer: Buffer, head: boolean): Outcome {
  if (answer.length === 0) return 'refused';
  const text = answer.toString('latin1');
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
  if (!m) throw new FuzzViolation(`not an HTTP answer: ${JSON.stringify(text.slice(0, 200))}`);
  const status = Number(m[1]);
  const split = text.indexOf('\r\n\r\n');
  const headers = text.slice(0, split).toLowerCase();
  // Only this answer's body: on a kept-alive connection a second answer may follow (a 400 for the
  // rest of a body the handler did not read).
  const length = /\r\ncontent-length: (\d+)/.exec(headers);
  const rest = text.slice(split + 4);
  const bodyText = Buffer.from(length ? rest.slice(0, Number(length[1])) : rest, 'latin1').toString('utf8');
  if (status >= 400 && !head && headers.includes('content-type: application/json')) {
    let code: unknown;
    try {
      code = (JSON.parse(bodyText) as { code?: unknown }).code;
    } catch {
      throw new FuzzViolation(`an error answer is not JSON: ${JSON.stringify(text.slice(0, 300))}`);
    }
    if (typeof code !== 'string' || !code.startsWith('QKV_')) throw new FuzzViolation(`an error answer has no QKV_ code: ${bodyText.slice(0, 200)}`);
    if (code === 'QKV_INTERNAL') throw new FuzzViolation(`the node answered QKV_INTERNAL (an unexpected error): ${bodyText.slice(0, 300)}`);
  }
  if (status === 500) throw new FuzzViolation(`the node answered 500: ${JSON.stringify(text.slice(0, 300))}`);
  return status < 400 ? 'accepted' : 'refused';
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function openHttpTarget(): Promise<FuzzTarget<Uint8Array>> {
  const dir = mkdtempSync(join(tmpdir(), 'qkv-fuzz-http-'));
  const port = await freePort();
  const cfg = parseServeConfig(['--id', 'n1', '--listen', `127.0.0.1:${port}`, '--peers', `n1=127.0.0.1:${port}`, '--data', join(dir, 'n1'), '--initial-cluster-state', 'new', '--tick-ms', '20'], { QKV_CLUSTER_SECRET: SECRET });
  const server: RunningServer = await startServer(cfg, { logger: createSinkLogger('n1', 'fatal', () => undefined) });
  const until = Date.now() + 20_000;
  while (!server.node.isLeader()) {
    if (Date.now() > until) throw new Error('the in-process node did not become leader within 20 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    feed: async (bytes) => {
      try {
        return judge(await exchange(port, bytes), Buffer.from(bytes.subarray(0, 5)).toString('latin1') === 'HEAD ');
      } catch (e) {
        if (e instanceof FuzzViolation) throw e;
        throw new FuzzViolation(`exchange failed: ${(e as Error).stack ?? String(e)}`, { cause: e });
      }
    },
    control: async () => {
      const answer = (await exchange(port, Buffer.from('GET /v1/status HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n'))).toString('latin1');
      if (!answer.startsWith('HTTP/1.1 200 ')) throw new FuzzViolation(`the node no longer answers GET /v1/status: ${JSON.stringify(answer.slice(0, 200))}`);
    },
    close: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
