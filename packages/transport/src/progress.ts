// Progress reports: the acceptor of a link tells the dialler how many bytes it has read, in the
// payload of its pongs. The dialler compares that with what it wrote, so it can tell a link that
// is slow but draining (alive) from one where nothing gets through (a silent partition), even
// when its own pings are queued behind megabytes of data. See docs/transport.md ("Liveness").

/** Pong payload kinds. */
export const PongKind = {
  /** The answer to a ping (the dialler measures the round trip with it). */
  Reply: 1,
  /** Sent unprompted every `pingIntervalMs`, so progress is visible while pings are queued. */
  Report: 2,
} as const;
/** One of `PongKind`. */
export type PongKind = (typeof PongKind)[keyof typeof PongKind];

/** Pong payload: 1 byte kind + float64 (big-endian) count of frame bytes read, exact below 2^53. */
export const PONG_PAYLOAD_BYTES = 9;

/** Encodes a progress pong payload. */
export function encodePong(kind: PongKind, bytesRead: number): Buffer {
  const b = Buffer.allocUnsafe(PONG_PAYLOAD_BYTES);
  b[0] = kind;
  b.writeDoubleBE(bytesRead, 1);
  return b;
}

/** Decodes a progress pong payload; null when it is not exactly one. */
export function decodePong(payload: Buffer): { kind: PongKind; bytesRead: number } | null {
  if (payload.byteLength !== PONG_PAYLOAD_BYTES) return null;
  const kind = payload[0];
  const bytesRead = payload.readDoubleBE(1);
  if ((kind !== PongKind.Reply && kind !== PongKind.Report) || !Number.isSafeInteger(bytesRead) || bytesRead < 0) return null;
  return { kind, bytesRead };
}

/** The dialler's verdict on a link at one liveness check. */
export type LivenessVerdict = { ok: true } | { ok: false; reason: string };

/**
 * The dialler's liveness rule, a pure state machine over (time, bytes written, reports):
 *  - no pong of any kind for `pongTimeoutMs`: the peer or the return path is gone;
 *  - bytes written that the peer has not read, and its read count not advancing, for
 *    `pongTimeoutMs`: nothing gets through (a silent partition, possibly one-way).
 * A link that drains slowly keeps advancing the read count, so it stays alive.
 */
export class LivenessTracker {
  #lastPongMs: number;
  #peerReadBytes = 0;
  #stallSinceMs: number | null = null;

  constructor(
    private readonly pongTimeoutMs: number,
    openedAtMs: number,
  ) {
    this.#lastPongMs = openedAtMs;
  }

  /** Records a pong carrying the peer's read count. */
  onPong(nowMs: number, peerReadBytes: number): void {
    this.#lastPongMs = nowMs;
    if (peerReadBytes > this.#peerReadBytes) {
      this.#peerReadBytes = peerReadBytes;
      this.#stallSinceMs = null;
    }
  }

  /** Checks the link, given the bytes written to it so far (frames and pings, since it opened). */
  check(nowMs: number, writtenBytes: number): LivenessVerdict {
    const silentMs = nowMs - this.#lastPongMs;
    if (silentMs > this.pongTimeoutMs) return { ok: false, reason: `no pong for ${Math.round(silentMs)} ms` };
    const outstanding = writtenBytes - this.#peerReadBytes;
    if (outstanding <= 0) {
      this.#stallSinceMs = null;
      return { ok: true };
    }
    this.#stallSinceMs ??= nowMs;
    const stalledMs = nowMs - this.#stallSinceMs;
    if (stalledMs > this.pongTimeoutMs) {
      return { ok: false, reason: `peer read none of ${outstanding} outstanding bytes for ${Math.round(stalledMs)} ms` };
    }
    return { ok: true };
  }
}
