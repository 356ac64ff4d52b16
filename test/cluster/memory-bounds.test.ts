// Memory a client can exhaust, against real single-node processes: concurrent WebSocket ranges
// over large values and concurrent large HTTP PUTs, each measured as the node's peak RSS growth
// (VmHWM from /proc after resetting it) against a stated budget. Also the documented range
// maximum (limit=10000) on HTTP and WebSocket, the session quota and /v1/state-hash's concurrency.
import { writeFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect } from '@quorumkv/client';
import { PROTOCOL_VERSION, decodeResponseFrame, encodeFrame, writeOutcomeOf, type ClientRequest, type ClientResponse } from '@quorumkv/protocol';
import { ProcessCluster, httpRequest, jsonOf, sleep } from '../harness/cluster.js';

const MIB = 1024 * 1024;
/** A value just under the default --max-value-bytes (1 MiB), like the confirmed attacks'. */
const BIG_VALUE_BYTES = MIB - 1024;
const FRAME_MAX_BYTES = 64 * MIB;

/** Peak-RSS probe of one process: resets VmHWM (clear_refs 5), then reads it back. */
class RssProbe {
  constructor(private readonly pid: number) {}

  private field(name: string): number {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    if (!m) throw new Error(`no ${name} in /proc/${this.pid}/status`);
    return Number(m[1]) * 1024;
  }

  /** Current RSS in bytes. */
  rss(): number {
    return this.field('VmRSS');
  }

  /** Starts a measurement: the peak is reset to the current RSS. */
  resetPeak(): void {
    writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
  }

  /** Peak RSS since resetPeak(), in bytes. */
  peak(): number {
    return this.field('VmHWM');
  }
}

const mib = (n: number) => `${(n / MIB).toFixed(0)} MiB`;

