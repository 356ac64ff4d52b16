// The one place that knows where a WebSocket comes from. Browsers (and Node >= 22) have a global
// `WebSocket`; on Node 20 the `ws` package is loaded with a dynamic import, so bundlers for the
// browser never need it and no Node-only module is on the browser path.

/** The subset of the WHATWG WebSocket API the client uses (the browser's and `ws`'s both fit). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** Opens a WebSocket to `url`; `maxFrameBytes` bounds incoming frames where the implementation can. */
export type WebSocketFactory = (url: string, maxFrameBytes: number) => WebSocketLike;

/** The `readyState` value of an open socket (same in every implementation). */
export const WS_OPEN = 1;

type WebSocketCtor = new (url: string) => WebSocketLike;

/**
 * The default factory: the global `WebSocket` when there is one, else the `ws` package.
 * Resolved once per client, at `connect()`.
 */
export async function defaultWebSocketFactory(): Promise<WebSocketFactory> {
  const g = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (typeof g === 'function') {
    return (url) => {
      const ws = new g(url);
      ws.binaryType = 'arraybuffer';
      return ws;
    };
  }
  const mod = await import('ws');
  const WS = mod.WebSocket;
  return (url, maxFrameBytes) => {
    const ws = new WS(url, { maxPayload: maxFrameBytes, perMessageDeflate: false, generateMask: zeroMask });
    ws.binaryType = 'nodebuffer';
    corkPerTurn(ws as unknown as CorkableWebSocket);
    return ws as unknown as WebSocketLike;
  };
}

/**
 * `ws` only: frame masking guards intermediaries against a browser page's scripts (RFC 6455
 * §10.3); a Node process has no such page. With a zero mask `ws` skips the XOR on both ends.
 */
function zeroMask(mask: Uint8Array): void {
  mask.fill(0);
}

interface CorkableWebSocket {
  send(data: Uint8Array): void;
  _socket?: { cork(): void; uncork(): void };
}

/**
 * `ws` only: requests sent in one turn (64 callers answered by one incoming batch send their next
 * requests together) leave in one socket write instead of one write per frame. The socket is
 * corked at the first send and uncorked after the turn's promise callbacks have run.
 */
function corkPerTurn(ws: CorkableWebSocket): void {
  // Node's nextTick runs after the whole promise-callback queue, a microtask would run in the
  // middle of it. Looked up, not referenced, so the module still loads in browsers.
  const node = (globalThis as { process?: { nextTick(fn: () => void): void } }).process;
  const afterTurn = node ? (fn: () => void) => node.nextTick(fn) : queueMicrotask;
  const send = ws.send.bind(ws);
  let corked = false;
  ws.send = (data) => {
    const socket = ws._socket;
    if (!corked && socket) {
      corked = true;
      socket.cork();
      afterTurn(() => {
        corked = false;
        socket.uncork();
      });
    }
    send(data);
  };
}
