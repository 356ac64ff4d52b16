// The server's /client endpoint seen from a raw WebSocket: the protocol rules a misbehaving or
// hostile client meets (hello first, bad frames close with a reason, bad arguments are answered,
// the in-flight limit answers BUSY, answers come out of order, dead clients are dropped).

import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  PROTOCOL_VERSION,
  decodeResponseFrame,
  encodeFrame,
  type ClientRequest,
  type CallContext,
  type ClientResponse,
  type KvService,
  type WatchArgs,
  type WatchService,
  type WatchSink,
  BusyError,
  CompactedError,
} from '@quorumkv/protocol';
import { attachClientEndpoint, type ClientEndpoint, type ClientEndpointOptions } from '../../server/src/client-endpoint.js';
import { ByteBudget, SessionQuota } from '../../server/src/admission.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let server: Server | undefined;
let endpoint: ClientEndpoint | undefined;
const sockets: WebSocket[] = [];

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await endpoint?.close();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
  endpoint = undefined;
});

/** Waits for the number of ms in the key ("30" waits 30 ms; a key that is no number: not at all). */
async function waitForKey(key: Uint8Array, ctx: CallContext): Promise<void> {
  const ms = Number(new TextDecoder().decode(key));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, Number.isFinite(ms) ? ms : 0);
    ctx.signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(ctx.signal.reason as Error);
    });
  });
}

/** A service whose `get` and `put` wait for the number of ms in the key. */
const service: KvService = {
  identity: () => ({ serverId: 'n1', leader: { id: 'n1', address: '127.0.0.1:1' } }),
  get: async (args, ctx) => {
    await waitForKey(args.key, ctx);
    return { item: null };
  },
  put: async (args, ctx) => {
    await waitForKey(args.key, ctx);
    return { revision: 1 };
  },
  delete: async () => ({ revision: 1, deleted: false }),
  cas: async () => ({ revision: 1 }),
  range: async () => ({ items: [], more: false }),
  status: async () => {
    throw new Error('a bug with a secret path /etc/x');
  },
};

async function start(opts: Partial<ClientEndpointOptions> = {}): Promise<number> {
  endpoint = attachClientEndpoint({ service, ...opts });
  const ep = endpoint;
  server = createServer();
  server.on('upgrade', (req, socket, head) => ep.handleUpgrade(req, socket, head));
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  if (!addr || typeof addr !== 'object') throw new Error('no address');
  return addr.port;
}

/** A raw client: sends frames, collects answers, records how the connection closed. */
class Raw {
  readonly answers: ClientResponse[] = [];
  closed: { code: number; reason: string } | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => this.answers.push(decodeResponseFrame(d, 1 << 24)));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }
  static async open(port: number, path = '/client', opts: { autoPong?: boolean } = {}): Promise<Raw> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, opts);
    sockets.push(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Raw(ws);
  }
  send(req: ClientRequest): void {
    this.ws.send(encodeFrame(req, 1 << 24));
  }
  async hello(): Promise<void> {
    this.send({ id: 0, op: 'hello', version: PROTOCOL_VERSION });
    await this.until(() => this.answers.length >= 1);
  }
  async until(cond: () => boolean, maxMs = 2000): Promise<void> {
    for (let waited = 0; !cond(); waited += 5) {
      if (waited > maxMs) throw new Error('condition not met in time');
      await sleep(5);
    }
  }
}

