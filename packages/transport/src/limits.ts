import { TransportConfigError } from './errors.js';

/**
 * Every bound the transport enforces. All are validated once, in `resolveLimits`, when a
 * `PeerTransport` is created; every node of a cluster should use the same values (a receiver
 * refuses frames larger than ITS `maxFrameBytes`).
 */
export interface TransportLimits {
  /** Messages waiting in one peer's outbound queue; past it `send` drops and returns false. */
  maxQueuedMessages: number;
  /** Bytes (encoded-size upper bound) waiting in one peer's outbound queue; past it `send` drops. */
  maxQueuedBytes: number;
  /** Largest frame sent or accepted; a larger incoming frame closes the connection (code 1009). */
  maxFrameBytes: number;
  /**
   * Bytes handed to one peer's socket that the kernel has not taken yet. Past it the transport
   * stops flushing, so a slow or silent peer fills its bounded queue instead of process memory.
   */
  maxUnflushedBytes: number;
  /**
   * The dialler checks liveness and pings every this often (and once at open); the acceptor
   * sends a progress report (a pong with its read byte count) every this often.
   */
  pingIntervalMs: number;
  /**
   * The dialler terminates the link when no pong arrived for this long, or when the peer read
   * none of the bytes written to it for this long (silent partition). A slow link that keeps
   * draining is not terminated.
   */
  pongTimeoutMs: number;
  /** An inbound connection on which no byte arrives (no frame, no ping) for this long is closed. */
  inboundIdleTimeoutMs: number;
  /** A dial whose WebSocket upgrade has not completed within this time is abandoned. */
  connectTimeoutMs: number;
  /** First reconnect delay cap; the cap doubles per failed attempt (full jitter below it). */
  reconnectInitialMs: number;
  /** Largest reconnect delay cap. */
  reconnectMaxMs: number;
  /** A hello whose timestamp is further than this from the acceptor's clock is refused. */
  helloMaxAgeMs: number;
  /** Nonces remembered (for `helloMaxAgeMs`) to refuse replayed hellos. */
  maxReplayCacheEntries: number;
  /**
   * The replay cache is lost with a restart, so hellos stamped more than this before the
   * transport started are refused: a replay captured before a restart is refused after it. A
   * peer whose clock is behind by D > this waits at most D - this after our start to connect.
   */
  helloClockSkewMs: number;
  /** After sending a close frame, the socket is destroyed if the peer has not closed within this. */
  closeGraceMs: number;
}

/**
 * Defaults, sized against the consensus core's defaults: a 1 MiB append fits a frame with room to
 * spare, and one peer's queue holds more than the core's 16 MiB in-flight window.
 */
export const defaultLimits: Readonly<TransportLimits> = Object.freeze({
  maxQueuedMessages: 4096,
  maxQueuedBytes: 32 * 1024 * 1024,
  maxFrameBytes: 4 * 1024 * 1024,
  maxUnflushedBytes: 8 * 1024 * 1024,
  pingIntervalMs: 1000,
  pongTimeoutMs: 2000,
  inboundIdleTimeoutMs: 5000,
  connectTimeoutMs: 3000,
  reconnectInitialMs: 100,
  reconnectMaxMs: 5000,
  helloMaxAgeMs: 30_000,
  maxReplayCacheEntries: 10_000,
  helloClockSkewMs: 1000,
  closeGraceMs: 1000,
});

/** The smallest `maxFrameBytes` accepted: a frame must hold any message without entries. */
export const MIN_FRAME_BYTES = 4096;

/**
 * Merges `overrides` over the defaults and validates the result.
 * @throws TransportConfigError naming the first field that breaks a rule.
 */
export function resolveLimits(overrides: Partial<TransportLimits> = {}): TransportLimits {
  const limits: TransportLimits = { ...defaultLimits };
  for (const [key, value] of Object.entries(overrides)) {
    if (!(key in defaultLimits)) throw new TransportConfigError(`limits.${key} is not a known limit`);
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      throw new TransportConfigError(`limits.${key} must be a positive integer, got ${String(value)}`);
    }
    limits[key as keyof TransportLimits] = value;
  }
  checkRelations(limits);
  return limits;
}

function checkRelations(l: TransportLimits): void {
  const rule = (ok: boolean, message: string): void => {
    if (!ok) throw new TransportConfigError(`limits: ${message}`);
  };
  rule(l.maxFrameBytes >= MIN_FRAME_BYTES, `maxFrameBytes must be >= ${MIN_FRAME_BYTES}`);
  rule(l.maxQueuedBytes >= l.maxFrameBytes, 'maxQueuedBytes must be >= maxFrameBytes (a full frame must fit the queue)');
  rule(l.maxUnflushedBytes >= l.maxFrameBytes, 'maxUnflushedBytes must be >= maxFrameBytes (a full frame must be writable)');
  rule(
    l.inboundIdleTimeoutMs >= 2 * l.pingIntervalMs,
    'inboundIdleTimeoutMs must be >= 2 * pingIntervalMs (a healthy idle link pings at least twice per idle timeout)',
  );
  rule(
    l.pongTimeoutMs >= 2 * l.pingIntervalMs,
    'pongTimeoutMs must be >= 2 * pingIntervalMs (progress reports arrive once per ping interval)',
  );
  rule(l.reconnectMaxMs >= l.reconnectInitialMs, 'reconnectMaxMs must be >= reconnectInitialMs');
  rule(l.helloMaxAgeMs >= 1000, 'helloMaxAgeMs must be >= 1000 (clocks of peers are never exactly in step)');
  rule(l.helloClockSkewMs <= l.helloMaxAgeMs, 'helloClockSkewMs must be <= helloMaxAgeMs');
}
