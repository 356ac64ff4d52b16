import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Message, MessageType } from '@quorumkv/raft';
import { CloseCode, encodeFrame, HELLO_HEADER } from '../src/index.js';
import { createHelloHeader } from '../src/handshake.js';
import { mulberry32 } from '@quorumkv/testkit';
import { BlackholeProxy, cluster, entries, Host, INCARNATION, msg, SECRET, shortTimeouts, sleep, testLimits, waitFor } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
function track(...hosts: Host[]): Host[] {
  for (const h of hosts) cleanups.push(() => h.stop());
  return hosts;
}

/** A bare WebSocket client that dials a node's /raft with the given hello (or none). */
function rawDial(port: number, hello: string | null) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/raft`, { headers: hello === null ? {} : { [HELLO_HEADER]: hello } });
  ws.on('error', () => {});
  const opened = new Promise<void>((resolve) => ws.once('open', () => resolve()));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  return { ws, opened, closed };
}

const helloFor = (from: string, to: string, secret: string | null = SECRET) =>
  createHelloHeader({ from, to, channel: 'raft', clusterSecret: secret, nowMs: Date.now(), incarnation: INCARNATION });

async function connected(hosts: Host[]): Promise<void> {
  await waitFor(
    () => hosts.every((h) => Object.values(h.transport!.stats().peers).every((p) => p.connected)),
    'every link open',
  );
}

describe('PeerTransport on loopback', () => {
  it('three nodes exchange messages with binary entries, exactly', async () => {
    const hosts = track(...(await cluster(['n1', 'n2', 'n3'])));
    await connected(hosts);
    const sent: Message[] = [];
    for (const from of hosts) {
      for (const to of hosts) {
        if (from === to) continue;
        const m = msg({
          from: from.id, to: to.id, type: 10 as MessageType, term: 3, index: 41, logTerm: 1, commit: 40,
          entries: entries(42, 5, 256), context: new Uint8Array([from.id.charCodeAt(1)]),
        });
        expect(from.transport!.send(m)).toBe(true);
        sent.push(m);
      }
    }
    await waitFor(() => hosts.every((h) => h.received.length === 2), 'two messages at each node');
    for (const h of hosts) {
      const expected = sent.filter((m) => m.to === h.id);
      expect([...h.received].sort((a, b) => a.from.localeCompare(b.from))).toEqual(expected);
    }
    const s = hosts[0]!.transport!.stats();
    expect(s.peers.n2).toMatchObject({ connected: true, inboundConnected: true, sentMessages: 1, receivedMessages: 1, queuedMessages: 0 });
  });

  it('batches the messages of one event-loop turn into one frame', async () => {
    const [a, b] = track(...(await cluster(['a', 'b'])));
    await connected([a!, b!]);
    for (let i = 0; i < 100; i++) expect(a!.transport!.send(msg({ from: 'a', to: 'b', index: i }))).toBe(true);
    await waitFor(() => b!.received.length === 100, '100 messages');
    expect(b!.received.map((m) => m.index)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(a!.transport!.stats().peers.b!.sentFrames).toBe(1);
  });

  it('refuses a wrong secret, an unknown peer id and a missing hello, and logs each at warn', async () => {
    const [n1, n2] = track(...(await cluster(['n1', 'n2'])));
    const cases = [
      { hello: helloFor('n1', 'n2', 'the-wrong-secret-000000'), code: CloseCode.Unauthorized, reason: /bad proof/ },
      { hello: helloFor('n7', 'n2'), code: CloseCode.Forbidden, reason: /unknown peer id n7/ },
      { hello: null, code: CloseCode.Unauthorized, reason: /missing hello/ },
    ];
    for (const c of cases) {
      const { closed } = rawDial(n2!.port, c.hello);
      const { code, reason } = await closed;
      expect(code).toBe(c.code);
      expect(reason).toMatch(c.reason);
    }
    expect(n2!.transport!.stats().refusedConnections).toBe(3);
    expect(n2!.logger.lines.filter((l) => l.level === 'warn' && l.msg === 'refused peer connection')).toHaveLength(3);
    // A whole transport with the wrong secret never gets a link up, and n2 keeps serving n1.
    const intruder = track(new Host('n1'))[0]!;
    await intruder.listen();
    intruder.start({ n2: `127.0.0.1:${n2!.port}` }, { clusterSecret: 'the-wrong-secret-000000' });
    await waitFor(() => intruder.logger.lines.some((l) => l.msg === 'peer refused or closed the link' && l.fields.code === CloseCode.Unauthorized), 'refusal seen by the dialler');
    expect(intruder.transport!.stats().peers.n2!.connected).toBe(false);
    await connected([n1!]);
    n1!.transport!.send(msg({ from: 'n1', to: 'n2' }));
    await waitFor(() => n2!.received.length === 1, 'n1 still served');
  });

  it('refuses a dialler whose clock is too far off (stale hello)', async () => {
    const [n2] = track(...(await cluster(['n2'], {}, { n1: '127.0.0.1:1' })));
    const n1 = track(new Host('n1'))[0]!;
    await n1.listen();
    n1.start({ n2: `127.0.0.1:${n2!.port}` }, { nowMs: () => Date.now() - 60_000 });
    await waitFor(() => n2!.logger.lines.some((l) => /stale hello/.test(String(l.fields.reason))), 'stale hello refused');
    expect(n1.transport!.stats().peers.n2!.connected).toBe(false);
  });

  it('has no insecure mode: a transport needs a secret, and an unsigned hello is refused', async () => {
    expect(() => new Host('x').start({}, { clusterSecret: null as unknown as string })).toThrow(/no insecure mode/);
    const [b] = track(...(await cluster(['b'], {}, { a: '127.0.0.1:1' })));
    const { closed } = rawDial(b!.port, helloFor('a', 'b', null));
    expect((await closed).code).toBe(CloseCode.Unauthorized);
  });

  it('refuses a dialler whose incarnation the host does not accept, before any of its messages', async () => {
    const [b] = track(...(await cluster(['b'], { checkIncarnation: (peer, inc) => (inc === INCARNATION ? null : `${peer} is another incarnation`) }, { a: '127.0.0.1:1' })));
    const impostor = rawDial(b!.port, createHelloHeader({ from: 'a', to: 'b', channel: 'raft', clusterSecret: SECRET, nowMs: Date.now(), incarnation: 'f'.repeat(32) }));
    impostor.ws.on('open', () => impostor.ws.send(encodeFrame([msg({ from: 'a', to: 'b' })])));
    expect(await impostor.closed).toEqual({ code: CloseCode.WrongIncarnation, reason: 'a is another incarnation' });
    expect(b!.received).toHaveLength(0);
  });

  it('answers a probe with the host\'s answer', async () => {
    const [a, b] = track(...(await cluster(['a', 'b'], { onProbe: (peer, inc) => ({ asker: peer, inc }) })));
    expect(await a!.transport!.probe('b', `127.0.0.1:${b!.port}`)).toEqual({ asker: 'a', inc: INCARNATION });
    await expect(b!.transport!.probe('zz', '127.0.0.1:1')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('close() closes every connection, refuses further sends and is idempotent', async () => {
    const [a, b] = track(...(await cluster(['a', 'b'])));
    await connected([a!, b!]);
    await a!.transport!.close();
    await a!.transport!.close();
    expect(a!.transport!.send(msg({ from: 'a', to: 'b' }))).toBe(false);
    expect(a!.transport!.stats().peers).toEqual({});
    await waitFor(() => !b!.transport!.stats().peers.a!.inboundConnected, 'b sees a go');
    await waitFor(() => !b!.transport!.stats().peers.a!.connected, 'b link to a down');
  });

  it('closes connections that send garbage, text or oversized frames, and keeps serving', async () => {
    // The raw connections claim to be n3, a member that is not running (a raw connection claiming
    // a running peer's id would be replaced by that peer's own redial, and replace it in turn).
    const limits = { ...testLimits, maxFrameBytes: 8192, maxQueuedBytes: 8192, maxUnflushedBytes: 8192 };
    const [n1, n2] = track(...(await cluster(['n1', 'n2'], { limits }, { n3: '127.0.0.1:1' })));
    await waitFor(() => n1!.transport!.stats().peers.n2!.connected, 'n1 -> n2 open');
    const frames: Array<[string, (ws: WebSocket) => void, number, RegExp]> = [
      ['garbage', (ws) => ws.send(Buffer.from([0xc1, 0x00, 0xff])), CloseCode.BadInput, /not valid msgpack/],
      ['wrong type', (ws) => ws.send(Buffer.from(encodeFrame([msg({ from: 'n1', to: 'n2' })]).map((b, i) => (i === 4 ? 0x63 : b)))), CloseCode.BadInput, /bad type/],
      ['text', (ws) => ws.send('hello'), CloseCode.BadInput, /text frames/],
      // ws closes oversized frames itself with the standard code and no reason text.
      ['oversized', (ws) => ws.send(Buffer.alloc(9000)), CloseCode.TooBig, /^$/],
    ];
    for (const [, sendBad, expectedCode, expectedReason] of frames) {
      const { ws, opened, closed } = rawDial(n2!.port, helloFor('n3', 'n2'));
      await opened;
      sendBad(ws);
      const { code, reason } = await closed;
      expect(code).toBe(expectedCode);
      expect(reason).toMatch(expectedReason);
    }
    expect(n2!.transport!.stats().badFrames).toBe(4);
    expect(n2!.logger.lines.some((l) => l.level === 'warn' && /Max payload size exceeded/.test(String(l.fields.err)))).toBe(true);
    // n1's link was never disturbed, and n2 still serves it.
    n1!.transport!.send(msg({ from: 'n1', to: 'n2', index: 77 }));
    await waitFor(() => n2!.received.some((m) => m.index === 77), 'n2 still serving');
    expect(n1!.transport!.stats().peers.n2!.reconnects).toBe(0);
  });

  it('survives random bytes below the WebSocket framing after an authenticated upgrade (seeded)', async () => {
    const seed = Number(process.env.QKV_SEED ?? 7);
    const rand = mulberry32(seed);
    const [n1, n2] = track(...(await cluster(['n1', 'n2'], {}, { n3: '127.0.0.1:1' })));
    await waitFor(() => n1!.transport!.stats().peers.n2!.connected, 'n1 -> n2 open');
    for (let round = 0; round < 20; round++) {
      const socket = net.connect(n2!.port, '127.0.0.1');
      socket.on('error', () => {});
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const upgraded = new Promise<void>((resolve) => socket.once('data', () => resolve()));
      socket.write(
        'GET /raft HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
          `${HELLO_HEADER}: ${helloFor('n3', 'n2')}\r\n\r\n`,
      );
      await upgraded;
      const garbage = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
      socket.write(garbage);
      // Whatever the bytes were, the connection ends: a protocol error at once, or the idle timeout.
      await Promise.race([closed, sleep(3000).then(() => socket.destroy())]);
    }
    n1!.transport!.send(msg({ from: 'n1', to: 'n2', index: 5 }));
    await waitFor(() => n2!.received.some((m) => m.index === 5), `n2 still serving (seed ${seed}; replay: QKV_SEED=${seed})`);
  });

  it('closes a connection whose frame holds a message with the wrong from or to, delivering none of it', async () => {
    const [n2] = track(...(await cluster(['n2'], {}, { n1: '127.0.0.1:1', n3: '127.0.0.1:1' })));
    const { ws, opened, closed } = rawDial(n2!.port, helloFor('n1', 'n2'));
    await opened;
    ws.send(encodeFrame([msg({ from: 'n1', to: 'n2', index: 5 }), msg({ from: 'n3', to: 'n2' })]));
    const { code, reason } = await closed;
    expect(code).toBe(CloseCode.BadInput);
    expect(reason).toMatch(/message 1 is addressed n3->n2 on the connection n1->n2/);
    expect(n2!.received).toHaveLength(0);
    expect(n2!.transport!.stats().peers.n1!.droppedMisaddressed).toBe(2);
    expect(n2!.logger.lines.some((l) => l.level === 'warn' && /bad frame/.test(l.msg))).toBe(true);
  });

  it('closes an inbound connection that sends nothing for too long', async () => {
    // No real n1 runs: its link would replace the raw connection that claims to be n1.
    const n2 = track(new Host('n2'))[0]!;
    await n2.listen();
    n2.start({ n1: '127.0.0.1:1' }, { limits: shortTimeouts });
    const { opened, closed } = rawDial(n2.port, helloFor('n1', 'n2'));
    await opened;
    const { code } = await closed;
    expect(code).toBe(CloseCode.IdleTimeout);
  });

  it('refuses sends past the queue limits, and keeps memory bounded when the peer stops reading', async () => {
    const limits = { ...testLimits, pongTimeoutMs: 30_000, inboundIdleTimeoutMs: 60_000, maxQueuedMessages: 50, maxQueuedBytes: 64 * 1024, maxFrameBytes: 16 * 1024, maxUnflushedBytes: 32 * 1024 };
    const b = track(new Host('b'))[0]!;
    await b.listen();
    const proxy = new BlackholeProxy(b.port);
    cleanups.push(() => proxy.close());
    await proxy.listen();
    const a = track(new Host('a'))[0]!;
    await a.listen();
    b.start({ a: `127.0.0.1:${a.port}` }, { limits });
    const t = a.start({ b: `127.0.0.1:${proxy.port}` }, { limits });
    await connected([a]);
    // Count limit, within one turn (nothing is flushed before the turn ends).
    const accepted = Array.from({ length: 60 }, (_, i) => t.send(msg({ from: 'a', to: 'b', index: i })));
    expect(accepted.filter(Boolean)).toHaveLength(50);
    expect(t.stats().peers.b!.droppedQueueFull).toBe(10);
    // Byte limit, and a message larger than a frame.
    await waitFor(() => t.stats().peers.b!.queuedMessages === 0, 'queue flushed');
    const big = () => msg({ from: 'a', to: 'b', entries: entries(1, 30, 256) }); // ~8.4 KB estimated
    let n = 0;
    while (t.send(big())) n++;
    expect(n).toBe(7);
    expect(t.send(msg({ from: 'a', to: 'b', entries: entries(1, 1, 20_000) }))).toBe(false);
    expect(t.stats().peers.b!.droppedTooLarge).toBe(1);
    // The peer stops reading: kernel buffers fill, then our bounded queue, then sends are refused.
    proxy.block();
    let refusedTurns = 0;
    for (let turn = 0; turn < 2000 && refusedTurns < 5; turn++) {
      let anyAccepted = false;
      for (let k = 0; k < 20; k++) anyAccepted = t.send(big()) || anyAccepted;
      refusedTurns = anyAccepted ? 0 : refusedTurns + 1;
      const s = t.stats().peers.b!;
      expect(s.queuedBytes).toBeLessThanOrEqual(limits.maxQueuedBytes);
      expect(s.unflushedBytes).toBeLessThanOrEqual(limits.maxUnflushedBytes + limits.maxFrameBytes);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(refusedTurns).toBe(5);
    expect(t.stats().peers.b!.connected).toBe(true); // a slow peer is not a dead one
  });

  it('reconnects with back-off after a peer restarts', async () => {
    const [a, b] = track(...(await cluster(['a', 'b'], { random: () => 0.999 })));
    await connected([a!, b!]);
    const port = b!.port;
    await b!.stop();
    await waitFor(() => a!.peersDown.includes('b'), 'a notices b is down');
    expect(a!.transport!.send(msg({ from: 'a', to: 'b' }))).toBe(false); // in back-off: refused at once
    await sleep(600);
    const retries = a!.logger.lines.filter((l) => typeof l.fields.retryInMs === 'number').map((l) => l.fields.retryInMs as number);
    expect(retries.length).toBeGreaterThanOrEqual(3);
    expect(retries.slice(0, 4)).toEqual([19, 39, 79, 159]); // doubling from 20 ms, capped at 200 ms
    const b2 = track(new Host('b'))[0]!;
    await b2.listen(port);
    b2.start({ a: `127.0.0.1:${a!.port}` });
    await waitFor(() => a!.transport!.stats().peers.b!.connected, 'a reconnected to the restarted b');
    expect(a!.transport!.stats().peers.b!.reconnects).toBeGreaterThanOrEqual(3);
    a!.transport!.send(msg({ from: 'a', to: 'b', index: 9 }));
    await waitFor(() => b2.received.some((m) => m.index === 9), 'message after restart');
  });

  it('redials at once, skipping the back-off, when the restarted peer connects to us first', async () => {
    // Long back-off: without the redial, a would not try b again for 5 s.
    const slow = { limits: { ...testLimits, reconnectInitialMs: 5000, reconnectMaxMs: 5000 }, random: () => 0.999 };
    const [a, b] = track(...(await cluster(['a', 'b'], slow)));
    await connected([a!, b!]);
    const port = b!.port;
    await b!.stop();
    await waitFor(() => a!.peersDown.includes('b'), 'a notices b is down');
    await sleep(100); // a's link is now waiting out its back-off
    const b2 = track(new Host('b'))[0]!;
    await b2.listen(port);
    b2.start({ a: `127.0.0.1:${a!.port}` }, slow);
    const t0 = performance.now();
    await waitFor(() => a!.transport!.stats().peers.b!.connected, 'a redialled the restarted b', 2000);
    expect(performance.now() - t0).toBeLessThan(2000);
    a!.transport!.send(msg({ from: 'a', to: 'b', index: 7 }));
    await waitFor(() => b2.received.some((m) => m.index === 7), 'message after the redial');
  });

  it('detects a silent partition (no pongs) and recovers when it heals', async () => {
    const b = track(new Host('b'))[0]!;
    await b.listen();
    const proxy = new BlackholeProxy(b.port);
    cleanups.push(() => proxy.close());
    await proxy.listen();
    const a = track(new Host('a'))[0]!;
    await a.listen();
    b.start({ a: `127.0.0.1:${a.port}` }, { limits: shortTimeouts });
    const t = a.start({ b: `127.0.0.1:${proxy.port}` }, { limits: shortTimeouts });
    await connected([a]);
    t.send(msg({ from: 'a', to: 'b', index: 1 }));
    await waitFor(() => b.received.length === 1, 'first message');
    proxy.block();
    await waitFor(() => a.peersDown.includes('b'), 'a notices the silent partition', 3000);
    expect(a.logger.lines.some((l) => /not making progress/.test(l.msg))).toBe(true);
    await waitFor(() => !b.transport!.stats().peers.a!.inboundConnected, 'b closes the idle inbound connection', 3000);
    await sleep(300); // a keeps redialling into the blackhole; the handshake times out
    proxy.unblock();
    await waitFor(() => t.stats().peers.b!.connected, 'link re-established after healing', 5000);
    t.send(msg({ from: 'a', to: 'b', index: 2 }));
    await waitFor(() => b.received.some((m) => m.index === 2), 'message after healing');
    expect(t.stats().peers.b!.reconnects).toBeGreaterThanOrEqual(1);
  });

  it('detects a one-way silent partition (the peer still reports, but reads nothing)', async () => {
    const b = track(new Host('b'))[0]!;
    await b.listen();
    const proxy = new BlackholeProxy(b.port);
    cleanups.push(() => proxy.close());
    await proxy.listen();
    const a = track(new Host('a'))[0]!;
    await a.listen();
    b.start({ a: `127.0.0.1:${a.port}` }, { limits: { ...shortTimeouts, inboundIdleTimeoutMs: 60_000 } });
    const t = a.start({ b: `127.0.0.1:${proxy.port}` }, { limits: shortTimeouts });
    await connected([a]);
    proxy.block('up');
    t.send(msg({ from: 'a', to: 'b', index: 1 }));
    await waitFor(() => a.peersDown.includes('b'), 'a notices that b reads nothing', 3000);
    expect(a.logger.lines.some((l) => /outstanding bytes/.test(String(l.fields.reason)))).toBe(true);
    proxy.unblock();
    await waitFor(() => t.stats().peers.b!.connected, 'link re-established after healing', 5000);
  });

  it('does not mistake a slow link that keeps draining for a silent partition', async () => {
    const b = track(new Host('b'))[0]!;
    await b.listen();
    const proxy = new BlackholeProxy(b.port);
    cleanups.push(() => proxy.close());
    await proxy.listen();
    const a = track(new Host('a'))[0]!;
    await a.listen();
    const limits = { ...shortTimeouts, maxFrameBytes: 64 * 1024, maxQueuedBytes: 4 * 1024 * 1024, maxUnflushedBytes: 64 * 1024 };
    b.start({ a: `127.0.0.1:${a.port}` }, { limits });
    const t = a.start({ b: `127.0.0.1:${proxy.port}` }, { limits });
    await connected([a]);
    // 1.5 MB through a 1 MB/s link: ~1.5 s of data ahead of every ping, 6x the pong timeout.
    proxy.rateBytesPerS = 1024 * 1024;
    for (let i = 0; i < 100; i++) expect(t.send(msg({ from: 'a', to: 'b', index: i, entries: entries(i + 1, 60, 256) }))).toBe(true);
    await waitFor(() => b.received.length === 100, 'all data through the slow link', 10_000);
    expect(a.peersDown).toEqual([]);
    expect(t.stats().peers.b!.reconnects).toBe(0);
  });

  it('setPeers drops removed peers and dials added ones', async () => {
    const [a, b, c] = track(...(await cluster(['a', 'b', 'c'])));
    await connected([a!]);
    a!.transport!.setPeers({ c: `127.0.0.1:${c!.port}` });
    expect(Object.keys(a!.transport!.stats().peers)).toEqual(['c']);
    expect(a!.transport!.send(msg({ from: 'a', to: 'b' }))).toBe(false);
    expect(a!.transport!.stats().droppedUnknownPeer).toBe(1);
    a!.transport!.send(msg({ from: 'a', to: 'c', index: 3 }));
    await waitFor(() => c!.received.some((m) => m.index === 3), 'c still served');
    await waitFor(() => !b!.transport!.stats().peers.a!.inboundConnected, 'b sees a leave');
  });
});
