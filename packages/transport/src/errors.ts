// Typed errors of the transport. `code` is the stable contract; messages may change.

/** Base of every error the transport raises on purpose. */
export class TransportError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The transport options failed validation; the message names the field and the rule. */
export class TransportConfigError extends TransportError {
  constructor(message: string) {
    super('QKV_TRANSPORT_CONFIG', message);
  }
}

/**
 * A received frame is not a valid quorumkv frame (bad msgpack, wrong shape, wrong field type).
 * The connection that carried it is closed; the error never leaves the transport.
 */
export class FrameError extends TransportError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('QKV_BAD_FRAME', message, options);
  }
}

/** Throws when a programmer invariant does not hold. Never use for operating conditions. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`transport invariant violated: ${message}`);
}
