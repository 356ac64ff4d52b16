// A bounded event trace: the simulation records what happened cheaply, and the text is only
// built when a run fails (or when the caller asked for verbose output).

/** One recorded event: the simulated tick, the node it concerns ('-' for the cluster) and text. */
export interface TraceEvent {
  tick: number;
  node: string;
  /** Built lazily: a function is called only when the trace is printed. */
  what: string | (() => string);
}

/** Default number of events a trace keeps. */
export const DEFAULT_TRACE_CAPACITY = 400;

/**
 * A ring buffer of the last `capacity` events. Older events are overwritten.
 *
 * @example
 *   const trace = new Trace(100);
 *   trace.add(5, 'n1', () => `became leader`);
 *   console.log(trace.format(20)); // the last 20 events, oldest first
 */
export class Trace {
  private readonly events: (TraceEvent | undefined)[];
  private next = 0;
  private total = 0;
  /** When set, every event is also passed here as it is added (verbose mode). */
  onEvent: ((line: string) => void) | undefined;

  constructor(readonly capacity: number = DEFAULT_TRACE_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`Trace capacity must be >= 1, got ${capacity}`);
    this.events = new Array<TraceEvent | undefined>(capacity);
  }

  /** Records an event. Pass a function for `what` when building its text is not free. */
  add(tick: number, node: string, what: string | (() => string)): void {
    const ev: TraceEvent = { tick, node, what };
    this.events[this.next] = ev;
    this.next = (this.next + 1) % this.capacity;
    this.total++;
    if (this.onEvent) this.onEvent(formatEvent(ev));
  }

  /** How many events were ever added (including overwritten ones). */
  get size(): number {
    return this.total;
  }

  /** The last `count` events (at most `capacity`), oldest first. */
  last(count: number = this.capacity): TraceEvent[] {
    const n = Math.min(count, this.capacity, this.total);
    const out: TraceEvent[] = [];
    for (let i = n; i >= 1; i--) {
      const ev = this.events[(this.next - i + this.capacity) % this.capacity];
      if (ev) out.push(ev);
    }
    return out;
  }

  /** The last `count` events as text, one per line. */
  format(count: number = this.capacity): string {
    return this.last(count).map(formatEvent).join('\n');
  }
}

/** `t=  42 n3  text` */
export function formatEvent(ev: TraceEvent): string {
  const what = typeof ev.what === 'function' ? ev.what() : ev.what;
  return `t=${String(ev.tick).padStart(5)} ${ev.node.padEnd(3)} ${what}`;
}
