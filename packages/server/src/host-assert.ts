// Assertions for programmer errors in the host (TigerBeetle style). A broken invariant means a bug
// in this code, not an operating condition: the loop hands it to world.onFatal and the node stops
// (stopping is safer than corrupting). Operating conditions — not leader, busy, timeout — are
// typed errors from @quorumkv/protocol, never these.

/** A host invariant did not hold: a bug. Never crosses the wire; never caught to carry on. */
export class HostAssertionError extends Error {
  override readonly name = 'AssertionError';
  constructor(message: string) {
    super(`host invariant violated: ${message}`);
  }
}

/** Throws {@link HostAssertionError} when `cond` is false. For programmer errors only. */
export function hostAssert(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new HostAssertionError(typeof message === 'string' ? message : message());
}
