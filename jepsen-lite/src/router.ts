// One front door per node: a listener that every other node (and any client following a leader
// hint) dials instead of the node itself. It reads the HTTP upgrade request head, finds out who
// is dialing from the transport's hello header (`x-quorumkv-hello`, base64url JSON with
// `from`), and hands the connection to the directed link from→this node; anything else (a
// client, an HTTP request) goes through a link that is never faulted.
//
// Why not one port per directed link: every founding member must be started with the same
// `--peers` list (the server writes it into the first log entries, which must be identical on
// every node), so a node cannot be given its own private proxy addresses.

import type { AddressInfo, Server, Socket } from 'node:net';
import type { LinkOptions } from './proxy.js';
import { Link, listen } from './proxy.js';

/** Most bytes read while looking for the end of the request head. */
export const SNIFF_BYTES_MAX = 16 * 1024;
/** Longest wait for the request head before the connection is passed through unidentified. */
export const SNIFF_TIMEOUT_MS = 2000;
/** The header the quorumkv transport puts its signed hello in. */
export const HELLO_HEADER = 'x-quorumkv-hello';

/** The TLS server name a quorumkv peer dials with: `<its id>` + this (the server's tls.ts). */
export const PEER_SNI_SUFFIX = '.peer.quorumkv.invalid';
/** First byte of a TLS handshake record. */
const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * Finds the dialing node's id in a request head — the hello header of a plaintext upgrade, or the
 * server name of a TLS ClientHello (a peer dials with `<id>.peer.quorumkv.invalid`) — or
 * undefined (not a peer connection, or a head that cannot be read — which is passed through,
 * never an error).
 */
export function dialerOf(head: Buffer): string | undefined {
  if (head[0] === TLS_HANDSHAKE_RECORD) {
    const name = serverNameOf(head);
    return name?.endsWith(PEER_SNI_SUFFIX) ? name.slice(0, -PEER_SNI_SUFFIX.length) : undefined;
  }
  const text = head.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  for (const line of text.slice(0, end).split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon).trim().toLowerCase() !== HELLO_HEADER) continue;
    try {
      const hello = JSON.parse(Buffer.from(line.slice(colon + 1).trim(), 'base64url').toString('utf8')) as { from?: unknown };
      return typeof hello.from === 'string' ? hello.from : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Bytes of the first TLS record when `head` holds all of it, else undefined. */
export function tlsRecordBytes(head: Buffer): number | undefined {
  if (head.length < 5 || head[0] !== TLS_HANDSHAKE_RECORD) return undefined;
  const total = 5 + head.readUInt16BE(3);
  return head.length >= total ? total : undefined;
}

/**
 * The server name (SNI) of the ClientHello in the first TLS record of `head`, or undefined.
 * Every length is checked against the record, so a malformed hello yields undefined, never a throw.
 */
export function serverNameOf(head: Buffer): string | undefined {
  const end = tlsRecordBytes(head);
  if (end === undefined || head[5] !== 0x01) return undefined; // not a ClientHello
  let at = 5 + 4 + 2 + 32; // record header, handshake header, client_version, random
  const skip = (lenBytes: 1 | 2): boolean => {
    if (at + lenBytes > end) return false;
    at += lenBytes + (lenBytes === 1 ? head[at]! : head.readUInt16BE(at));
    return at <= end;
  };
  if (!skip(1) || !skip(2) || !skip(1) || at + 2 > end) return undefined; // session id, cipher suites, compression
  const extEnd = Math.min(end, at + 2 + head.readUInt16BE(at));
  at += 2;
  while (at + 4 <= extEnd) {
    const type = head.readUInt16BE(at);
    const len = head.readUInt16BE(at + 2);
    at += 4;
    // server_name: list length (2), name type (1, 0 = host name), name length (2), name.
    if (type === 0 && len >= 5 && at + 5 <= extEnd && head[at + 2] === 0) {
      const nameLen = head.readUInt16BE(at + 3);
      return at + 5 + nameLen <= extEnd ? head.toString('latin1', at + 5, at + 5 + nameLen) : undefined;
    }
    at += len;
  }
  return undefined;
}

/** Options of {@link NodeRouter.start}. */
export interface NodeRouterOptions {
  /** The node behind this door. */
  node: string;
  targetHost: string;
  targetPort: number;
  /** The other nodes, whose connections get a faultable link each. */
  peers: readonly string[];
  seed: number;
  queuedBytesMax?: number;
}

/** The front door of one node: the links from every peer to it, plus a pass-through for clients. */
export class NodeRouter {
  private constructor(
    private readonly server: Server,
    /** Directed links `${from}->${node}`, by dialer id. */
    readonly links: ReadonlyMap<string, Link>,
    private readonly passThrough: Link,
  ) {}

  /** Starts listening on 127.0.0.1 (port chosen by the OS). */
  static async start(o: NodeRouterOptions): Promise<NodeRouter> {
    const base: Omit<LinkOptions, 'name' | 'seed'> = { targetHost: o.targetHost, targetPort: o.targetPort, ...(o.queuedBytesMax === undefined ? {} : { queuedBytesMax: o.queuedBytesMax }) };
    const links = new Map(o.peers.filter((p) => p !== o.node).map((from, i) => [from, new Link({ ...base, name: `${from}->${o.node}`, seed: o.seed + i })] as const));
    const passThrough = new Link({ ...base, name: `clients->${o.node}`, seed: o.seed });
    let router: NodeRouter | undefined;
    const server = await listen('127.0.0.1', 0, (socket) => router?.route(socket));
    router = new NodeRouter(server, links, passThrough);
    return router;
  }

  /** The bound port. */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops listening and resets every connection. */
  async close(): Promise<void> {
    for (const l of [...this.links.values(), this.passThrough]) l.resetAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Reads the request head (bounded in bytes and time), then hands the socket to its link. */
  private route(socket: Socket): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onError);
      socket.pause();
      const head = Buffer.concat(chunks);
      const from = dialerOf(head);
      (from === undefined ? this.passThrough : (this.links.get(from) ?? this.passThrough)).accept(socket, head);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      const head = Buffer.concat(chunks);
      if (size >= SNIFF_BYTES_MAX || tlsRecordBytes(head) !== undefined || head.includes('\r\n\r\n')) finish();
    };
    const onError = (): void => {
      done = true;
      clearTimeout(timer);
      socket.destroy();
    };
    const timer = setTimeout(finish, SNIFF_TIMEOUT_MS);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onError);
    socket.resume();
  }
}