describe('client endpoint', () => {
  it('answers hello with the identity, version and limits', async () => {
    const c = await Raw.open(await start({ maxFrameBytes: 4 * 1024 * 1024 }));
    await c.hello();
    expect(c.answers[0]).toMatchObject({ id: 0, ok: true, result: { version: PROTOCOL_VERSION, serverId: 'n1', limits: { maxFrameBytes: 4 * 1024 * 1024 } } });
  });

  it('answers pipelined requests as they complete, out of order', async () => {
    const c = await Raw.open(await start());
    await c.hello();
    c.send({ id: 1, op: 'get', key: b('80'), consistency: 'linearizable' });
    c.send({ id: 2, op: 'get', key: b('0'), consistency: 'linearizable' });
    c.send({ id: 3, op: 'put', key: b('k'), value: b('v'), session: { id: 's', seq: 1, ackedBelow: 1 } });
    await c.until(() => c.answers.length === 4);
    // The slow request (id 1) was sent first and answered last; the others did not wait for it.
    expect(c.answers.slice(1).map((a) => a.id).sort()).toEqual([1, 2, 3]);
    expect(c.answers[3]?.id).toBe(1);
  });

  it('answers QKV_BUSY past the per-connection in-flight limit', async () => {
    const c = await Raw.open(await start({ maxInflightPerConnection: 2, busyRetryAfterMs: 7 }));
    await c.hello();
    for (let id = 1; id <= 4; id++) c.send({ id, op: 'get', key: b('50'), consistency: 'linearizable' });
    await c.until(() => c.answers.length === 5);
    const busy = c.answers.filter((a) => !a.ok);
    expect(busy.map((a) => a.id)).toEqual([3, 4]);
    expect(busy[0]).toMatchObject({ error: { code: 'QKV_BUSY', retryAfterMs: 7 } });
  });

  it('answers QKV_QUOTA_EXCEEDED to a write that would create a session past the per-connection quota, before calling the service', async () => {
    const known = new Set(['old']);
    const quota = new SessionQuota({ maxSessionsPerConnection: 2, maxSessionsPerAddress: 100, windowMs: 60_000 });
    const c = await Raw.open(await start({ sessions: { known: (id) => known.has(id), quota } }));
    await c.hello();
    const put = (id: number, session: string, seq = 1, ackedBelow = 1) =>
      c.send({ id, op: 'put', key: b('k'), value: b('v'), session: { id: session, seq, ackedBelow } });
    put(1, 's1');
    put(2, 's1', 2); // the same new session again: counted once
    put(3, 's2');
    put(4, 'old'); // a session the node knows creates nothing
    put(5, 'gone', 9, 5); // claims earlier writes: the node answers SESSION_EXPIRED, creates nothing
    put(6, 's3');
    await c.until(() => c.answers.length === 7);
    const byId = new Map(c.answers.map((a) => [a.id, a]));
    for (const id of [1, 2, 3, 4, 5]) expect(byId.get(id)?.ok, `request ${id}`).toBe(true);
    expect(byId.get(6)).toMatchObject({ ok: false, error: { code: 'QKV_QUOTA_EXCEEDED' } });
    expect(c.closed).toBeUndefined();
  });

  it('counts new sessions per remote address across connections', async () => {
    const quota = new SessionQuota({ maxSessionsPerConnection: 10, maxSessionsPerAddress: 3, windowMs: 60_000 });
    const port = await start({ sessions: { known: () => false, quota } });
    const answers: ClientResponse[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await Raw.open(port);
      await c.hello();
      c.send({ id: 1, op: 'put', key: b('k'), value: b('v'), session: { id: `s${i}`, seq: 1, ackedBelow: 1 } });
      await c.until(() => c.answers.length === 2);
      answers.push(c.answers[1]!);
    }
    expect(answers.map((a) => (a.ok ? 'ok' : a.error.code))).toEqual(['ok', 'ok', 'ok', 'QKV_QUOTA_EXCEEDED']);
  });

  it('charges request frames to the node-wide request budget until they are answered; past it QKV_BUSY', async () => {
    const budget = new ByteBudget('buffered request bytes', 1500);
    const c = await Raw.open(await start({ requestBudget: budget }));
    await c.hello();
    // Each slow get holds its frame (about 40 bytes); a 1 KiB put does not fit beside 20 of them.
    for (let id = 1; id <= 20; id++) c.send({ id, op: 'get', key: b('100'), consistency: 'linearizable' });
    await c.until(() => budget.usedBytes > 0);
    c.send({ id: 99, op: 'put', key: b('k'), value: new Uint8Array(1024), session: { id: 's', seq: 1, ackedBelow: 1 } });
    await c.until(() => c.answers.some((a) => a.id === 99));
    expect(c.answers.find((a) => a.id === 99)).toMatchObject({ ok: false, error: { code: 'QKV_BUSY' } });
    await c.until(() => c.answers.length === 22);
    expect(budget.usedBytes).toBe(0);
    c.send({ id: 100, op: 'put', key: b('k'), value: new Uint8Array(1024), session: { id: 's', seq: 1, ackedBelow: 1 } });
    await c.until(() => c.answers.length === 23);
    expect(c.answers[22]).toMatchObject({ id: 100, ok: true });
  });

  it('counts a frame still arriving against the request budget; a connection stalled on it is closed with 1013, one that stops mid-frame with 1008', async () => {
    const budget = new ByteBudget('buffered request bytes', 4000);
    const port = await start({ requestBudget: budget, pingIntervalMs: 1200, defaultTimeoutMs: 1000 });
    /** The head of a masked binary frame announcing `n` payload bytes (mask 0: payload as is). */
    const head = (n: number) => Buffer.from([0x82, 0x80 | 126, n >> 8, n & 0xff, 0, 0, 0, 0]);
    const [a, b] = [await Raw.open(port), await Raw.open(port)];
    await a.hello();
    await b.hello();
    const socketOf = (r: Raw) => (r.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socketOf(a).write(Buffer.concat([head(3000), Buffer.alloc(2500)])); // half a frame: in the node's memory
    await a.until(() => budget.usedBytes >= 2500);
    socketOf(b).write(Buffer.concat([head(3000), Buffer.alloc(2500)])); // past the budget: b is paused
    await b.until(() => b.closed !== undefined, 3000);
    expect(b.closed?.code).toBe(1013); // paused for a second with no room: closed
    expect(a.closed).toBeUndefined();
    await a.until(() => a.closed !== undefined, 3000); // its half frame never finished
    expect(a.closed?.code).toBe(1008);
    await a.until(() => budget.usedBytes === 0);
  });

  it('answers bad arguments with an error and keeps the connection', async () => {
    const c = await Raw.open(await start());
    await c.hello();
    c.send({ id: 5, op: 'get', key: new Uint8Array(), consistency: 'linearizable' });
    c.send({ id: 6, op: 'status' });
    await c.until(() => c.answers.length === 3);
    expect(c.answers[1]).toMatchObject({ id: 5, ok: false, error: { code: 'QKV_INVALID_ARGUMENT' } });
    // A service bug is reported without its details.
    expect(c.answers[2]).toEqual({ id: 6, ok: false, error: { code: 'QKV_INTERNAL', message: 'internal error' } });
    expect(c.closed).toBeUndefined();
  });

  it('times a request out at its deadline and aborts the service call', async () => {
    const c = await Raw.open(await start());
    await c.hello();
    c.send({ id: 1, op: 'get', key: b('5000'), consistency: 'linearizable', timeoutMs: 50 });
    await c.until(() => c.answers.length === 2);
    expect(c.answers[1]).toMatchObject({ id: 1, ok: false, error: { code: 'QKV_TIMEOUT' } });
  });

  it('answers a write it did not finish by its deadline QKV_INDETERMINATE, never QKV_TIMEOUT (it was handed to the node)', async () => {
    const c = await Raw.open(await start());
    await c.hello();
    c.send({ id: 1, op: 'put', key: b('5000'), value: b('v'), session: { id: 's', seq: 1, ackedBelow: 1 }, timeoutMs: 50 });
    await c.until(() => c.answers.length === 2);
    expect(c.answers[1]).toMatchObject({ id: 1, ok: false, error: { code: 'QKV_INDETERMINATE' } });
  });

  it('times out many requests of one connection each at its own deadline, earlier ones sent later included', async () => {
    const c = await Raw.open(await start());
    await c.hello();
    const t0 = Date.now();
    const at = new Map<number, number>();
    c.ws.on('message', () => at.set(c.answers[c.answers.length - 1]!.id, Date.now() - t0));
    c.send({ id: 1, op: 'get', key: b('5000'), consistency: 'linearizable', timeoutMs: 400 });
    c.send({ id: 2, op: 'get', key: b('5000'), consistency: 'linearizable', timeoutMs: 100 });
    c.send({ id: 3, op: 'get', key: b('20'), consistency: 'linearizable', timeoutMs: 1000 });
    c.send({ id: 4, op: 'get', key: b('5000'), consistency: 'linearizable', timeoutMs: 250 });
    await c.until(() => c.answers.length === 5);
    expect(c.answers.slice(1).map((a) => [a.id, a.ok])).toEqual([
      [3, true],
      [2, false],
      [4, false],
      [1, false],
    ]);
    for (const a of c.answers.slice(1)) if (!a.ok) expect(a.error.code).toBe('QKV_TIMEOUT');
    // Never before the deadline; not long after it (a loaded CI box delays timers, hence the slack).
    expect(at.get(2)!).toBeGreaterThanOrEqual(100);
    expect(at.get(4)!).toBeGreaterThanOrEqual(250);
    expect(at.get(1)!).toBeGreaterThanOrEqual(400);
    expect(at.get(1)!).toBeLessThan(1400);
  });

  const closing: [string, (c: Raw) => void, number, RegExp][] = [
    ['a request before hello', (c) => c.send({ id: 1, op: 'status' }), 1002, /hello/],
    ['garbage bytes', (c) => c.ws.send(new Uint8Array([0xc1, 0x00])), 1002, /./],
    ['a frame without an id', (c) => c.ws.send(encodeFrame({ op: 'status' } as unknown as ClientRequest, 1024)), 1002, /id/],
    ['a text frame', (c) => c.ws.send('hello'), 1003, /binary/],
    ['a wrong protocol version', (c) => c.send({ id: 0, op: 'hello', version: 99 }), 1002, /version 99/],
  ];
  it.each(closing)('closes the connection with a reason on %s', async (_name, act, code, reason) => {
    const c = await Raw.open(await start());
    act(c);
    await c.until(() => c.closed !== undefined);
    expect(c.closed?.code).toBe(code);
    expect(c.closed?.reason).toMatch(reason);
  });

  it('closes the connection on a frame over the size limit', async () => {
    const c = await Raw.open(await start({ maxFrameBytes: 64 * 1024, maxValueBytes: 32 * 1024 }));
    await c.hello();
    c.ws.send(new Uint8Array(70 * 1024));
    await c.until(() => c.closed !== undefined);
    expect(c.closed?.code).toBe(1009);
  });

  it('a bad frame whose error quotes multi-byte text still closes cleanly: the reason is cut to 123 bytes, not characters', async () => {
    // A str8 of forty '€' (3 bytes each) and one byte after it: the decoder's error quotes the string,
    // so the reason is ~90 characters but ~170 bytes. ws throws on a close reason over 123 bytes,
    // and a throw in the message handler took the whole node down.
    const port = await start();
    const c = await Raw.open(port);
    await c.hello();
    const euro = new TextEncoder().encode('€'.repeat(40));
    c.ws.send(Uint8Array.from([0xd9, euro.length, ...euro, 0x00]));
    await c.until(() => c.closed !== undefined);
    expect(c.closed?.code).toBe(1002);
    expect(c.closed?.reason).toMatch(/^undecodable frame/);
    expect(Buffer.byteLength(c.closed!.reason)).toBeLessThanOrEqual(123);
    // The endpoint is still up for everyone else.
    const d = await Raw.open(port);
    await d.hello();
  });

  it('refuses upgrades on other paths', async () => {
    const port = await start();
    await expect(Raw.open(port, '/raft')).rejects.toThrow(/404/);
  });

  it('drops a client that answers no pings', async () => {
    const c = await Raw.open(await start({ pingIntervalMs: 40 }), '/client', { autoPong: false });
    await c.hello();
    await c.until(() => c.closed !== undefined);
    expect(endpoint?.connectionCount).toBe(0);
  });

  it('close() ends every connection and refuses new ones', async () => {
    const port = await start();
    const c = await Raw.open(port);
    await c.hello();
    c.send({ id: 1, op: 'get', key: b('5000'), consistency: 'linearizable' });
    await sleep(20);
    await endpoint?.close();
    await c.until(() => c.closed !== undefined);
    expect(c.closed?.code).toBe(1001);
    await expect(Raw.open(port)).rejects.toThrow(/503/);
  });
});

/** A watch service that records each stream's sink, acks and cancel; key "busy" is refused. */
function fakeWatches(): { service: WatchService; streams: Array<{ args: WatchArgs; sink: WatchSink; acks: number; cancelled: boolean }> } {
  const streams: Array<{ args: WatchArgs; sink: WatchSink; acks: number; cancelled: boolean }> = [];
  const svc: WatchService = {
    open(args, _owner, sink) {
      if (args.key && new TextDecoder().decode(args.key) === 'busy') throw new BusyError(200, 'full');
      const s = { args, sink, acks: 0, cancelled: false };
      streams.push(s);
      return { ack: (n) => void (s.acks += n), cancel: () => void (s.cancelled = true) };
    },
  };
  return { service: svc, streams };
}

describe('client endpoint: watch streams', () => {
  const watch = (id: number, key = 'k'): ClientRequest => ({ id, op: 'watch', key: b(key), limit: 10, progressMs: 1000, window: 2 });

  it('pushes every frame of a stream as an answer with its id, routes acks and cancel to it, and answers neither', async () => {
    const w = fakeWatches();
    const c = await Raw.open(await start({ watch: w.service }));
    await c.hello();
    c.send(watch(5));
    await c.until(() => w.streams.length === 1);
    const s = w.streams[0]!;
    s.sink.push({ events: [], revision: 3, compactedRevision: 0 });
    s.sink.push({ events: [], revision: 4, compactedRevision: 0 });
    await c.until(() => c.answers.length === 3);
    expect(c.answers.slice(1)).toMatchObject([{ id: 5, ok: true, result: { revision: 3 } }, { id: 5, ok: true, result: { revision: 4 } }]);
    c.send({ id: 50, op: 'watchAck', watches: [5, 99, 5] }); // 99 is unknown: ignored
    c.send({ id: 5, op: 'watchCancel' });
    await c.until(() => s.cancelled);
    expect(s.acks).toBe(2);
    s.sink.push({ events: [], revision: 5, compactedRevision: 0 }); // after cancel: not sent
    c.send({ id: 6, op: 'get', key: b('0'), consistency: 'linearizable' });
    await c.until(() => c.answers.length === 4);
    expect(c.answers.map((a) => a.id)).toEqual([0, 5, 5, 6]);
    expect(c.closed).toBeUndefined();
  });

  it('an error ends the stream with one error answer; a refusal at open is answered at once', async () => {
    const w = fakeWatches();
    const c = await Raw.open(await start({ watch: w.service }));
    await c.hello();
    c.send(watch(1, 'busy'));
    c.send(watch(2));
    await c.until(() => c.answers.length === 2 && w.streams.length === 1);
    expect(c.answers[1]).toMatchObject({ id: 1, ok: false, error: { code: 'QKV_BUSY' } });
    w.streams[0]!.sink.end(new CompactedError(9));
    w.streams[0]!.sink.end(new CompactedError(9));
    await c.until(() => c.answers.length === 3);
    await sleep(20);
    expect(c.answers.slice(2)).toMatchObject([{ id: 2, ok: false, error: { code: 'QKV_COMPACTED', compactedRevision: 9 } }]);
  });

  it('a watch on a server without watches is QKV_INVALID_ARGUMENT', async () => {
    const c = await Raw.open(await start());
    await c.hello();
    c.send(watch(1));
    await c.until(() => c.answers.length === 2);
    expect(c.answers[1]).toMatchObject({ id: 1, ok: false, error: { code: 'QKV_INVALID_ARGUMENT' } });
  });

  it('reusing a live watch id closes the connection, and its streams end with it', async () => {
    const w = fakeWatches();
    const d = await Raw.open(await start({ watch: w.service }));
    await d.hello();
    d.send(watch(3));
    d.send(watch(3));
    await d.until(() => d.closed !== undefined);
    expect(d.closed?.code).toBe(1002);
    expect(w.streams[0]?.cancelled).toBe(true); // the connection's streams end with it
  });
});

describe('request contexts (AbortSignal created on demand)', () => {
  it('a context cancelled before anyone read its signal hands out an already-aborted signal', async () => {
    const { RequestContext } = await import('../../server/src/client-endpoint.js');
    const ctx = new RequestContext(Date.now() + 1000);
    expect(ctx.aborted).toBe(false);
    const reason = new Error('deadline');
    ctx.abort(reason);
    ctx.abort(new Error('second reason is ignored'));
    expect(ctx.aborted).toBe(true);
    expect(ctx.signal.aborted).toBe(true);
    expect(ctx.signal.reason).toBe(reason);
  });

  it('a signal read before the cancel fires its listeners once, with the first reason', async () => {
    const { RequestContext } = await import('../../server/src/client-endpoint.js');
    const ctx = new RequestContext(Date.now() + 1000);
    const seen: unknown[] = [];
    ctx.signal.addEventListener('abort', () => seen.push(ctx.signal.reason));
    expect(ctx.signal.aborted).toBe(false);
    const reason = new Error('client gone');
    ctx.abort(reason);
    ctx.abort(new Error('again'));
    expect(seen).toEqual([reason]);
    expect(ctx.aborted).toBe(true);
  });
});
