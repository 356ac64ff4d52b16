// The handshake: the dialler puts a signed hello in the `x-quorumkv-hello` header of its
// WebSocket upgrade request; the acceptor checks it before any frame is read. See
// docs/transport.md ("Handshake").
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { CloseCode } from './close-codes.js';
import { isValidNodeId } from './codec.js';

/** The upgrade request header that carries the hello (lower-case, as Node exposes it). */
export const HELLO_HEADER = 'x-quorumkv-hello';
/** The peer-RPC protocol version this code speaks. */
export const PROTOCOL_VERSION = 2;
/** Longest hello header value accepted, in characters. */
export const MAX_HELLO_HEADER_LENGTH = 2048;

/**
 * The kinds of connection a dialler may open on `/raft`. `raft` carries Raft messages; `snapshot`
 * streams snapshot data on its own connection, so heartbeats never queue behind snapshot chunks
 * (served only when the transport has an `onSnapshotConnection` handler; else refused with
 * `CloseCode.Unsupported`). `probe` asks the acceptor one question — its founding state (see
 * `PeerTransport.probe`) — answered in one text frame, then closed.
 */
export const CHANNELS = ['raft', 'snapshot', 'probe'] as const;
/** A connection kind; see `CHANNELS`. */
export type Channel = (typeof CHANNELS)[number];

/** What a dialler claims and proves about itself. */
export interface Hello {
  v: number;
  channel: Channel;
  from: string;
  to: string;
  /** The dialler's wall clock, ms since the epoch. */
  ts: number;
  /** 16 random bytes, hex; makes each hello unique so a replay can be recognised. */
  nonce: string;
  /**
   * The dialler's cluster id ('' when it has none yet, e.g. a node waiting to join). Two nodes
   * that both have one must agree, or they were founded as different clusters.
   */
  cluster: string;
  /**
   * The dialler's incarnation id: random, made when its data directory was first initialised
   * (32 hex digits). A node that lost its disk comes back with another one, and peers that
   * recorded the old one refuse it (docs/server.md, "Who a node is").
   */
  incarnation: string;
  /** HMAC-SHA256 over the fields above with the cluster secret, hex. */
  mac: string;
}

const NONCE_HEX_LENGTH = 32;
/** Length of an incarnation id, in hex digits (16 random bytes). */
export const INCARNATION_HEX_LENGTH = 32;
const MAC_HEX_LENGTH = 64;

function macInput(h: Omit<Hello, 'mac'>): string {
  // JSON of an array is unambiguous whatever characters the ids contain.
  return JSON.stringify(['quorumkv-hello', h.v, h.channel, h.from, h.to, h.ts, h.nonce, h.cluster, h.incarnation]);
}

function computeMac(secret: string, h: Omit<Hello, 'mac'>): string {
  return createHmac('sha256', secret).update(macInput(h)).digest('hex');
}

/** Builds and encodes the hello header value a dialler sends (`clusterSecret: null` makes an unsigned one, which every acceptor refuses: for tests). */
export function createHelloHeader(opts: {
  from: string;
  to: string;
  channel: Channel;
  clusterSecret: string | null;
  nowMs: number;
  clusterId?: string | null;
  incarnation: string;
  /** The nonce (32 hex digits); random when absent. Tests and the fuzzers pass one to replay exactly. */
  nonce?: string;
}): string {
  const unsigned = {
    v: PROTOCOL_VERSION,
    channel: opts.channel,
    from: opts.from,
    to: opts.to,
    ts: opts.nowMs,
    nonce: opts.nonce ?? randomBytes(NONCE_HEX_LENGTH / 2).toString('hex'),
    cluster: opts.clusterId ?? '',
    incarnation: opts.incarnation,
  };
  const mac = opts.clusterSecret === null ? '' : computeMac(opts.clusterSecret, unsigned);
  return Buffer.from(JSON.stringify({ ...unsigned, mac })).toString('base64url');
}

/** The acceptor's verdict on a hello: the authenticated hello, or a close code and reason. */
export type HelloVerdict = { ok: true; hello: Hello } | { ok: false; code: CloseCode; reason: string };

