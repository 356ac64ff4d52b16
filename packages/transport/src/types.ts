import type { Message } from '@quorumkv/raft';
import type { TransportLimits } from './limits.js';

/** A pino-compatible structured logger: one event per call, fields first. */
export interface TransportLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

/** Options of `new PeerTransport(...)`. */
export interface PeerTransportOptions {
  /** This node's id. */
  id: string;
  /**
   * The shared cluster secret every dialler proves it knows (at least 16 characters). There is no
   * insecure mode: the peer endpoint accepts nothing from a party that cannot prove it.
   */
  clusterSecret: string;
  /** The other nodes: id -> 'host:port' of their one port. This node's own id is ignored. */
  peers: Readonly<Record<string, string>>;
  /** Overrides of `defaultLimits`; validated once, here. */
  limits?: Partial<TransportLimits>;
  logger: TransportLogger;
  /**
   * Called once per valid message addressed to this node, from an authenticated peer. If it
   * throws (e.g. the core's BadMessageError), the connection the message came on is closed with
   * the error's message as the reason and the error is logged; it never reaches the process.
   * `incarnation` is the one the connection's hello carried, so the host can apply its
   * incarnation rule per message (a hello it let in may carry messages it takes only some of).
   */
  onMessage: (msg: Message, incarnation: string) => void;
  /**
   * Called when a connection to `peerId` ended or a dial failed: messages `send` accepted for
   * it may have been lost. The host reports the peer unreachable to the core.
   */
  onPeerDown?: (peerId: string) => void;
  /**
   * Receives authenticated `snapshot` channel connections (one per transfer, opened by the
   * sender with `dialSnapshot`). Without it such connections are refused.
   */
  onSnapshotConnection?: (peerId: string, ws: import('ws').WebSocket) => void;
  /**
   * This node's cluster id (derived from the founding membership), read at every handshake;
   * a peer with a different one is refused. Returns null while the node has none (joining).
   */
  clusterId?: () => string | null;
  /** This node's incarnation id (32 hex digits), sent in every hello. */
  incarnation: string;
  /**
   * The incarnation rule, asked once per authenticated `raft`/`snapshot` hello: null accepts the
   * dialler's incarnation, a string is the reason to refuse the connection (close code 4404).
   * No message of a refused dialler reaches `onMessage`; an accepted one's messages arrive with
   * its incarnation. Defaults to accepting every incarnation.
   * `clusterId` is the one the dialler's hello carries ('' when it has none): a node without one
   * may adopt it from a peer it accepts.
   */
  checkIncarnation?: (peerId: string, incarnation: string, clusterId: string) => string | null;
  /**
   * Answers a `probe` connection (see `PeerTransport.probe`) with a JSON-serialisable value.
   * Without it probes are refused.
   */
  onProbe?: (peerId: string, incarnation: string) => unknown;
  /**
   * Mutual TLS between peers. With it every dial (raft link, snapshot channel, probe) uses
   * `wss://` with `dialOptions(peerId)`, and every accepted hello must also pass `checkInbound`.
   * Without it the links are plaintext WebSocket (loopback and tests only; the server refuses to
   * listen elsewhere without TLS unless told `--insecure`).
   */
  tls?: PeerTls;
  /** Uniform in [0, 1) for reconnect jitter; defaults to Math.random. Injected by tests. */
  random?: () => number;
  /** Wall clock in ms for hello timestamps; defaults to Date.now. Injected by tests. */
  nowMs?: () => number;
}

/**
 * The TLS side of peer authentication, supplied by the host (which owns the certificate files and
 * reloads them). Both functions are called once per connection, so a reloaded certificate or CA
 * applies from the next connection on and open connections are left alone.
 */
export interface PeerTls {
  /**
   * TLS options of one dial to `peerId` (spread into the `ws` client options): this node's peer
   * certificate and key, the CAs the remote's certificate must chain to, and the check that it
   * names `peerId`.
   */
  dialOptions(peerId: string): import('node:tls').ConnectionOptions;
  /**
   * Checks the connection a hello from `peerId` arrived on: null accepts it, a string is the
   * reason to refuse it (close code 4403, logged at warn).
   */
  checkInbound(socket: import('node:stream').Duplex, peerId: string): string | null;
}

/**
 * The state of this node's outbound connection to one peer: `connecting` (dialling, or upgraded
 * and waiting for the peer's first pong, which proves it accepted the hello), `open` (messages
 * flow), `backoff` (waiting to redial), `closed` (removed or shut down).
 */
export type LinkState = 'connecting' | 'open' | 'backoff' | 'closed';

/** Counters and gauges for one peer. Counters cover the link's lifetime (reset if its address changes). */
export interface PeerStats {
  address: string;
  state: LinkState;
  /** The outbound connection is open (authenticated; messages flow). */
  connected: boolean;
  /** An authenticated inbound connection from this peer is open. */
  inboundConnected: boolean;
  queuedMessages: number;
  queuedBytes: number;
  /** Bytes handed to the socket that the kernel has not taken yet. */
  unflushedBytes: number;
  sentMessages: number;
  sentFrames: number;
  sentBytes: number;
  /** `send` refused: the queue was at `maxQueuedMessages` or `maxQueuedBytes`. */
  droppedQueueFull: number;
  /** `send` refused while no connection was open or being dialled, plus queued messages lost with a connection. */
  droppedDisconnected: number;
  /** `send` refused: the message alone exceeds `maxFrameBytes`. */
  droppedTooLarge: number;
  /** Dials after the first one. */
  reconnects: number;
  /** Last measured ping round trip, ms; null before the first pong. */
  rttMs: number | null;
  receivedMessages: number;
  receivedFrames: number;
  receivedBytes: number;
  /** Received messages dropped (with their whole frame, and the connection closed) because a `from` or `to` did not match the connection. */
  droppedMisaddressed: number;
}

/** A snapshot of the transport's counters. */
export interface TransportStats {
  peers: Record<string, PeerStats>;
  /** Inbound connections refused at the handshake. */
  refusedConnections: number;
  /** Inbound connections closed for a malformed, invalid or text frame, or a message the host refused. */
  badFrames: number;
  /** `send` calls for an id that is not a peer. */
  droppedUnknownPeer: number;
}
