import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Message } from '@quorumkv/raft';
import { CloseCode } from './close-codes.js';
import { isValidNodeId, isWireMessageType } from './codec.js';
import { assert, TransportConfigError, TransportError } from './errors.js';
import { HELLO_HEADER, INCARNATION_HEX_LENGTH, ReplayCache, createHelloHeader, isHex, verifyHelloHeader } from './handshake.js';
import { InboundConnection, type InboundContext, type InboundCounters } from './inbound.js';
import { resolveLimits, type TransportLimits } from './limits.js';
import { closeWithGrace } from './close.js';
import { OutboundLink, type LinkContext } from './outbound.js';
import { normalizePeers, peerUrl, RAFT_PATH } from './peers.js';
import type { PeerStats, PeerTls, PeerTransportOptions, TransportLogger, TransportStats } from './types.js';

/** Largest probe answer a dialler accepts, bytes. */
const MAX_PROBE_ANSWER_BYTES = 64 * 1024;

/**
 * Raft peer RPC over WebSocket. Each node sends to a peer over its own outbound connection and
 * receives on the connections peers open to it (directed links), so a fault proxy can sit on
 * each direction. Messages are batched per peer into one msgpack frame per event-loop turn.
 *
 * @example
 * const t = new PeerTransport({ id: 'n1', clusterSecret, peers: { n2: '10.0.0.2:7000' }, logger, onMessage });
 * server.on('upgrade', (req, socket, head) => {
 *   if (new URL(req.url ?? '/', 'http://x').pathname === '/raft') t.handleUpgrade(req, socket, head);
 * });
 * for (const m of ready.messages) if (!t.send(m)) node.reportUnreachable(m.to);
 */
export class PeerTransport {
  /** This node's id. */
  readonly id: string;
  /** The validated limits in force. */
  readonly limits: Readonly<TransportLimits>;
  readonly #secret: string;
  readonly #logger: TransportLogger;
  readonly #onMessage: (msg: Message, incarnation: string) => void;
  readonly #onPeerDown: ((peerId: string) => void) | undefined;
  readonly #onSnapshotConnection: ((peerId: string, ws: WebSocket) => void) | undefined;
  readonly #clusterId: () => string | null;
  readonly #incarnation: string;
  readonly #checkIncarnation: ((peerId: string, incarnation: string, clusterId: string) => string | null) | undefined;
  readonly #onProbe: ((peerId: string, incarnation: string) => unknown) | undefined;
  readonly #tls: PeerTls | undefined;
  /** Hellos stamped before this are refused (the replay cache does not survive a restart). */
  readonly #notBeforeMs: number;
  /** Open snapshot-channel connections (both directions), closed at shutdown. */
  readonly #snapshotConns = new Set<WebSocket>();
  readonly #linkCtx: LinkContext;
  readonly #inboundCtx: InboundContext;
  readonly #wss: WebSocketServer;
  readonly #replay: ReplayCache;
  readonly #nowMs: () => number;
  #peers = new Map<string, string>();
  readonly #links = new Map<string, OutboundLink>();
  readonly #inbound = new Map<string, InboundConnection>();
  readonly #inboundCounters = new Map<string, InboundCounters>();
  /** Sockets that are mid-handshake or being refused; closed by close(). */
  readonly #pending = new Set<WebSocket>();
  readonly #dirty = new Set<OutboundLink>();
  #flushScheduled = false;
  #closed = false;
  #closing: Promise<void> | null = null;
  #refusedConnections = 0;
  #badFrames = 0;
  #droppedUnknownPeer = 0;