/** What the acceptor checks a hello against. */
export interface HelloCheck {
  selfId: string;
  clusterSecret: string;
  isPeer: (id: string) => boolean;
  nowMs: number;
  maxAgeMs: number;
  /** This node's cluster id, or null/'' when it has none yet (then any is accepted). */
  clusterId?: string | null;
  /** Serve `snapshot` channel connections (the host registered a handler). */
  acceptSnapshots?: boolean;
  /** Serve `probe` channel connections (the host registered a handler). */
  acceptProbes?: boolean;
  /**
   * Hellos stamped before this instant are refused, whatever their nonce: the replay cache is
   * lost with a restart, so a hello captured before it must not be accepted after it. The
   * transport passes its start time minus `helloClockSkewMs`.
   */
  notBeforeMs?: number;
  /**
   * The host's incarnation rule for `raft` and `snapshot` connections: null to accept the
   * dialler's incarnation, else the reason to refuse it. Called only for authenticated hellos
   * from a known peer, so it may record (pin) the incarnation before accepting. `clusterId` is the
   * hello's ('' when the dialler has none), already checked against `clusterId` above.
   */
  checkIncarnation?: (peerId: string, incarnation: string, clusterId: string) => string | null;
  /** Records the nonce; false if it was seen in the replay window (or the window is full). */
  rememberNonce: (nonce: string, nowMs: number) => 'new' | 'replayed' | 'full';
}

function refuse(code: CloseCode, reason: string): HelloVerdict {
  return { ok: false, code, reason };
}

/**
 * Checks a hello header: shape, version, proof of the secret, age, replay, target, membership,
 * channel — in that order, so a party without the secret learns nothing about the membership.
 */
export function verifyHelloHeader(raw: string | string[] | undefined, check: HelloCheck): HelloVerdict {
  if (raw === undefined) return refuse(CloseCode.Unauthorized, 'missing hello header');
  const parsed = parseHello(raw);
  if (typeof parsed === 'string') return refuse(CloseCode.BadInput, `malformed hello: ${parsed}`);
  if (parsed.v !== PROTOCOL_VERSION) {
    return refuse(CloseCode.Unsupported, `unsupported protocol version ${parsed.v} (this node speaks ${PROTOCOL_VERSION})`);
  }
  const auth = checkProof(parsed, check.clusterSecret, check);
  if (auth !== null) return auth;
  if (parsed.to !== check.selfId) return refuse(CloseCode.Forbidden, `wrong target: this node is ${check.selfId}`);
  // A probe comes from a node founding a cluster, which the acceptor may not list yet.
  if (parsed.channel !== 'probe' && !check.isPeer(parsed.from)) return refuse(CloseCode.Forbidden, `unknown peer id ${parsed.from}`);
  if (check.clusterId && parsed.cluster !== '' && parsed.cluster !== check.clusterId) {
    return refuse(
      CloseCode.Forbidden,
      `cluster id mismatch: this node belongs to cluster ${check.clusterId}, the peer to ${parsed.cluster} (founded with different --peers?)`,
    );
  }
  if (!channelServed(parsed.channel, check)) return refuse(CloseCode.Unsupported, `channel ${parsed.channel} is not served`);
  // A probe only asks a question: answering it with an unknown incarnation is the point.
  if (parsed.channel !== 'probe' && check.checkIncarnation) {
    const why = check.checkIncarnation(parsed.from, parsed.incarnation, parsed.cluster);
    if (why !== null) return refuse(CloseCode.WrongIncarnation, why);
  }
  return { ok: true, hello: parsed };
}

function channelServed(channel: Channel, check: HelloCheck): boolean {
  if (channel === 'raft') return true;
  if (channel === 'snapshot') return check.acceptSnapshots === true;
  return check.acceptProbes === true;
}