/** One /client WebSocket after hello; `call` sends a request and resolves with its answer. */
class WsClient {
  private nextId = 2;
  private readonly waiting = new Map<number, (r: ClientResponse) => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      const r = decodeResponseFrame(new Uint8Array(d), FRAME_MAX_BYTES);
      this.waiting.get(r.id)?.(r);
      this.waiting.delete(r.id);
    });
  }

  static open(port: number): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/client`, { perMessageDeflate: false, maxPayload: FRAME_MAX_BYTES });
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
      ws.once('open', () => {
        const c = new WsClient(ws);
        c.waiting.set(1, () => resolve(c));
        ws.send(encodeFrame({ op: 'hello', id: 1, version: PROTOCOL_VERSION }, FRAME_MAX_BYTES));
      });
    });
  }

  call(req: Record<string, unknown>): Promise<ClientResponse> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(encodeFrame({ ...req, id } as unknown as ClientRequest, FRAME_MAX_BYTES));
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

const enc = (s: string) => new TextEncoder().encode(s);

/** PUTs `count` values of BIG_VALUE_BYTES under `prefix`, `parallel` at a time. */
async function fillBig(port: number, prefix: string, count: number, parallel = 4): Promise<void> {
  const value = Buffer.alloc(BIG_VALUE_BYTES, 7);
  for (let i = 0; i < count; i += parallel) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + parallel); j++) {
      batch.push(httpRequest(port, 'PUT', `/v1/kv/${prefix}${String(j).padStart(4, '0')}`, { body: value, timeoutMs: 20_000 }));
    }
    for (const r of await Promise.all(batch)) expect(r.status, r.body.toString()).toBe(200);
  }
}

/**
 * A PUT on its own connection that sends all of its body but the last byte and then holds it:
 * `finish()` sends the last byte and resolves with the status (0 = the connection was cut);
 * `status` resolves with it without sending the last byte.
 */
function heldPut(port: number, path: string, body: Buffer): { status: Promise<number>; finish: () => Promise<number> } {
  const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path, agent: false, headers: { 'content-length': body.length } });
  const status = new Promise<number>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.setTimeout(30_000, () => req.destroy());
    req.on('error', () => resolve(0));
  });
  req.write(body.subarray(0, body.length - 1));
  return {
    status,
    finish: () => {
      if (!req.destroyed) req.end(body.subarray(body.length - 1));
      return status;
    },
  };
}

/** A fresh single-node cluster per test: RSS that one attack left behind must not hide another's. */
async function withNode(name: string, fn: (c: ProcessCluster, port: number, probe: RssProbe) => Promise<void>, extraArgs: string[] = []): Promise<void> {
  const c = await ProcessCluster.start({ name: `qkv-memory-${name}`, nodes: 1, tickMs: 20, electionTicks: 10, extraArgs });
  try {
    await c.guard(async () => {
      await c.waitForLeader();
      await fn(c, c.nodes[0]!.port, new RssProbe(c.nodes[0]!.proc!.pid!));
    })();
  } finally {
    await c.teardown();
  }
}

describe('memory a client can exhaust stays bounded', () => {
  // Budget: a range reads at most the rows of its page plus one (each page here is one 1 MiB row,
  // as a WebSocket frame holds about two), and every range's rows are charged to the node's range
  // budget (--max-range-bytes-in-flight, 64 MiB). 24 ranges hold about 48 MiB of rows; each row
  // exists a few times while it is answered (LevelDB's block, the JavaScript buffer, the decoded
  // record, the encoded frame) before V8 collects it: ~100 MiB measured once the fill's background
  // work has settled. 256 MiB leaves room for GC timing on a loaded machine and is far below the
  // 1.1 GiB that reading every row of each range took (24 ranges x 40 rows of 1 MiB).
  const RANGE_RSS_GROWTH_BUDGET = 256 * MIB;

  it('24 concurrent WebSocket ranges over 1 MiB values stay within the RSS budget', () =>
    withNode('ranges', async (_c, port, probe) => {
      await fillBig(port, 'big/', 40);
      await sleep(1000); // let the writes' background work (LevelDB flushes) settle before measuring
      const clients = await Promise.all(Array.from({ length: 24 }, () => WsClient.open(port)));
      try {
        const before = probe.rss();
        probe.resetPeak();
        const answers = await Promise.all(clients.map((cl) => cl.call({ op: 'range', prefix: enc('big/'), limit: 1000, consistency: 'stale' })));
        const growth = probe.peak() - before;
        console.log(`ranges: RSS before ${mib(before)}, peak growth ${mib(growth)} (budget ${mib(RANGE_RSS_GROWTH_BUDGET)})`);
        for (const a of answers) {
          // Each answer is one frame: at least one row, or busy with a retry hint.
          if (a.ok) expect((a.result as { items: unknown[]; more: boolean }).more).toBe(true);
          else expect(a.error.code).toBe('QKV_BUSY');
        }
        expect(answers.some((a) => a.ok)).toBe(true);
        expect(growth).toBeLessThan(RANGE_RSS_GROWTH_BUDGET);
      } finally {
        for (const cl of clients) cl.close();
      }
    }), 60_000);

  // Budget: bodies are admitted against --max-buffered-request-bytes (64 MiB) before they are
  // read, so while 300 bodies of 1 MiB are held one byte short of complete the node holds at most
  // 64 MiB of them (plus socket buffers and garbage of refused bodies); reading every body first
  // holds all 300 MiB. (Writing the admitted values afterwards is the write path's own memory:
  // proposal budget, record cache, LevelDB; it is logged, not asserted here.)
  const HELD_BODIES_RSS_GROWTH_BUDGET = 160 * MIB;

  it('300 concurrent 1 MiB HTTP PUT bodies are admitted within the RSS budget before they are read', () =>
    withNode('puts', async (_c, port, probe) => {
      const body = Buffer.alloc(BIG_VALUE_BYTES, 9);
      const before = probe.rss();
      probe.resetPeak();
      const puts = Array.from({ length: 300 }, (_, i) => heldPut(port, `/v1/kv/flood/${i}`, body));
      await sleep(2000); // every body but its last byte is sent (or refused and cut)
      const heldGrowth = probe.peak() - before;
      const statuses = await Promise.all(puts.map((p) => p.finish()));
      const totalGrowth = probe.peak() - before;
      const tally = new Map<number, number>();
      for (const s of statuses) tally.set(s, (tally.get(s) ?? 0) + 1);
      console.log(
        `puts: RSS before ${mib(before)}, peak growth with bodies held ${mib(heldGrowth)} (budget ${mib(HELD_BODIES_RSS_GROWTH_BUDGET)}), ` +
          `after writing ${mib(totalGrowth)}; statuses ${JSON.stringify([...tally])}`,
      );
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
      // Every refusal is a clear one: 503 busy (or a connection cut after the answer was sent).
      for (const s of statuses) expect([200, 503, 0]).toContain(s);
      expect(heldGrowth).toBeLessThan(HELD_BODIES_RSS_GROWTH_BUDGET);
    }), 60_000);

  it('limit=10000, the documented maximum, works on HTTP and WebSocket', () =>
    withNode('limit', async (_c, port) => {
      await httpRequest(port, 'PUT', '/v1/kv/small/a', { body: 'x' });
      const r = await httpRequest(port, 'GET', '/v1/kv?prefix=small/&limit=10000');
      expect(r.status, r.body.toString()).toBe(200);
      expect(jsonOf<{ items: unknown[] }>(r).items.length).toBe(1);
      const ws = await WsClient.open(port);
      try {
        const a = await ws.call({ op: 'range', prefix: enc('small/'), limit: 10_000, consistency: 'linearizable' });
        expect(a.ok, JSON.stringify(a)).toBe(true);
      } finally {
        ws.close();
      }
    }));
});


/** Opens `count` raw TCP connections at once; after `settleMs`, splits them into open and refused. */
async function connectMany(port: number, count: number, settleMs = 300): Promise<{ open: net.Socket[]; refusals: string[] }> {
  const outcomes = Array.from({ length: count }, () => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    // An admitted connection stays silent; a refused one is answered at once and closed.
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
    return { s, parts, closed };
  });
  await sleep(settleMs);
  const open: net.Socket[] = [];
  const refusals: string[] = [];
  for (const o of outcomes) {
    if (o.s.destroyed || o.s.readyState === 'closed') refusals.push(Buffer.concat(o.parts).toString('utf8'));
    else open.push(o.s);
  }
  return { open, refusals };
}

/** A chunked PUT that sends `first` and holds the request open; `end()` finishes it. */
function chunkedPut(port: number, path: string, first: Buffer): { status: Promise<number>; end: () => void } {
  const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path, agent: false, headers: { 'transfer-encoding': 'chunked' } });
  const status = new Promise<number>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
  });
  req.write(first);
  return { status, end: () => req.end() };
}

describe('per-client limits on a live node', () => {
  let c: ProcessCluster;
  let port: number;
  beforeAll(async () => {
    const flags = ['--max-connections-per-address', '8', '--max-sessions-per-connection', '2', '--max-sessions-per-address', '3'];
    // The smallest request budget the defaults allow: one largest frame (1 MiB + 4 KiB + 64 KiB).
    flags.push('--max-buffered-request-bytes', String(MIB + 4096 + 64 * 1024));
    flags.push('--request-timeout-ms', '1000'); // a slow body's deadline
    c = await ProcessCluster.start({ name: 'qkv-memory-limits', nodes: 1, tickMs: 20, electionTicks: 10, extraArgs: flags });
    await c.waitForLeader();
    port = c.nodes[0]!.port;
  });
  afterAll(async () => {
    await c?.teardown();
  });

  it('a connection past --max-connections-per-address is answered 503 QKV_BUSY and closed; closing one lets a new one in', () =>
    c.guard(async () => {
      const { open, refusals } = await connectMany(port, 12);
      try {
        expect(open.length).toBeLessThanOrEqual(8);
        expect(refusals.length).toBeGreaterThanOrEqual(4);
        for (const r of refusals) {
          expect(r).toMatch(/^HTTP\/1.1 503/);
          expect(r).toMatch(/retry-after: 1/i);
          expect(r).toMatch(/"code":"QKV_BUSY".*limit 8 per address/);
        }
      } finally {
        for (const s of open) s.destroy();
      }
      await sleep(100);
      expect((await httpRequest(port, 'GET', '/health', { agent: new http.Agent() })).status).toBe(200);
      const metrics = (await httpRequest(port, 'GET', '/metrics', { agent: new http.Agent() })).body.toString();
      expect(Number(/^qkv_busy_rejections_total\{kind="connections"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(4);
      expect(metrics).toMatch(/^qkv_connections \d+/m);
    })());

  it('a chunked body is counted as it arrives and cut off with 503 QKV_BUSY when the request budget is out', () =>
    c.guard(async () => {
      const a = chunkedPut(port, '/v1/kv/chunked-a', Buffer.alloc(700 * 1024, 1));
      await sleep(200);
      const b = chunkedPut(port, '/v1/kv/chunked-b', Buffer.alloc(700 * 1024, 2));
      expect(await b.status).toBe(503);
      a.end();
      expect(await a.status).toBe(200);
      expect((await httpRequest(port, 'GET', '/v1/kv/chunked-b')).status).toBe(404);
    })());

  it('a body that does not arrive within the request timeout gets 408 and gives its budget back', () =>
    c.guard(async () => {
      const slow = heldPut(port, '/v1/kv/slow', Buffer.alloc(MIB, 3)); // the budget's one frame, held
      const t0 = Date.now();
      expect(await slow.status).toBe(408);
      expect(Date.now() - t0).toBeLessThan(3000);
      // Its bytes went back: a body of the same size is admitted now.
      expect((await httpRequest(port, 'PUT', '/v1/kv/after-slow', { body: Buffer.alloc(MIB, 4) })).status).toBe(200);
      // Bodies on a kept-alive connection give their bytes back too: nothing stays charged.
      for (let i = 0; i < 3; i++) expect((await httpRequest(port, 'PUT', `/v1/kv/after-slow-${i}`, { body: Buffer.alloc(MIB, 5) })).status).toBe(200);
      const metrics = (await httpRequest(port, 'GET', '/metrics')).body.toString();
      expect(metrics).toMatch(/^qkv_buffered_request_bytes 0$/m);
    })());

  it('a write that would create a session past the per-connection or per-address quota gets QKV_QUOTA_EXCEEDED; existing sessions keep working', () =>
    c.guard(async () => {
      const put = (ws: WsClient, session: string, seq = 1) =>
        ws.call({ op: 'put', key: enc(`k/${session}`), value: enc('v'), session: { id: session, seq, ackedBelow: 1 } });
      const code = (a: ClientResponse) => (a.ok ? 'ok' : a.error.code);
      const first = await WsClient.open(port);
      const second = await WsClient.open(port);
      try {
        expect(code(await put(first, 's1'))).toBe('ok');
        expect(code(await put(first, 's2'))).toBe('ok');
        const perConnection = await put(first, 's3');
        expect(code(perConnection)).toBe('QKV_QUOTA_EXCEEDED');
        expect(perConnection.ok ? '' : perConnection.error.message).toMatch(/per connection/);
        expect(code(await put(first, 's1', 2))).toBe('ok'); // a session it created still writes
        expect(code(await put(second, 's4'))).toBe('ok'); // the address's third session
        const perAddress = await put(second, 's5');
        expect(code(perAddress)).toBe('QKV_QUOTA_EXCEEDED');
        expect(perAddress.ok ? '' : perAddress.error.message).toMatch(/per address/);
        expect(code(await put(second, 's2', 2))).toBe('ok'); // a session the node knows creates nothing
        // Nothing was proposed for the refused sessions.
        expect((await httpRequest(port, 'GET', '/v1/kv/k%2Fs3')).status).toBe(404);
        expect((await httpRequest(port, 'GET', '/v1/kv/k%2Fs5')).status).toBe(404);
        // The client library reports the refusal at once, as not applied, and does not retry it.
        const kv = await connect({ endpoints: [`127.0.0.1:${port}`], timeoutMs: 5000 });
        try {
          const t0 = Date.now();
          const e: unknown = await kv.put('k/library', 'v').catch((x: unknown) => x);
          expect(e).toMatchObject({ code: 'QKV_QUOTA_EXCEEDED' });
          expect(writeOutcomeOf(e)).toBe('not-applied');
          expect(Date.now() - t0).toBeLessThan(2000);
        } finally {
          await kv.close();
        }
      } finally {
        first.close();
        second.close();
      }
    })());
});

describe('/v1/state-hash', () => {
  it('/v1/state-hash runs one scan at a time: concurrent requests get 503 QKV_BUSY with Retry-After', () =>
    withNode('state-hash', async (_c, port) => {
      await fillBig(port, 'hash/', 8); // a scan of several rows yields between them: requests overlap it
      const answers = await Promise.all(Array.from({ length: 4 }, () => httpRequest(port, 'GET', '/v1/state-hash', { agent: new http.Agent(), timeoutMs: 20_000 })));
      const ok = answers.filter((r) => r.status === 200);
      const busy = answers.filter((r) => r.status === 503);
      expect(ok.length + busy.length).toBe(4);
      expect(ok.length).toBeGreaterThanOrEqual(1);
      expect(busy.length).toBeGreaterThanOrEqual(1);
      for (const r of busy) {
        expect(jsonOf<{ code: string }>(r).code).toBe('QKV_BUSY');
        expect(r.headers['retry-after']).toBe('1');
      }
      // Once the scan is done the next one runs.
      expect((await httpRequest(port, 'GET', '/v1/state-hash', { timeoutMs: 20_000 })).status).toBe(200);
    }));
});
