// The fault proxy: a `Link` is one directed peer link (connections node A dials to node B) that
// the harness can break the way networks break, from inside the test process. `FaultProxy` is a
// Link with its own listening port; in a cluster, each node's front door (router.ts) hands
// connections to the Link of the dialing peer.
//
// Terms: `up` is the byte stream from the dialing side to the target (A→B), `down` is B→A.
// - pass: bytes flow (through any delay / bandwidth shaping that is set).
// - cut silently: no byte moves in the cut direction(s), but both TCP connections stay open —
//   like dropped packets with TCP retransmission: bytes that were sent are held (not lost, which
//   would corrupt the stream) and arrive after the heal, if the peers have not given up by then.
//   New connections are accepted by the kernel but not connected onward until the heal, like a
//   SYN that is never answered.
// - cut loudly: every connection is reset (RST) and new ones are reset at once.
// - delay with seeded jitter, and a bandwidth limit in bytes per second, per direction.

import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { connect } from 'node:net';
import type { Rng } from './random.js';
import { createRng } from './random.js';

/** A direction on a link: `up` = dialer → target, `down` = target → dialer. */
export type Direction = 'up' | 'down';

/** Delay and bandwidth applied to every byte in one or both directions. */
export interface Shaping {
  /** Fixed added latency per chunk. */
  delayMs: number;
  /** Extra uniform random latency in [0, jitterMs] per chunk (order is kept). */
  jitterMs: number;
  /** Bandwidth limit; null = unlimited. */
  bytesPerSecond: number | null;
}

/** Options of {@link FaultProxy.start}: a {@link LinkOptions} plus where to listen. */
export interface FaultProxyOptions extends LinkOptions {
  /** Default 127.0.0.1. */
  listenHost?: string;
  /** Default 0 (any free port). */
  listenPort?: number;
}

/** Counters of a proxy since it started. */
export interface ProxyStats {
  connectionsAccepted: number;
  connectionsOpen: number;
  connectionsReset: number;
  bytesUp: number;
  bytesDown: number;
}

/** A chunk is split to this size so the bandwidth limit paces smoothly. */
const SHAPING_CHUNK_BYTES_MAX = 16 * 1024;
const QUEUED_BYTES_MAX_DEFAULT = 4 * 1024 * 1024;
const NO_SHAPING: Shaping = { delayMs: 0, jitterMs: 0, bytesPerSecond: null };

type Item = { kind: 'data'; chunk: Buffer; atMs: number } | { kind: 'end'; atMs: number };

/** One direction of one connection: a paced, pausable queue from source to sink. */
class Pipe {
  private readonly queue: Item[] = [];
  private queuedBytes = 0;
  private lastAtMs = 0;
  private bandwidthFreeAtMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private sinkFull = false;
  private finished = false;

  constructor(
    private readonly source: Socket,
    private readonly sink: Socket,
    private readonly link: Link,
    readonly direction: Direction,
    initial: Buffer | undefined,
  ) {
    if (initial !== undefined && initial.length > 0) this.enqueueData(initial);
    source.on('data', (chunk: Buffer) => this.enqueueData(chunk));
    source.on('end', () => this.enqueue({ kind: 'end', atMs: this.deliveryTime(0) }));
    sink.on('drain', () => {
      this.sinkFull = false;
      this.update();
    });
  }

  private enqueueData(chunk: Buffer): void {
    this.link.countBytes(this.direction, chunk.length);
    for (let off = 0; off < chunk.length; off += SHAPING_CHUNK_BYTES_MAX) {
      const piece = chunk.subarray(off, off + SHAPING_CHUNK_BYTES_MAX);
      this.enqueue({ kind: 'data', chunk: piece, atMs: this.deliveryTime(piece.length) });
      this.queuedBytes += piece.length;
    }
    this.update();
  }

  private enqueue(item: Item): void {
    this.queue.push(item);
    this.update();
  }

  /** When a piece of `bytes` may reach the sink: after delay + jitter, in order, within bandwidth. */
  private deliveryTime(bytes: number): number {
    const s = this.link.shapingFor(this.direction);
    const now = performance.now();
    let at = Math.max(now + s.delayMs + (s.jitterMs > 0 ? this.link.jitter() * s.jitterMs : 0), this.lastAtMs);
    if (s.bytesPerSecond !== null && bytes > 0) {
      at = Math.max(at, this.bandwidthFreeAtMs) + (bytes * 1000) / s.bytesPerSecond;
      this.bandwidthFreeAtMs = at;
    }
    this.lastAtMs = at;
    return at;
  }