function checkProof(h: Hello, secret: string, check: HelloCheck): HelloVerdict | null {
  if (h.mac === '') return refuse(CloseCode.Unauthorized, 'hello carries no proof of the cluster secret');
  const expected = Buffer.from(computeMac(secret, h), 'hex');
  const given = Buffer.from(h.mac, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return refuse(CloseCode.Unauthorized, 'bad proof of the cluster secret');
  }
  if (Math.abs(check.nowMs - h.ts) > check.maxAgeMs) {
    return refuse(CloseCode.Unauthorized, `stale hello: timestamp is ${check.nowMs - h.ts} ms off this node's clock`);
  }
  if (check.notBeforeMs !== undefined && h.ts < check.notBeforeMs) {
    return refuse(CloseCode.Unauthorized, `hello from before this node started (${check.notBeforeMs - h.ts} ms too early): replayed?`);
  }
  const seen = check.rememberNonce(h.nonce, check.nowMs);
  if (seen === 'replayed') return refuse(CloseCode.Unauthorized, 'replayed hello');
  if (seen === 'full') return refuse(CloseCode.TooManyHandshakes, 'too many handshakes; retry later');
  return null;
}

/** Parses and shape-checks a hello; returns a short description of the problem on failure. */
function parseHello(raw: string | string[]): Hello | string {
  if (Array.isArray(raw)) return 'more than one hello header';
  if (raw.length > MAX_HELLO_HEADER_LENGTH) return 'hello header too long';
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    return 'not base64url JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not an object';
  const h = v as Record<string, unknown>;
  if (typeof h.v !== 'number' || !Number.isSafeInteger(h.v)) return 'v must be an integer';
  if (typeof h.channel !== 'string' || !(CHANNELS as readonly string[]).includes(h.channel)) return 'unknown channel';
  if (!isValidNodeId(h.from)) return 'from must be a node id';
  if (!isValidNodeId(h.to)) return 'to must be a node id';
  if (typeof h.ts !== 'number' || !Number.isSafeInteger(h.ts)) return 'ts must be an integer';
  if (typeof h.nonce !== 'string' || !isHex(h.nonce, NONCE_HEX_LENGTH)) return 'nonce must be 32 hex digits';
  if (typeof h.mac !== 'string' || (h.mac !== '' && !isHex(h.mac, MAC_HEX_LENGTH))) return 'mac must be 64 hex digits';
  const cluster = h.cluster ?? '';
  if (typeof cluster !== 'string' || cluster.length > 64) return 'cluster must be a string of at most 64 characters';
  if (typeof h.incarnation !== 'string' || !isHex(h.incarnation, INCARNATION_HEX_LENGTH)) return 'incarnation must be 32 hex digits';
  return { v: h.v, channel: h.channel as Channel, from: h.from, to: h.to, ts: h.ts, nonce: h.nonce, cluster, incarnation: h.incarnation, mac: h.mac };
}

/** True when `s` is `length` lower-case hex digits. */
export function isHex(s: string, length: number): boolean {
  return s.length === length && /^[0-9a-f]+$/.test(s);
}

/**
 * The nonces of recently accepted hellos, each kept for the hello age window. Bounded: when
 * `maxEntries` live nonces are held, new handshakes are refused until some expire.
 */
export class ReplayCache {
  readonly #expiresAtMs = new Map<string, number>();
  constructor(
    private readonly maxEntries: number,
    private readonly windowMs: number,
  ) {}

  /** Records `nonce`; reports whether it was new, a replay, or could not be recorded. */
  remember(nonce: string, nowMs: number): 'new' | 'replayed' | 'full' {
    const expires = this.#expiresAtMs.get(nonce);
    if (expires !== undefined && expires > nowMs) return 'replayed';
    if (this.#expiresAtMs.size >= this.maxEntries) this.#prune(nowMs);
    if (this.#expiresAtMs.size >= this.maxEntries) return 'full';
    // A hello is accepted while |now - ts| <= window, so remembering it for 2 windows covers
    // every moment at which its timestamp could still pass the age check.
    this.#expiresAtMs.set(nonce, nowMs + 2 * this.windowMs);
    return 'new';
  }

  #prune(nowMs: number): void {
    // Map iteration is insertion order and expiry is insertion time + constant: stop at the first live one.
    for (const [nonce, expires] of this.#expiresAtMs) {
      if (expires > nowMs) break;
      this.#expiresAtMs.delete(nonce);
    }
  }
}
