// The forger: opens a node's peer endpoint `/raft` with a valid hello (it holds the cluster
// secret) and sends one raw frame, then reports what the node did with the connection. It knows
// nothing about what the frame means; hostile-peer.ts builds the frames.
//
// The hello comes from the transport's own `createHelloHeader`, so the forger keeps speaking the
// handshake the nodes speak when it changes.

import { HELLO_HEADER, RAFT_PATH, createHelloHeader } from '@quorumkv/transport';
import WebSocket from 'ws';

/** Where, and as whom, a forged connection opens. */
export interface ForgeTarget {
  /** The attacked node's listen address, `host:port`. */
  address: string;
  /** The attacked node's id (the hello's `to`). */
  to: string;
  /** The member the hello claims to be. */
  from: string;
  /** The cluster secret (null: the nodes run without one). */
  clusterSecret: string | null;
  /**
   * The incarnation id of the member the hello claims to be: a node refuses any other incarnation
   * of a member it knows, so a forger that means to get frames past the hello presents the real
   * one (a secret holder with access to the member's data directory can read it).
   */
  incarnation: string;
}

/**
 * What became of one forged frame: `refused` — the upgrade was refused (HTTP status) or the
 * connection closed before it opened; `closed` — the node closed it after the frame (code,
 * reason); `open` — still open after the wait (the node took or dropped the frame quietly);
 * `unreachable` — no connection at all (the node is down).
 */
export interface ForgeOutcome {
  result: 'refused' | 'closed' | 'open' | 'unreachable';
  code?: number;
  reason?: string;
}

/** Deadline of the WebSocket upgrade. */
export const FORGE_CONNECT_TIMEOUT_MS = 2000;
/** How long the forger waits, after its frame, for the node to close the connection. */
export const FORGE_CLOSE_WAIT_MS = 300;
/** Characters of a close reason kept in an outcome. */
const REASON_CHARS_MAX = 160;

/**
 * Opens `/raft` on `target` with a fresh hello, sends `frame` (binary; a string goes as a text
 * frame), waits up to `closeWaitMs` for the node to close, then closes. Never throws for what the
 * node does; bounded by the connect timeout plus `closeWaitMs`.
 */
export function sendForgedFrame(target: ForgeTarget, frame: Uint8Array | string, closeWaitMs = FORGE_CLOSE_WAIT_MS): Promise<ForgeOutcome> {
  const hello = createHelloHeader({ from: target.from, to: target.to, channel: 'raft', clusterSecret: target.clusterSecret, nowMs: Date.now(), incarnation: target.incarnation });
  return new Promise<ForgeOutcome>((resolve) => {
    let settled = false;
    let opened = false;
    const ws = new WebSocket(`ws://${target.address}${RAFT_PATH}`, { headers: { [HELLO_HEADER]: hello }, perMessageDeflate: false, handshakeTimeout: FORGE_CONNECT_TIMEOUT_MS });
    const finish = (o: ForgeOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (o.reason !== undefined) o.reason = o.reason.slice(0, REASON_CHARS_MAX);
      ws.terminate();
      resolve(o);
    };
    const timer = setTimeout(() => finish({ result: opened ? 'open' : 'unreachable', reason: opened ? undefined : 'no upgrade in time' }), FORGE_CONNECT_TIMEOUT_MS + closeWaitMs);
    ws.on('error', (err) => {
      if (!opened) finish({ result: 'unreachable', reason: err.message });
    });
    ws.on('unexpected-response', (_req, res) => finish({ result: 'refused', code: res.statusCode ?? 0, reason: `HTTP ${String(res.statusCode)}` }));
    ws.on('close', (code, reason) => finish({ result: opened ? 'closed' : 'refused', code, reason: reason.toString() }));
    ws.on('open', () => {
      opened = true;
      ws.send(frame, { binary: typeof frame !== 'string' }, () => undefined);
      setTimeout(() => finish({ result: 'open' }), closeWaitMs);
    });
  });
}
