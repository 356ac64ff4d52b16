import { once } from 'node:events';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FaultProxy } from '../src/proxy.js';

// A tiny echo server and a client that collects what comes back, all on 127.0.0.1.
let echo: Server;
let proxy: FaultProxy;
const clients: Socket[] = [];

beforeEach(async () => {
  echo = createServer((s) => {
    s.on('error', () => undefined); // a reset from the proxy is expected in some tests
    s.pipe(s);
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  proxy = await FaultProxy.start({ name: 'a->b', targetHost: '127.0.0.1', targetPort: (echo.address() as AddressInfo).port, seed: 42 });
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await proxy.close();
  echo.close();
});

interface Client {
  socket: Socket;
  received: () => string;
  waitFor: (text: string, timeoutMs: number) => Promise<boolean>;
  closed: () => { closed: boolean; error: string | undefined };
}

async function dial(): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port: proxy.port });
  clients.push(socket);
  let data = '';
  let closed = false;
  let error: string | undefined;
  socket.on('data', (d: Buffer) => (data += d.toString()));
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
  socket.on('close', () => (closed = true));
  // A loud cut may reset the socket before or after it connects; both are fine here.
  await new Promise<void>((resolve) => {
    socket.once('connect', resolve);
    socket.once('close', () => resolve());
  });
  const waitFor = async (text: string, timeoutMs: number): Promise<boolean> => {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (data.includes(text)) return true;
      await new Promise((r) => setTimeout(r, 5));
    }
    return data.includes(text);
  };
  return { socket, received: () => data, waitFor, closed: () => ({ closed, error }) };
}

describe('fault proxy', () => {
  it('passes bytes both ways', async () => {
    const c = await dial();
    c.socket.write('hello');
    expect(await c.waitFor('hello', 2000)).toBe(true);
    expect(proxy.stats()).toMatchObject({ connectionsAccepted: 1, bytesUp: 5, bytesDown: 5 });
  });

  it('cut silently: holds bytes, keeps the connection open, delivers them in order after the heal', async () => {
    const c = await dial();
    c.socket.write('one;');
    expect(await c.waitFor('one;', 2000)).toBe(true);
    proxy.cutSilent();
    c.socket.write('two;');
    c.socket.write('three;');
    expect(await c.waitFor('two;', 200)).toBe(false);
    expect(c.closed()).toEqual({ closed: false, error: undefined });
    proxy.heal();
    expect(await c.waitFor('one;two;three;', 2000)).toBe(true);
  });

  it('cut silently in one direction: the target receives, the dialer hears nothing', async () => {
    const c = await dial();
    proxy.cutSilent(['down']);
    c.socket.write('ping');
    expect(await c.waitFor('ping', 200)).toBe(false);
    expect(proxy.stats().bytesUp).toBe(4); // it went up; the echo is held on the way down
    proxy.pass();
    expect(await c.waitFor('ping', 2000)).toBe(true);
  });

  it('cut silently: a new connection hangs until the heal, then works', async () => {
    proxy.cutSilent();
    const c = await dial(); // the proxy's kernel accepts; nothing goes onward yet
    c.socket.write('late');
    expect(await c.waitFor('late', 200)).toBe(false);
    proxy.heal();
    expect(await c.waitFor('late', 2000)).toBe(true);
  });

  it('cut loudly: resets open connections and refuses new ones until healed', async () => {
    const c = await dial();
    c.socket.write('x');
    expect(await c.waitFor('x', 2000)).toBe(true);
    proxy.cutLoud();
    const until = Date.now() + 2000;
    while (!c.closed().closed && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    expect(c.closed()).toEqual({ closed: true, error: 'ECONNRESET' });
    const d = await dial();
    const until2 = Date.now() + 2000;
    while (!d.closed().closed && Date.now() < until2) await new Promise((r) => setTimeout(r, 5));
    expect(d.closed().closed).toBe(true);
    proxy.heal();
    const e = await dial();
    e.socket.write('back');
    expect(await e.waitFor('back', 2000)).toBe(true);
    expect(proxy.stats().connectionsReset).toBe(2);
  });

  it('delays each direction by at least the configured delay, keeping order under jitter', async () => {
    const c = await dial();
    proxy.shape({ delayMs: 40, jitterMs: 30, bytesPerSecond: null });
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) c.socket.write(`${i},`);
    const expected = Array.from({ length: 20 }, (_, i) => `${i},`).join('');
    expect(await c.waitFor(expected, 3000)).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(80); // 40 ms up + 40 ms down at least
    expect(c.received()).toBe(expected);
  });

  it('limits bandwidth', async () => {
    const c = await dial();
    proxy.shape({ delayMs: 0, jitterMs: 0, bytesPerSecond: 100_000 }, ['up']);
    const payload = 'z'.repeat(20_000);
    const t0 = performance.now();
    c.socket.write(payload);
    expect(await c.waitFor(payload, 5000)).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(150); // 20 kB at 100 kB/s = 200 ms
  });

  it('rejects nonsensical shaping', () => {
    expect(() => proxy.shape({ delayMs: -1, jitterMs: 0, bytesPerSecond: null })).toThrow(RangeError);
    expect(() => proxy.shape({ delayMs: 0, jitterMs: 0, bytesPerSecond: 0 })).toThrow(RangeError);
  });

  it('resets the dialer when the target refuses', async () => {
    const dead = await FaultProxy.start({ name: 'a->dead', targetHost: '127.0.0.1', targetPort: 1 });
    try {
      const socket = connect({ host: '127.0.0.1', port: dead.port });
      let code: string | undefined;
      socket.on('error', (e: NodeJS.ErrnoException) => (code = e.code));
      await new Promise((resolve) => socket.once('close', resolve));
      expect(code).toBe('ECONNRESET');
    } finally {
      await dead.close();
    }
  });
});