  /** @throws TransportConfigError on a bad id, secret, peer map or limit. */
  constructor(opts: PeerTransportOptions) {
    if (!isValidNodeId(opts.id)) throw new TransportConfigError(`id ${JSON.stringify(opts.id)} is not a valid node id`);
    if (typeof opts.clusterSecret !== 'string' || opts.clusterSecret.length < 16) {
      throw new TransportConfigError('clusterSecret must be a string of at least 16 characters (there is no insecure mode)');
    }
    if (typeof opts.onMessage !== 'function') throw new TransportConfigError('onMessage must be a function');
    if (typeof opts.incarnation !== 'string' || !isHex(opts.incarnation, INCARNATION_HEX_LENGTH)) {
      throw new TransportConfigError(`incarnation must be ${INCARNATION_HEX_LENGTH} lower-case hex digits`);
    }
    this.id = opts.id;
    this.limits = Object.freeze(resolveLimits(opts.limits));
    this.#secret = opts.clusterSecret;
    this.#logger = opts.logger;
    this.#onMessage = opts.onMessage;
    this.#onSnapshotConnection = opts.onSnapshotConnection;
    this.#clusterId = opts.clusterId ?? (() => null);
    this.#onPeerDown = opts.onPeerDown;
    this.#nowMs = opts.nowMs ?? Date.now;
    this.#incarnation = opts.incarnation;
    this.#checkIncarnation = opts.checkIncarnation;
    this.#onProbe = opts.onProbe;
    this.#tls = opts.tls;
    this.#notBeforeMs = this.#nowMs() - this.limits.helloClockSkewMs;
    this.#replay = new ReplayCache(this.limits.maxReplayCacheEntries, this.limits.helloMaxAgeMs);
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.limits.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
      // Inbound connections answer pings with a progress report (see progress.ts).
      autoPong: false,
    });
    this.#linkCtx = {
      selfId: this.id,
      clusterSecret: this.#secret,
      clusterId: this.#clusterId,
      incarnation: this.#incarnation,
      limits: this.limits,
      logger: this.#logger,
      random: opts.random ?? Math.random,
      nowMs: this.#nowMs,
      markDirty: (link) => this.#markDirty(link),
      peerDown: (peerId) => this.#onPeerDown?.(peerId),
      tls: this.#tls,
    };
    this.#inboundCtx = {
      selfId: this.id,
      limits: this.limits,
      logger: this.#logger,
      onMessage: (msg, incarnation) => this.#onMessage(msg, incarnation),
      countBadFrame: () => this.#badFrames++,
    };
    this.setPeers(opts.peers);
  }

  /**
   * Queues `msg` for `msg.to` and returns at once. Returns false (and drops the message) when
   * the peer is unknown, not connected or being dialled, its queue is full, or the message alone
   * exceeds `maxFrameBytes`; Raft retries, and the caller reports the peer unreachable.
   * The message is referenced, not copied, until it is encoded at the end of this event-loop
   * turn: do not mutate it (or its entries' data) after sending.
   * @throws Error (a bug in the caller) for a local message type or a `from` other than this node.
   */
  send(msg: Message): boolean {
    assert(isWireMessageType(msg.type), `message type ${msg.type} is local to the core and never sent`);
    assert(msg.from === this.id, `message from ${msg.from} sent through the transport of ${this.id}`);
    if (this.#closed) return false;
    const link = this.#links.get(msg.to);
    if (link === undefined) {
      this.#droppedUnknownPeer++;
      this.#logger.debug({ to: msg.to, type: msg.type }, 'send to an unknown peer dropped');
      return false;
    }
    return link.enqueue(msg);
  }

  #markDirty(link: OutboundLink): void {
    this.#dirty.add(link);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // setImmediate runs after this turn's I/O callbacks: everything sent in this turn is batched.
    setImmediate(() => this.#flushAll());
  }

  #flushAll(): void {
    this.#flushScheduled = false;
    const links = [...this.#dirty];
    this.#dirty.clear();
    for (const link of links) link.flush();
  }

  /**
   * Replaces the peer map: links to removed peers (and their inbound connections) are closed,
   * new peers are dialled, and a peer whose address changed is redialled at the new address.
   * @throws TransportConfigError on a bad id or address (nothing is changed then).
   */
  setPeers(peers: Readonly<Record<string, string>>): void {
    const next = normalizePeers(this.id, peers);
    if (this.#closed) return;
    for (const [id, link] of this.#links) {
      if (next.get(id) === link.address) continue;
      this.#dirty.delete(link);
      void link.close();
      this.#links.delete(id);
      if (!next.has(id)) {
        this.#inbound.get(id)?.close(CloseCode.Forbidden, 'peer removed from the cluster');
        this.#inboundCounters.delete(id);
      }
    }
    this.#peers = next;
    for (const [id, address] of next) {
      if (!this.#links.has(id)) this.#links.set(id, new OutboundLink(this.#linkCtx, id, address));
      if (!this.#inboundCounters.has(id)) {
        this.#inboundCounters.set(id, { receivedMessages: 0, receivedFrames: 0, receivedBytes: 0, droppedMisaddressed: 0 });
      }
    }
  }

  /**
   * Takes over an HTTP upgrade request for `/raft` (the server routes upgrades by path). The
   * connection is upgraded, then its hello is checked; a refused one is closed with a close
   * code and reason and logged at warn. Never throws.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== RAFT_PATH) {
      this.#logger.warn({ url: req.url }, 'upgrade for a path other than /raft handed to the peer transport');
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    socket.on('error', () => {}); // errors after the upgrade surface on the WebSocket
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onUpgraded(ws, req));
  }

  #onUpgraded(ws: WebSocket, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    ws.on('error', (err) => {
      // ws reports protocol violations here (and closes with the standard code, e.g. 1009 for
      // a frame over maxFrameBytes, found from the header before the payload is buffered).
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.#badFrames++;
      this.#logger.warn({ remote, err: err.message, code }, 'inbound peer connection error; closing it');
    });
    if (this.#closed) {
      closeWithGrace(ws, CloseCode.GoingAway, 'node shutting down', this.limits.closeGraceMs);
      return;
    }
    const nowMs = this.#nowMs();
    const verdict = verifyHelloHeader(req.headers[HELLO_HEADER], {
      selfId: this.id,
      clusterSecret: this.#secret,
      isPeer: (id) => this.#peers.has(id),
      nowMs,
      maxAgeMs: this.limits.helloMaxAgeMs,
      rememberNonce: (nonce, now) => this.#replay.remember(nonce, now),
      acceptSnapshots: this.#onSnapshotConnection !== undefined,
      acceptProbes: this.#onProbe !== undefined,
      notBeforeMs: this.#notBeforeMs,
      clusterId: this.#clusterId(),
      ...(this.#checkIncarnation ? { checkIncarnation: this.#checkIncarnation } : {}),
    });
    const tlsRefusal = verdict.ok && this.#tls ? this.#tls.checkInbound(req.socket, verdict.hello.from) : null;
    if (!verdict.ok || tlsRefusal !== null) {
      const code = verdict.ok ? CloseCode.Forbidden : verdict.code;
      const reason = verdict.ok ? `peer certificate refused: ${tlsRefusal}` : verdict.reason;
      this.#refusedConnections++;
      this.#logger.warn({ remote, code, reason, ...(verdict.ok ? { peer: verdict.hello.from } : {}) }, 'refused peer connection');
      this.#pending.add(ws);
      ws.once('close', () => this.#pending.delete(ws));
      closeWithGrace(ws, code, reason, this.limits.closeGraceMs);
      return;
    }
    if (verdict.hello.channel === 'probe') {
      this.#answerProbe(ws, verdict.hello.from, verdict.hello.incarnation);
      return;
    }
    if (verdict.hello.channel === 'snapshot') {
      this.#logger.info({ peer: verdict.hello.from, remote }, 'inbound snapshot connection accepted');
      this.#snapshotConns.add(ws);
      ws.once('close', () => this.#snapshotConns.delete(ws));
      this.#onSnapshotConnection!(verdict.hello.from, ws);
      return;
    }
    this.#accept(ws, req.socket, { id: verdict.hello.from, incarnation: verdict.hello.incarnation }, remote);
  }

  #answerProbe(ws: WebSocket, peerId: string, incarnation: string): void {
    let text: string;
    try {
      text = JSON.stringify(this.#onProbe!(peerId, incarnation));
    } catch (e) {
      this.#logger.warn({ peer: peerId, err: (e as Error).message }, 'probe handler failed');
      closeWithGrace(ws, CloseCode.GoingAway, 'probe could not be answered', this.limits.closeGraceMs);
      return;
    }
    this.#pending.add(ws);
    ws.once('close', () => this.#pending.delete(ws));
    ws.send(text, () => closeWithGrace(ws, CloseCode.GoingAway, 'probe answered', this.limits.closeGraceMs));
  }

  /**
   * Asks a peer one authenticated question on a `probe` connection and resolves with its answer
   * (parsed JSON): the host's founding handshake uses it to learn whether the peer belongs to a
   * founded cluster. Rejects with a TransportError when the peer cannot be reached, refuses the
   * hello, or does not answer within `connectTimeoutMs`. The peer need not be in the peer map
   * (a founding node dials no raft links before it has decided).
   */
  probe(peerId: string, address: string): Promise<unknown> {
    if (this.#closed) return Promise.reject(new TransportError('QKV_TRANSPORT_CLOSED', 'transport is closed'));
    const hello = this.#hello(peerId, 'probe');
    const ws = new WebSocket(peerUrl(address, this.#tls !== undefined), {
      headers: { [HELLO_HEADER]: hello },
      perMessageDeflate: false,
      handshakeTimeout: this.limits.connectTimeoutMs,
      maxPayload: MAX_PROBE_ANSWER_BYTES,
      followRedirects: false,
      ...this.#tls?.dialOptions(peerId),
    });
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => fail(new TransportError('QKV_PROBE_TIMEOUT', `${peerId} did not answer the probe`)), this.limits.connectTimeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        ws.terminate();
        reject(err);
      };
      ws.once('message', (data, isBinary) => {
        clearTimeout(timer);
        ws.close();
        try {
          if (isBinary) throw new Error('binary answer');
          resolve(JSON.parse(data.toString()));
        } catch {
          reject(new TransportError('QKV_PROBE_BAD_ANSWER', `${peerId} answered the probe with something other than JSON`));
        }
      });
      ws.once('error', fail);
      ws.once('close', (code, reason) => fail(new TransportError('QKV_PROBE_REFUSED', `${peerId} closed the probe (${code} ${reason.toString('utf8')})`)));
    });
  }

  #hello(peerId: string, channel: 'snapshot' | 'probe'): string {
    return createHelloHeader({ from: this.id, to: peerId, channel, clusterSecret: this.#secret, nowMs: this.#nowMs(), clusterId: this.#clusterId(), incarnation: this.#incarnation });
  }

  /**
   * Closes the inbound connections from `peerId` (its next hello is checked again, e.g. after
   * the host recorded another incarnation for it).
   */
  closeInbound(peerId: string, reason: string): void {
    this.#inbound.get(peerId)?.close(CloseCode.WrongIncarnation, reason);
  }

  /**
   * Opens an authenticated `snapshot` channel connection to a peer: a WebSocket of its own, so
   * snapshot data never delays Raft messages. Resolves once open; the caller owns and closes it.
   */
  dialSnapshot(peerId: string): Promise<WebSocket> {
    const address = this.#peers.get(peerId);
    if (this.#closed) return Promise.reject(new TransportError('QKV_TRANSPORT_CLOSED', 'transport is closed'));
    if (address === undefined) return Promise.reject(new TransportError('QKV_UNKNOWN_PEER', `unknown peer ${peerId}`));
    const hello = this.#hello(peerId, 'snapshot');
    const ws = new WebSocket(peerUrl(address, this.#tls !== undefined), {
      headers: { [HELLO_HEADER]: hello },
      perMessageDeflate: false,
      handshakeTimeout: this.limits.connectTimeoutMs,
      maxPayload: this.limits.maxFrameBytes,
      followRedirects: false,
      ...this.#tls?.dialOptions(peerId),
    });
    this.#snapshotConns.add(ws);
    ws.once('close', () => this.#snapshotConns.delete(ws));
    return new Promise<WebSocket>((resolve, reject) => {
      const fail = (err: Error) => {
        ws.terminate();
        reject(err);
      };
      ws.once('open', () => {
        ws.off('error', fail);
        resolve(ws);
      });
      ws.once('error', fail);
      ws.once('close', (code, reason) => reject(new TransportError('QKV_SNAPSHOT_DIAL', `snapshot connection closed (${code} ${reason.toString('utf8')})`)));
    });
  }

  #accept(ws: WebSocket, socket: Socket, peer: { id: string; incarnation: string }, remote: string): void {
    const peerId = peer.id;
    const counters = this.#inboundCounters.get(peerId);
    assert(counters !== undefined, `no inbound counters for peer ${peerId}`);
    this.#inbound.get(peerId)?.close(CloseCode.Replaced, 'replaced by a newer connection from the same peer');
    const conn = new InboundConnection(this.#inboundCtx, ws, socket, peer, counters, () => {
      if (this.#inbound.get(peerId) === conn) this.#inbound.delete(peerId);
    });
    this.#inbound.set(peerId, conn);
    this.#logger.info({ peer: peerId, remote }, 'inbound peer connection accepted');
    this.#links.get(peerId)?.peerIsUp();
  }

  /** Counters and gauges per peer, plus connection-level totals. */
  stats(): TransportStats {
    const peers: Record<string, PeerStats> = {};
    for (const [id, link] of this.#links) {
      const inbound = this.#inboundCounters.get(id) ?? { receivedMessages: 0, receivedFrames: 0, receivedBytes: 0, droppedMisaddressed: 0 };
      peers[id] = { ...link.stats(), inboundConnected: this.#inbound.has(id), ...inbound };
    }
    return {
      peers,
      refusedConnections: this.#refusedConnections,
      badFrames: this.#badFrames,
      droppedUnknownPeer: this.#droppedUnknownPeer,
    };
  }

  /**
   * Closes every link and inbound connection (close code 1001) and stops all timers. Resolves
   * when all sockets are closed (at most `closeGraceMs` after the call). Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#dirty.clear();
    const waits: Promise<void>[] = [];
    for (const link of this.#links.values()) waits.push(link.close());
    for (const conn of this.#inbound.values()) {
      waits.push(conn.closed());
      conn.close(CloseCode.GoingAway, 'node shutting down');
    }
    for (const ws of this.#pending) waits.push(new Promise((resolve) => ws.once('close', () => resolve())));
    for (const ws of this.#snapshotConns) ws.terminate();
    await Promise.all(waits);
    this.#links.clear();
    this.#inbound.clear();
    this.#wss.close();
  }
}
