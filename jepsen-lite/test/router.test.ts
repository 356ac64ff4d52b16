import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import tls from 'node:tls';
import { HELLO_HEADER, NodeRouter, dialerOf, serverNameOf } from '../src/router.js';

const hello = (from: string) => Buffer.from(JSON.stringify({ v: 1, channel: 'raft', from, to: 'b', ts: 0, nonce: '', mac: '' })).toString('base64url');
const upgrade = (from?: string) => `GET /raft HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n${from === undefined ? '' : `${HELLO_HEADER}: ${hello(from)}\r\n`}\r\n`;

describe('dialerOf', () => {
  it('reads the dialer id from the hello header, and nothing from anything else', () => {
    expect(dialerOf(Buffer.from(upgrade('a')))).toBe('a');
    expect(dialerOf(Buffer.from(upgrade()))).toBeUndefined();
    expect(dialerOf(Buffer.from('GET /v1/status HTTP/1.1\r\nHost: x\r\n'))).toBeUndefined(); // head not finished
    expect(dialerOf(Buffer.from(`GET / HTTP/1.1\r\n${HELLO_HEADER}: !!!notbase64json\r\n\r\n`))).toBeUndefined();
  });
});

/** The first bytes a TLS client sends (its ClientHello) when dialling with `servername`. */
async function clientHelloWith(servername: string): Promise<Buffer> {
  const sink = createServer();
  sink.listen(0, '127.0.0.1');
  await once(sink, 'listening');
  const got = new Promise<Buffer>((resolve) => sink.once('connection', (s) => s.once('data', (b: Buffer) => { resolve(b); s.destroy(); })));
  const c = tls.connect({ host: '127.0.0.1', port: (sink.address() as AddressInfo).port, servername, rejectUnauthorized: false });
  c.on('error', () => undefined);
  const head = await got;
  c.destroy();
  sink.close();
  return head;
}

describe('dialerOf on TLS', () => {
  it('reads the dialer id from a peer\'s TLS server name, and nothing from a client\'s', async () => {
    const peer = await clientHelloWith('n2.peer.quorumkv.invalid');
    expect(serverNameOf(peer)).toBe('n2.peer.quorumkv.invalid');
    expect(dialerOf(peer)).toBe('n2');
    expect(dialerOf(await clientHelloWith('db.example.com'))).toBeUndefined();
    // Cut anywhere, a ClientHello yields no name and no throw.
    for (let n = 0; n < peer.length; n += 7) expect(() => serverNameOf(peer.subarray(0, n))).not.toThrow();
    expect(serverNameOf(peer.subarray(0, peer.length - 1))).toBeUndefined();
  });
});

describe('node router', () => {
  let echo: Server;
  let router: NodeRouter;
  const sockets: Socket[] = [];
  beforeEach(async () => {
    echo = createServer((s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    router = await NodeRouter.start({ node: 'b', targetHost: '127.0.0.1', targetPort: (echo.address() as AddressInfo).port, peers: ['a', 'b', 'c'], seed: 1 });
  });
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await router.close();
    echo.close();
  });

  async function dial(head: string): Promise<{ waitFor: (text: string, ms: number) => Promise<boolean> }> {
    const s = connect({ host: '127.0.0.1', port: router.port });
    sockets.push(s);
    s.on('error', () => undefined);
    let data = '';
    s.on('data', (d: Buffer) => (data += d.toString()));
    await once(s, 'connect');
    s.write(head);
    s.write('payload;');
    return {
      waitFor: async (text, ms) => {
        const until = Date.now() + ms;
        while (Date.now() < until && !data.includes(text)) await new Promise((r) => setTimeout(r, 5));
        return data.includes(text);
      },
    };
  }

  it('forwards the sniffed head and later bytes unchanged', async () => {
    const c = await dial(upgrade('a'));
    expect(await c.waitFor(upgrade('a') + 'payload;', 2000)).toBe(true);
    expect(router.links.get('a')!.stats().connectionsAccepted).toBe(1);
  });

  it('routes a TLS dial by its server name: a peer to its own link, anything else through', async () => {
    const tlsDial = (servername: string) => {
      const c = tls.connect({ host: '127.0.0.1', port: router.port, servername, rejectUnauthorized: false });
      c.on('error', () => undefined); // the echo server speaks no TLS: only the routing is looked at
      return c;
    };
    const fromC = tlsDial('c.peer.quorumkv.invalid');
    const client = tlsDial('b.example.com');
    const routed = async () => router.links.get('c')!.stats().connectionsAccepted === 1;
    const until = Date.now() + 2000;
    while (Date.now() < until && !(await routed())) await new Promise((r) => setTimeout(r, 5));
    expect(router.links.get('c')!.stats().connectionsAccepted).toBe(1);
    expect(router.links.get('a')!.stats().connectionsAccepted).toBe(0);
    fromC.destroy();
    client.destroy();
  });

  it('applies a cut only to the dialing peer’s link; clients and other peers pass', async () => {
    router.links.get('a')!.cutSilent();
    const fromA = await dial(upgrade('a'));
    const fromC = await dial(upgrade('c'));
    const client = await dial(upgrade());
    expect(await fromC.waitFor('payload;', 2000)).toBe(true);
    expect(await client.waitFor('payload;', 2000)).toBe(true);
    expect(await fromA.waitFor('payload;', 200)).toBe(false);
    router.links.get('a')!.heal();
    expect(await fromA.waitFor('payload;', 2000)).toBe(true);
  });
});
