// Peer frames after the handshake, through the real sockets: a PeerTransport (n1 of n1..n3)
// listens in-process; the fuzzer authenticates as n2 with a fresh hello and sends each input as
// one binary WebSocket frame on that connection, then waits for the transport to have handled it
// (a ping's pong follows every frame before it). Invariants: the transport never throws or stops
// serving; a frame it refuses closes the connection with 4400 (bad input) or 1009 (too big), and
// the fuzzer reconnects; an accepted frame's messages reach onMessage from n2 to n1 only; after
// every 1,000 inputs a fresh connection still delivers a valid frame.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import { MessageType, type Message } from '@quorumkv/raft';
import { CloseCode, HELLO_HEADER, PeerTransport, RAFT_PATH, createHelloHeader, encodeFrame } from '@quorumkv/transport';
import { FuzzViolation, type FuzzTarget, type Outcome, type Surface } from '../runner.js';
import { showBytes } from '../mutate.js';
import { peerFrames } from './peer-frame.js';

const SECRET = 'fuzz-peer-socket-secret-0123456789';
const INCARNATION_N2 = 'd'.repeat(32);
/** Longest wait for the transport to handle one frame (pong) or close. */
const FRAME_TIMEOUT_MS = 5_000;
/** Close codes a refused frame may bring. */
const REFUSAL_CLOSE_CODES = new Set<number>([CloseCode.BadInput, CloseCode.TooBig]);
const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

export const peerSocketSurface: Surface<Uint8Array> = {
  name: 'peer-socket',
  description: 'peer frames on an authenticated /raft WebSocket to a PeerTransport in-process',
  arbitrary: peerFrames,
  open: () => openSocketTarget(),
  show: showBytes,
};

/** An authenticated n2 → n1 connection, and the close code once it closed. */
interface Conn {
  ws: WebSocket;
  closed: Promise<number>;
}

function connect(port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const hello = createHelloHeader({ from: 'n2', to: 'n1', channel: 'raft', clusterSecret: SECRET, nowMs: Date.now(), incarnation: INCARNATION_N2 });
    const ws = new WebSocket(`ws://127.0.0.1:${port}${RAFT_PATH}`, { headers: { [HELLO_HEADER]: hello } });
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('error', (e) => reject(new FuzzViolation(`an authentic n2 could not connect: ${e.message}`)));
    ws.on('error', () => undefined);
  });
}

/** Sends one frame; resolves 'accepted' once a pong shows it was handled, 'refused' when it closed the connection. */
function exchange(c: Conn, frame: Uint8Array): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new FuzzViolation(`no pong and no close within ${FRAME_TIMEOUT_MS} ms`)), FRAME_TIMEOUT_MS);
    const done = (o: Outcome) => (clearTimeout(timer), resolve(o));
    c.ws.once('pong', () => done('accepted'));
    void c.closed.then((code) => {
      clearTimeout(timer);
      if (REFUSAL_CLOSE_CODES.has(code)) resolve('refused');
      else reject(new FuzzViolation(`the transport closed the connection with ${code}, not a bad-input code`));
    });
    c.ws.send(frame, { binary: true });
    c.ws.ping();
  });
}

async function openSocketTarget(): Promise<FuzzTarget<Uint8Array>> {
  const delivered: Message[] = [];
  const transport = new PeerTransport({
    id: 'n1', clusterSecret: SECRET, peers: { n2: '127.0.0.1:1', n3: '127.0.0.1:1' }, logger: silent, incarnation: 'e'.repeat(32),
    onMessage: (m) => void delivered.push(m),
  });
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => transport.handleUpgrade(req, socket, head));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  let conn = await connect(port);
  const heartbeat = encodeFrame([{ type: MessageType.Heartbeat, to: 'n1', from: 'n2', term: 1, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0, entries: [] }]);
  const feed = async (frame: Uint8Array): Promise<Outcome> => {
    if (conn.ws.readyState !== WebSocket.OPEN) conn = await connect(port);
    delivered.length = 0;
    const outcome = await exchange(conn, frame);
    for (const m of delivered) if (m.from !== 'n2' || m.to !== 'n1') throw new FuzzViolation(`delivered a message ${m.from}->${m.to} from n2's connection`);
    return outcome;
  };
  return {
    feed,
    control: async () => {
      conn.ws.terminate();
      conn = await connect(port);
      if ((await feed(heartbeat)) !== 'accepted' || delivered.length !== 1) throw new FuzzViolation('a valid heartbeat on a fresh connection was not delivered');
    },
    close: async () => {
      conn.ws.terminate();
      await transport.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
