// The forger: a hostile peer for tests and nemeses. It holds the cluster secret, opens a node's
// `/raft` with a hello built by the transport's own `createHelloHeader` (so it passes the
// handshake exactly as a member would, incarnation included), and sends whatever frames it is
// told — forged Raft messages encoded with the transport's own `encodeFrame`, or raw bytes. The one
// forger of the repository: jepsen-lite's hostile-peer nemesis (hostile-peer.ts) and
// test/cluster/hostile-peer.test.ts both use it.
//
//   const f = await PeerForger.connect({ port, from: 'n2', to: 'n1', secret, incarnation });
//   f.send([forgedAppend({ from: 'n2', to: 'n1', term: st.term, index: st.commitIndex })]);
//   const { code, reason } = await f.closed;   // 4400 'bad message from n2: …'
import { WebSocket } from 'ws';
import { MessageType, type Entry, type Message } from '@quorumkv/raft';
import { createHelloHeader, encodeFrame, HELLO_HEADER, RAFT_PATH } from '@quorumkv/transport';

/** Longest a forger waits for its connection to open or close. */
const FORGER_TIMEOUT_MS = 5_000;

/** How a connection ended: the WebSocket close code and reason the node sent (1006: no close frame). */
export interface ForgerClose {
  code: number;
  reason: string;
}

/** Options of {@link PeerForger.connect}. */
export interface ForgerOptions {
  /** 127.0.0.1 port of the target node. */
  port: number;
  /** The member this forger claims to be (authenticated by the secret, not by a certificate). */
  from: string;
  /** The target node's id. */
  to: string;
  /** The cluster secret. */
  secret: string;
  /**
   * The claimed member's incarnation id: from any other, peers take only a leader's appends and
   * heartbeats (docs/server.md, "Who a node is"). It is no secret — every hello carries it and `GET /v1/admin/members` lists it; the
   * harness reads it with `ProcessCluster.incarnationOf`.
   */
  incarnation: string;
  /** WebSocket payload limit of the forger's side (what the node may send back). */
  maxPayloadBytes?: number;
}

/** One authenticated `/raft` connection that sends forged frames. */
export class PeerForger {
  /** Resolves when the node (or the forger) closed the connection. */
  readonly closed: Promise<ForgerClose>;

  private constructor(private readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** Opens the connection; rejects if the handshake is refused or does not finish in time. */
  static async connect(o: ForgerOptions): Promise<PeerForger> {
    const hello = createHelloHeader({ from: o.from, to: o.to, channel: 'raft', clusterSecret: o.secret, nowMs: Date.now(), incarnation: o.incarnation });
    const ws = new WebSocket(`ws://127.0.0.1:${o.port}${RAFT_PATH}`, {
      headers: { [HELLO_HEADER]: hello },
      perMessageDeflate: false,
      maxPayload: o.maxPayloadBytes ?? 64 * 1024 * 1024,
    });
    ws.on('error', () => undefined); // the close event carries the outcome
    const forger = new PeerForger(ws);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`forger ${o.from}->${o.to}: no open within ${FORGER_TIMEOUT_MS} ms`));
      }, FORGER_TIMEOUT_MS);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve();
      });
      void forger.closed.then(({ code, reason }) => {
        clearTimeout(timer);
        reject(new Error(`forger ${o.from}->${o.to}: refused at the handshake (${code} ${reason})`));
      });
    });
    return forger;
  }

  /** Sends one frame of forged messages, encoded as a member would encode them. */
  send(messages: Message[]): void {
    this.ws.send(encodeFrame(messages));
  }

  /** Sends raw bytes as one binary frame (garbage, or a frame built by hand). */
  sendRaw(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  /** True while the node has not closed the connection. */
  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Waits for the node to close the connection (bounded); a still-open one is closed by the forger. */
  async waitClosed(timeoutMs = FORGER_TIMEOUT_MS): Promise<ForgerClose | 'still-open'> {
    const r = await Promise.race([this.closed, new Promise<'still-open'>((resolve) => setTimeout(() => resolve('still-open'), timeoutMs).unref())]);
    if (r === 'still-open') this.ws.terminate();
    return r;
  }

  /** Ends the connection from the forger's side. */
  close(): void {
    this.ws.terminate();
  }
}

/** A message with every field at its zero value, overridden by `over`. */
export function forgedMessage(over: Partial<Message> & Pick<Message, 'type' | 'from' | 'to' | 'term'>): Message {
  return { logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...over };
}