  /** Delivers what is due, then decides whether to read more from the source. */
  update(): void {
    if (this.finished) return;
    const blocked = this.link.isCut(this.direction);
    const now = performance.now();
    while (!blocked && !this.sinkFull && this.queue.length > 0 && this.queue[0]!.atMs <= now) {
      const item = this.queue.shift()!;
      if (item.kind === 'end') {
        this.sink.end();
        this.finished = true;
        return;
      }
      this.queuedBytes -= item.chunk.length;
      if (!this.sink.write(item.chunk)) this.sinkFull = true;
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const head = this.queue[0];
    if (!blocked && !this.sinkFull && head !== undefined) this.timer = setTimeout(() => this.update(), Math.max(0, head.atMs - now));
    const limit = this.link.queuedBytesMax;
    if (blocked || this.sinkFull || this.queuedBytes >= limit) this.source.pause();
    else this.source.resume();
  }

  stop(): void {
    this.finished = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }
}

/** One proxied TCP connection: the dialer's socket, the target's socket and two pipes. */
class Connection {
  private upstream: Socket | undefined;
  private pipes: Pipe[] = [];
  private closed = false;

  constructor(
    readonly client: Socket,
    private readonly link: Link,
    /** Bytes already read from the client (a router's sniffed request head), sent first. */
    private readonly head: Buffer | undefined,
  ) {
    client.pause();
    client.on('error', () => this.reset());
    client.on('close', () => this.close());
  }

  /** Connects onward to the target (called at once, or at the heal of a silent cut). */
  open(host: string, port: number): void {
    if (this.closed || this.upstream !== undefined) return;
    const up = connect({ host, port });
    this.upstream = up;
    up.pause();
    up.on('error', () => this.reset());
    up.on('close', () => this.close());
    up.on('connect', () => {
      this.pipes = [new Pipe(this.client, up, this.link, 'up', this.head), new Pipe(up, this.client, this.link, 'down', undefined)];
      this.update();
    });
  }

  get connected(): boolean {
    return this.upstream !== undefined;
  }

  update(): void {
    for (const p of this.pipes) p.update();
  }

  /** Resets both sides (RST), as a loud cut or a refused target does. */
  reset(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pipes) p.stop();
    this.client.resetAndDestroy();
    this.upstream?.resetAndDestroy();
    this.link.forget(this, true);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pipes) p.stop();
    this.client.destroy();
    this.upstream?.destroy();
    this.link.forget(this, false);
  }
}

/** Options of a {@link Link}. */
export interface LinkOptions {
  /** Label for logs and errors, e.g. `n1->n2`. */
  name: string;
  targetHost: string;
  targetPort: number;
  /** Seed of the jitter. Default 1. */
  seed?: number;
  /** Bytes held per direction per connection before reading from the source pauses. Default 4 MiB. */
  queuedBytesMax?: number;
}

/**
 * The controllable state of one directed link and its connections, with no listener of its own:
 * a {@link FaultProxy} (one port per link) or a router (one port per node) hands it sockets.
 */
export class Link {
  readonly name: string;
  readonly queuedBytesMax: number;
  private readonly targetHost: string;
  private readonly targetPort: number;
  private readonly rng: Rng;
  private readonly conns = new Set<Connection>();
  private cut: Record<Direction, boolean> = { up: false, down: false };
  private loud = false;
  private shaping: Record<Direction, Shaping> = { up: NO_SHAPING, down: NO_SHAPING };
  private readonly counters: ProxyStats = { connectionsAccepted: 0, connectionsOpen: 0, connectionsReset: 0, bytesUp: 0, bytesDown: 0 };

  constructor(options: LinkOptions) {
    this.name = options.name;
    this.targetHost = options.targetHost;
    this.targetPort = options.targetPort;
    this.rng = createRng(options.seed ?? 1);
    this.queuedBytesMax = options.queuedBytesMax ?? QUEUED_BYTES_MAX_DEFAULT;
  }

  /** Heals every cut and removes all shaping. */
  heal(): void {
    this.loud = false;
    this.cut = { up: false, down: false };
    this.shaping = { up: NO_SHAPING, down: NO_SHAPING };
    this.refresh();
  }

  /** Heals cuts but keeps shaping. */
  pass(): void {
    this.loud = false;
    this.cut = { up: false, down: false };
    this.refresh();
  }

