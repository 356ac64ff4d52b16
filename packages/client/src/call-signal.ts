// A cheap cancellation token for one call. AbortController/AbortSignal cost several µs each on
// Node 20 (measured: the largest client-side cost per operation), and a call needs one token that
// its attempts, waits and pending request all watch; this is that token.
//
// A call has at most one waiter at a time (its pending request, its back-off pause, or its wait
// for a connection), so the first listener lives in a slot and a Set is only made for a second.

import type { QuorumKvError } from '@quorumkv/protocol';

/** Something to tell when a call is cancelled: an object, so subscribing allocates nothing. */
export interface AbortListener {
  /** The call was cancelled; its reason is `signal.reason`. */
  onCallAbort(): void;
}

/** Cancels one call: fires once, with a typed reason, to every current listener. */
export class CallSignal {
  private reasonValue: QuorumKvError | undefined;
  /** The first listener; the usual (and only) one. */
  private first: AbortListener | undefined;
  /** Further listeners, in the order they were added (only while `first` is taken or they are). */
  private more: Set<AbortListener> | undefined;

  /** True once `abort` was called. */
  get aborted(): boolean {
    return this.reasonValue !== undefined;
  }

  /** Why the call was cancelled (set when `aborted`). */
  get reason(): QuorumKvError | undefined {
    return this.reasonValue;
  }

  /** Cancels the call; later calls do nothing. Listeners fire in the order they were added. */
  abort(reason: QuorumKvError): void {
    if (this.reasonValue) return;
    this.reasonValue = reason;
    const first = this.first;
    const more = this.more;
    this.first = this.more = undefined;
    first?.onCallAbort();
    if (more) for (const l of more) l.onCallAbort();
  }

  /**
   * Tells `l` on abort (callers check `aborted` first; a listener added after the abort is
   * never told). Adding a listener that is already there does nothing.
   */
  subscribe(l: AbortListener): void {
    if (this.first === l || this.more?.has(l)) return;
    // The slot is used only while no later listener waits in the Set, so firing order stays
    // the order of subscription.
    if (this.first === undefined && !this.more?.size) this.first = l;
    else (this.more ??= new Set()).add(l);
  }

  /** Stops telling `l`. */
  unsubscribe(l: AbortListener): void {
    if (this.first === l) this.first = undefined;
    else this.more?.delete(l);
  }
}
