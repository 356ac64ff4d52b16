// Helpers of the real-cluster client tests (test/client): a cluster with fast timers, a client
// connected to it, error-code capture, a bounded concurrent runner, and a TCP proxy that can lose
// a node's answers on purpose (to make a write whose answer never reaches the client).
import net from 'node:net';
import { WebSocket } from 'ws';
import { connect, type ConnectOptions, type KvClient, type WebSocketFactory, type WebSocketLike } from '@quorumkv/client';
import { mulberry32 } from '@quorumkv/testkit';
import { ProcessCluster, freePorts } from '../harness/cluster.js';

/** Raft tick of the test clusters: fast, because these tests are about the client, not timers. */
export const TICK_MS = 20;
/** Election timeout in ticks (randomized up to 2x by the core): 200–400 ms with TICK_MS. */
export const ELECTION_TICKS = 10;

/** Starts a three-node cluster with the fast timers above and waits for its first leader. */
export async function startCluster(name: string): Promise<ProcessCluster> {
  const c = await ProcessCluster.start({ name, tickMs: TICK_MS, electionTicks: ELECTION_TICKS });
  await c.waitForLeader({ timeoutMs: 20_000 });
  return c;
}

/** `host:port` of every node of the cluster, in node order. */
export function endpointsOf(c: ProcessCluster): string[] {
  return c.nodes.map((n) => n.address);
}

/** connect() with a seeded jitter source; `endpoints` defaults to every node of `c`. */
export function connectTo(c: ProcessCluster, opts: Partial<ConnectOptions> = {}): Promise<KvClient> {
  return connect({ endpoints: endpointsOf(c), random: mulberry32(42), connectTimeoutMs: 10_000, ...opts });
}

/** What a promise settled with, as a tagged value, and how long that took (ms). */
export type Outcome<T> = { ok: true; value: T; elapsedMs: number } | { ok: false; code: string; error: Error; elapsedMs: number };

/** Awaits `p` and returns its outcome instead of throwing; `code` is the QuorumKvError code (or 'non-qkv'). */
export async function outcome<T>(p: Promise<T>, startedAtMs = Date.now()): Promise<Outcome<T>> {
  try {
    const value = await p;
    return { ok: true, value, elapsedMs: Date.now() - startedAtMs };
  } catch (e) {
    const error = e instanceof Error ? e : new Error(String(e));
    const code = typeof (e as { code?: unknown }).code === 'string' ? (e as { code: string }).code : 'non-qkv';
    return { ok: false, code, error, elapsedMs: Date.now() - startedAtMs };
  }
}

/** Runs `fn(i)` for i in [0, count) with at most `concurrency` at once; rejects on the first failure. */
export async function runBounded(count: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/**
 * A WebSocket factory (the `ws` package, as the client uses on Node 20) that opens connections
 * for the addresses in `via` through another address, e.g. a node's real `host:port` through a
 * {@link LossyProxy}. The client keeps using, and reporting, the node's real address.
 */
export function redirectingFactory(via: ReadonlyMap<string, string>): WebSocketFactory {
  return (url, maxFrameBytes) => {
    let target = url;
    for (const [from, to] of via) target = target.replace(`//${from}/`, `//${to}/`);
    const ws = new WebSocket(target, { maxPayload: maxFrameBytes, perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    return ws as unknown as WebSocketLike;
  };
}

/** Most connections one proxy keeps open (a test opens a handful). */
const PROXY_CONNECTIONS_MAX = 64;

/**
 * A TCP proxy from a free loopback port to one node. Bytes pass through unchanged, except that
 * after `loseReplies()` every byte the node sends on the connections open at that moment is
 * dropped (requests still reach the node); `cutLossy()` then destroys those connections, as if
 * the network failed between the node's apply and the client's receipt of the answer. New
 * connections always pass everything.
 */
export class LossyProxy {
  readonly port: number;
  private readonly server: net.Server;
  private readonly conns = new Set<{ client: net.Socket; upstream: net.Socket; lossy: boolean }>();
  /** Bytes dropped on lossy connections (node → client). */
  droppedBytes = 0;
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(port: number, server: net.Server) {
    this.port = port;
    this.server = server;
  }

  /** Listens on a free loopback port and forwards each connection to 127.0.0.1:targetPort. */
  static async start(targetPort: number): Promise<LossyProxy> {
    const [port] = await freePorts(1);
    const server = net.createServer();
    const proxy = new LossyProxy(port!, server);
    server.maxConnections = PROXY_CONNECTIONS_MAX;
    server.on('connection', (client) => proxy.accept(client, targetPort));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  /** `127.0.0.1:port` of the proxy. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private accept(client: net.Socket, targetPort: number): void {
    this.accepted++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    const conn = { client, upstream, lossy: false };
    this.conns.add(conn);
    client.on('data', (b: Buffer) => upstream.write(b));
    upstream.on('data', (b: Buffer) => {
      if (conn.lossy) this.droppedBytes += b.length;
      else client.write(b);
    });
    const end = (): void => {
      this.conns.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  }

  /** From now on, drop what the node sends on the connections open now. Returns how many. */
  loseReplies(): number {
    for (const c of this.conns) c.lossy = true;
    return this.conns.size;
  }

  /** Destroys the lossy connections (the client sees its connection drop). */
  cutLossy(): void {
    for (const c of [...this.conns]) {
      if (!c.lossy) continue;
      c.client.destroy();
      c.upstream.destroy();
    }
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    for (const c of this.conns) {
      c.client.destroy();
      c.upstream.destroy();
    }
    this.conns.clear();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
