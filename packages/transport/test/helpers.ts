// Test helpers: loopback nodes, a captured logger, a blackhole TCP proxy, bounded waits.
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Entry, Message, MessageType } from '@quorumkv/raft';
import { PeerTransport, type PeerTransportOptions, type TransportLimits, type TransportLogger } from '../src/index.js';

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  msg: string;
}

/** A logger that keeps every line (and prints them when QKV_TEST_LOG=1). */
export function captureLogger(node: string): TransportLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = (level: LogLine['level']) => (fields: Record<string, unknown>, msg: string) => {
    lines.push({ level, fields, msg });
    if (process.env.QKV_TEST_LOG === '1') console.log(`[${node}] ${level} ${msg} ${JSON.stringify(fields)}`);
  };
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/** Fast timers for loopback tests, lenient enough for a loaded 2-core CI machine. */
export const testLimits: Partial<TransportLimits> = {
  pingIntervalMs: 100,
  pongTimeoutMs: 1000,
  inboundIdleTimeoutMs: 1500,
  connectTimeoutMs: 1000,
  reconnectInitialMs: 20,
  reconnectMaxMs: 200,
  closeGraceMs: 200,
};

export const SECRET = 'test-cluster-secret-0123456789';
/** The incarnation id every test host dials with. */
export const INCARNATION = 'c0ffee00'.repeat(4);

/** An HTTP server on 127.0.0.1 whose /raft upgrades go to whatever transport is attached. */
export class Host {
  readonly server = http.createServer((_req, res) => res.writeHead(404).end());
  transport: PeerTransport | null = null;
  port = 0;
  readonly received: Message[] = [];
  readonly peersDown: string[] = [];
  logger: ReturnType<typeof captureLogger>;

  constructor(readonly id: string) {
    this.logger = captureLogger(id);
    this.server.on('upgrade', (req, socket, head) => {
      if (this.transport === null) socket.destroy();
      else this.transport.handleUpgrade(req, socket, head);
    });
  }

  async listen(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  start(peers: Record<string, string>, opts: Partial<PeerTransportOptions> = {}): PeerTransport {
    this.transport = new PeerTransport({
      id: this.id,
      clusterSecret: SECRET,
      incarnation: INCARNATION,
      peers,
      limits: testLimits,
      logger: this.logger,
      random: () => 0.5,
      onMessage: (m) => this.received.push(m),
      onPeerDown: (p) => this.peersDown.push(p),
      ...opts,
    });
    return this.transport;
  }

  async stop(): Promise<void> {
    await this.transport?.close();
    this.transport = null;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Starts one Host per id, all listening, each transport dialling the others directly. */
export async function cluster(
  ids: string[],
  opts: Partial<PeerTransportOptions> = {},
  extraPeers: Record<string, string> = {},
): Promise<Host[]> {
  const hosts = ids.map((id) => new Host(id));
  for (const h of hosts) await h.listen();
  const addresses = { ...extraPeers, ...Object.fromEntries(hosts.map((h) => [h.id, `127.0.0.1:${h.port}`])) };
  for (const h of hosts) h.start(addresses, opts);
  return hosts;
}

/** Polls `cond` every 10 ms until it holds; fails after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A message with every field at its zero value, overridden by `over`. */
export function msg(over: Partial<Message> & { from: string; to: string }): Message {
  return {
    type: 10 as MessageType,
    term: 1,
    logTerm: 1, // an append after index > 0 has a log term >= 1 (the receiver checks it)
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...over,
  };
}

/** `count` entries with `size`-byte payloads whose bytes depend on the index. */
export function entries(firstIndex: number, count: number, size: number): Entry[] {
  return Array.from({ length: count }, (_, k) => {
    const index = firstIndex + k;
    const data = new Uint8Array(size);
    for (let b = 0; b < size; b++) data[b] = (index * 31 + b * 7) & 0xff;
    return { term: 1, index, type: 0, data };
  });
}

/**
 * A TCP proxy that can stop forwarding without closing anything: `block()` stops reading from
 * every socket (bytes pile up in kernel buffers, as in a partition that drops packets), and
 * `unblock()` lets them flow again. New connections made while blocked are held too.
 */
export class BlackholeProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  /** The dialler-side sockets: pausing them stops the dialler -> target direction only. */
  readonly #clientSockets = new Set<net.Socket>();
  #blocked: false | 'both' | 'up' = false;
  port = 0;
  connections = 0;

  /** Bytes per second in each direction while not blocked; null = as fast as possible. */
  rateBytesPerS: number | null = null;

  constructor(readonly targetPort: number) {
    this.#server = net.createServer((client) => this.#onConnection(client));
  }

  #onConnection(client: net.Socket): void {
    this.connections++;
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    this.#clientSockets.add(client);
    client.on('close', () => this.#clientSockets.delete(client));
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      this.#sockets.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        this.#sockets.delete(a);
        b.destroy();
      });
      a.on('data', (d: Buffer) => this.#forward(a, b, d));
      if (this.#blocked === 'both' || (this.#blocked === 'up' && a === client)) a.pause();
    }
  }

  #forward(from: net.Socket, to: net.Socket, data: Buffer): void {
    to.write(data);
    if (this.rateBytesPerS === null) return;
    // Throttle: stop reading for as long as these bytes take at the configured rate.
    from.pause();
    setTimeout(() => {
      if (!this.#blocked) from.resume();
    }, (1000 * data.byteLength) / this.rateBytesPerS);
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.#server.address() as AddressInfo).port;
    return this.port;
  }

  /** Stops forwarding in both directions, or only dialler -> target ('up': a one-way partition). */
  block(direction: 'both' | 'up' = 'both'): void {
    this.#blocked = direction;
    for (const s of direction === 'both' ? this.#sockets : this.#clientSockets) s.pause();
  }

  unblock(): void {
    this.#blocked = false;
    for (const s of this.#sockets) s.resume();
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Short liveness timers, for the tests that wait for a timeout to fire. */
export const shortTimeouts: Partial<TransportLimits> = {
  ...testLimits,
  pingIntervalMs: 50,
  pongTimeoutMs: 250,
  inboundIdleTimeoutMs: 400,
  connectTimeoutMs: 300,
};
