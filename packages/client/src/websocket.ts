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

/** TLS material handed to the `ws` package (see ConnectOptions.tls). */
export interface WebSocketTls {
  ca?: string | Uint8Array;
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
}

/**
 * The default factory: the global `WebSocket` when there is one, else the `ws` package. With
 * `tls` always the `ws` package (the WHATWG WebSocket takes no TLS options); the server name is
 * verified against the node's certificate as usual. Resolved once per client, at `connect()`.
 */
export async function defaultWebSocketFactory(tls?: WebSocketTls): Promise<WebSocketFactory> {
  const g = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (typeof g === 'function' && tls === undefined) {
    return (url) => {
      const ws = new g(url);
      ws.binaryType = 'arraybuffer';
      return ws;
    };
  }
  const mod = await import('ws');
  const WS = mod.WebSocket;
  return (url, maxFrameBytes) => {
    const ws = new WS(url, { maxPayload: maxFrameBytes, perMessageDeflate: false, generateMask: zeroMask, ...tlsOptions(tls) });
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

/** Only the fields that are set, as PEM text (`ws` passes them to `tls.connect`). */
function tlsOptions(tls: WebSocketTls | undefined): { ca?: string; cert?: string; key?: string } {
  if (tls === undefined) return {};
  const text = (v: string | Uint8Array) => (typeof v === 'string' ? v : new TextDecoder().decode(v));
  return {
    ...(tls.ca !== undefined ? { ca: text(tls.ca) } : {}),
    ...(tls.cert !== undefined ? { cert: text(tls.cert) } : {}),
    ...(tls.key !== undefined ? { key: text(tls.key) } : {}),
  };
}