/** The confirmed crash of issue 14: an append whose entry claims index 1 with `entryTerm` (999). */
export function forgedAppend(o: { from: string; to: string; term: number; index: number; logTerm?: number; entryTerm?: number }): Message {
  const entry: Entry = { term: o.entryTerm ?? 999, index: 1, type: 0, data: new TextEncoder().encode('forged') };
  return forgedMessage({ type: MessageType.App, from: o.from, to: o.to, term: o.term, index: o.index, logTerm: o.logTerm ?? o.term, commit: o.index, entries: [entry] });
}

/** TimeoutNow: "campaign now". Only the current leader may send it. */
export function forgedTimeoutNow(o: { from: string; to: string; term: number }): Message {
  return forgedMessage({ type: MessageType.TimeoutNow, from: o.from, to: o.to, term: o.term });
}

/** An acknowledgement of `index`, sent to the leader (beyond its last index, it is a lie). */
export function forgedAppendResponse(o: { from: string; to: string; term: number; index: number; reject?: boolean }): Message {
  return forgedMessage({ type: MessageType.AppResp, from: o.from, to: o.to, term: o.term, index: o.index, reject: o.reject ?? false, rejectHint: o.index });
}

/** What a forgery is expected to do to its connection. */
export type ForgeryOutcome = 'closed' | 'ignored';

/** One forgery: a name, the frame to send (given the target's current term and indexes), and the expected outcome. */
export interface Forgery {
  name: string;
  /** What the target must see from the forger: which member it claims to be, and the frame. */
  build(t: { from: string; to: string; term: number; commitIndex: number; lastIndex: number }): Message[] | Uint8Array;
  expect: ForgeryOutcome;
}

/**
 * The forgeries of issue 14, for a target and a claimed member: each either closes the
 * connection (the node refused it) or is ignored (the connection stays open, nothing changes).
 * `random` (uniform in [0, 1)) draws garbage; pass a seeded one.
 */
export function forgeryCatalogue(random: () => number, maxFrameBytes: number): Forgery[] {
  const garbage = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
  return [
    { name: 'append with entry index 1 of term 999', expect: 'closed', build: (t) => [forgedAppend({ from: t.from, to: t.to, term: t.term, index: t.commitIndex })] },
    {
      name: 'append contradicting a committed entry',
      expect: 'closed',
      build: (t) => [
        forgedMessage({
          type: MessageType.App, from: t.from, to: t.to, term: t.term + 1, index: Math.max(0, t.commitIndex - 1), logTerm: t.term + 1, commit: 0,
          entries: [{ term: t.term + 1, index: Math.max(1, t.commitIndex), type: 0, data: new Uint8Array(1) }],
        }),
      ],
    },
    { name: 'TimeoutNow from a non-leader', expect: 'ignored', build: (t) => [forgedTimeoutNow(t)] },
    { name: 'append response beyond the last index', expect: 'ignored', build: (t) => [forgedAppendResponse({ ...t, index: t.lastIndex + 1000 })] },
    { name: 'garbage', expect: 'closed', build: () => garbage(1 + Math.floor(random() * 200)) },
    { name: 'oversized frame', expect: 'closed', build: () => garbage(maxFrameBytes + 1) },
    { name: 'wrong from', expect: 'closed', build: (t) => [forgedTimeoutNow({ ...t, from: `${t.from}-not` })] },
    { name: 'wrong to', expect: 'closed', build: (t) => [forgedTimeoutNow({ ...t, to: `${t.to}-not` })] },
  ];
}

/** What became of one forged frame: `refused` at the handshake (or unreachable), `closed` by the node after it (code, reason), or left `open`. */
export interface ForgeOutcome {
  result: 'refused' | 'closed' | 'open';
  code?: number;
  reason?: string;
}

/** How long {@link sendForgedFrame} waits, after its frame, for the node to close the connection. */
export const FORGE_CLOSE_WAIT_MS = 300;

/**
 * One frame on a fresh connection: connect, send `frame` (raw bytes, or messages), wait up to
 * `closeWaitMs` for the node to close, close. Never throws for what the node does.
 */
export async function sendForgedFrame(o: ForgerOptions, frame: Uint8Array | Message[], closeWaitMs = FORGE_CLOSE_WAIT_MS): Promise<ForgeOutcome> {
  let forger: PeerForger;
  try {
    forger = await PeerForger.connect(o);
  } catch (err) {
    return { result: 'refused', reason: (err as Error).message };
  }
  if (frame instanceof Uint8Array) forger.sendRaw(frame);
  else forger.send(frame);
  const r = await forger.waitClosed(closeWaitMs);
  return r === 'still-open' ? { result: 'open' } : { result: 'closed', code: r.code, reason: r.reason };
}
