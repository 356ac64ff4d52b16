/**
 * WebSocket close codes the transport sends (4000–4999 is the application range; 1001 and 1009
 * are the standard "going away" and "message too big", the latter sent by `ws` itself when a
 * frame exceeds `maxFrameBytes`). The close reason text says what exactly was wrong.
 */
export const CloseCode = {
  /** The transport (or the dialler's link to this peer) is shutting down. */
  GoingAway: 1001,
  /** A frame larger than `maxFrameBytes` (sent by `ws`). */
  TooBig: 1009,
  /** A malformed hello or frame, a text frame, or data on a link that must carry none. */
  BadInput: 4400,
  /** Missing or wrong proof of the cluster secret, stale timestamp, replayed nonce. */
  Unauthorized: 4401,
  /** Authenticated, but not allowed: unknown peer id, wrong target id, peer removed. */
  Forbidden: 4403,
  /**
   * Authenticated, but the dialler is another incarnation of that member than the one this node
   * recorded (it lost its data directory, or is an impostor): see docs/server.md, "Who a node is".
   */
  WrongIncarnation: 4404,
  /** The inbound connection sent nothing (no frame, no ping) for `inboundIdleTimeoutMs`. */
  IdleTimeout: 4408,
  /** A newer authenticated connection from the same peer and channel replaced this one. */
  Replaced: 4409,
  /** Unsupported protocol version or channel. */
  Unsupported: 4426,
  /** Too many handshakes in the replay window (`maxReplayCacheEntries`). */
  TooManyHandshakes: 4429,
} as const;
/** One of the close codes in `CloseCode`. */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** The WebSocket protocol limits a close reason to 123 bytes of UTF-8. */
export const MAX_CLOSE_REASON_BYTES = 123;

/** Cuts `reason` to fit a close frame, on a character boundary. */
export function fitCloseReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  let out = reason.slice(0, MAX_CLOSE_REASON_BYTES);
  while (Buffer.byteLength(out) > MAX_CLOSE_REASON_BYTES) out = out.slice(0, -1);
  return out;
}
