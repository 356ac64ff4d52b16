// A cheap cancellation token for one call. AbortController/AbortSignal cost several µs each on
// Node 20 (measured: the largest client-side cost per operation), and a call needs one token that
// its attempts, waits and pending request all watch; this is that token.

import type { QuorumKvError } from '@quorumkv/protocol';

/** Cancels one call: fires once, with a typed reason, to every current listener. */
export class CallSignal {
  private reasonValue: QuorumKvError | undefined;
  private listeners: Set<() => void> | undefined;

  /** True once `abort` was called. */
  get aborted(): boolean {
    return this.reasonValue !== undefined;
  }

  /** Why the call was cancelled (set when `aborted`). */
  get reason(): QuorumKvError | undefined {
    return this.reasonValue;
  }

  /** Cancels the call; later calls do nothing. */
  abort(reason: QuorumKvError): void {
    if (this.reasonValue) return;
    this.reasonValue = reason;
    const ls = this.listeners;
    this.listeners = undefined;
    if (ls) for (const l of ls) l();
  }

  /** Calls `fn` on abort (callers check `aborted` first); returns the unsubscribe function. */
  onAbort(fn: () => void): () => void {
    this.listeners ??= new Set();
    this.listeners.add(fn);
    return () => {
      this.listeners?.delete(fn);
    };
  }
}