  /** Stops bytes in the given directions without closing anything (see file comment). */
  cutSilent(directions: readonly Direction[] = ['up', 'down']): void {
    for (const d of directions) this.cut[d] = true;
    this.refresh();
  }

  /** Resets every connection and every new one until {@link pass} or {@link heal}. */
  cutLoud(): void {
    this.loud = true;
    for (const c of [...this.conns]) c.reset();
  }

  /** Sets delay / jitter / bandwidth for the given directions (default both). */
  shape(shaping: Shaping, directions: readonly Direction[] = ['up', 'down']): void {
    if (shaping.delayMs < 0 || shaping.jitterMs < 0) throw new RangeError('delayMs and jitterMs must be >= 0');
    if (shaping.bytesPerSecond !== null && !(shaping.bytesPerSecond > 0)) throw new RangeError('bytesPerSecond must be > 0 or null');
    for (const d of directions) this.shaping[d] = { ...shaping };
  }

  /** A copy of the counters. */
  stats(): ProxyStats {
    return { ...this.counters, connectionsOpen: this.conns.size };
  }

  /** Takes over an accepted socket; `head` = bytes already read from it, forwarded first. */
  accept(socket: Socket, head?: Buffer): void {
    this.counters.connectionsAccepted++;
    const c = new Connection(socket, this, head);
    this.conns.add(c);
    if (this.loud) return c.reset();
    if (!this.cut.up && !this.cut.down) c.open(this.targetHost, this.targetPort);
  }

  /** Resets every connection. */
  resetAll(): void {
    for (const c of [...this.conns]) c.reset();
  }

  /** @internal */
  isCut(d: Direction): boolean {
    return this.cut[d];
  }

  /** @internal */
  shapingFor(d: Direction): Shaping {
    return this.shaping[d];
  }

  /** @internal A jitter sample in [0, 1). */
  jitter(): number {
    return this.rng.next();
  }

  /** @internal */
  countBytes(d: Direction, n: number): void {
    if (d === 'up') this.counters.bytesUp += n;
    else this.counters.bytesDown += n;
  }

  /** @internal */
  forget(c: Connection, wasReset: boolean): void {
    this.conns.delete(c);
    if (wasReset) this.counters.connectionsReset++;
  }

  private refresh(): void {
    const anyCut = this.cut.up || this.cut.down;
    for (const c of this.conns) {
      if (!c.connected && !anyCut) c.open(this.targetHost, this.targetPort);
      c.update();
    }
  }
}

/**
 * A controllable TCP proxy for one directed link: a listener plus a {@link Link}.
 *
 * @example
 * const p = await FaultProxy.start({ name: 'n1->n2', targetHost: '127.0.0.1', targetPort: 7002 });
 * p.cutSilent();            // n1 and n2 stop hearing each other on this link
 * p.heal();                 // everything flows again, held bytes first
 * p.shape({ delayMs: 50, jitterMs: 20, bytesPerSecond: null });
 * await p.close();
 */
export class FaultProxy {
  /** The link's controls. */
  readonly link: Link;
  private readonly server: Server;

  private constructor(server: Server, link: Link) {
    this.server = server;
    this.link = link;
  }

  /** Starts listening; resolves once the port is bound. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const link = new Link(options);
    const server = await listen(options.listenHost ?? '127.0.0.1', options.listenPort ?? 0, (socket) => link.accept(socket));
    return new FaultProxy(server, link);
  }

  /** The bound listen port. */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** See {@link Link.heal}. */
  heal(): void {
    this.link.heal();
  }

  /** See {@link Link.pass}. */
  pass(): void {
    this.link.pass();
  }

  /** See {@link Link.cutSilent}. */
  cutSilent(directions: readonly Direction[] = ['up', 'down']): void {
    this.link.cutSilent(directions);
  }

  /** See {@link Link.cutLoud}. */
  cutLoud(): void {
    this.link.cutLoud();
  }

  /** See {@link Link.shape}. */
  shape(shaping: Shaping, directions: readonly Direction[] = ['up', 'down']): void {
    this.link.shape(shaping, directions);
  }

  /** See {@link Link.stats}. */
  stats(): ProxyStats {
    return this.link.stats();
  }

  /** Stops listening and resets every connection. */
  async close(): Promise<void> {
    this.link.resetAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Listens on host:port with paused sockets; resolves once bound. */
export async function listen(host: string, port: number, onSocket: (s: Socket) => void): Promise<Server> {
  const server = createServer({ pauseOnConnect: true });
  server.on('connection', onSocket);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
