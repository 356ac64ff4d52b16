// A simulated network: every message gets a seeded delay in ticks and may be dropped,
// duplicated or overtaken by later messages; links can be cut one way or both ways.
import type { Prng } from './prng.js';

/** Anything addressed from one node to another. */
export interface Addressed {
  from: string;
  to: string;
}

/** Fault rates of the network. Probabilities are per message. */
export interface NetworkFaults {
  /** Probability that a message is lost. */
  dropProbability: number;
  /** Probability that a message is delivered twice (the copy gets its own delay). */
  duplicateProbability: number;
  /** Usual delay range in ticks, inclusive; the minimum is at least 1. */
  minDelayTicks: number;
  maxDelayTicks: number;
  /** Probability that a message is held much longer (so later messages overtake it). */
  longDelayProbability: number;
  /** Upper bound of a long delay in ticks. */
  maxLongDelayTicks: number;
}

/** A network with no faults: every message arrives after exactly one tick, in order. */
export const PERFECT_NETWORK: NetworkFaults = {
  dropProbability: 0,
  duplicateProbability: 0,
  minDelayTicks: 1,
  maxDelayTicks: 1,
  longDelayProbability: 0,
  maxLongDelayTicks: 1,
};

/** Named maximum: messages in flight at once. Past it, new messages are dropped (and counted). */
export const MAX_IN_FLIGHT_MESSAGES = 100_000;

/** Counters of what the network did. */
export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  cut: number;
}

/**
 * The simulated network. Time is the caller's tick counter; `send` schedules, `deliverDue`
 * hands back (in a seeded order) the messages due at a tick. Cuts are checked at delivery time,
 * so a partition also swallows messages that were already on the wire.
 *
 * @example
 *   const net = new SimNetwork<Msg>(rng, PERFECT_NETWORK);
 *   net.send(now, msg);
 *   for (const m of net.deliverDue(now + 1)) nodes.get(m.to)?.step(m);
 */
export class SimNetwork<M extends Addressed> {
  private readonly buckets = new Map<number, M[]>();
  private readonly blocked = new Set<string>();
  private inFlight = 0;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, cut: 0 };
  /** Called for each message that is lost: dropped on sending, or swallowed by a cut link. */
  onLost: ((msg: M, reason: 'dropped' | 'cut') => void) | undefined;

  constructor(
    private readonly rng: Prng,
    public faults: NetworkFaults,
  ) {
    validateFaults(faults);
  }

  /** Puts `msg` on the wire at tick `now`. `copy` makes the duplicate's object (default: shallow copy). */
  send(now: number, msg: M, copy: (m: M) => M = (m) => ({ ...m })): void {
    this.stats.sent++;
    const f = this.faults;
    if (this.rng.chance(f.dropProbability) || this.inFlight >= MAX_IN_FLIGHT_MESSAGES) {
      this.stats.dropped++;
      this.onLost?.(msg, 'dropped');
      return;
    }
    this.schedule(now + this.delay(), msg);
    if (this.rng.chance(f.duplicateProbability)) {
      this.stats.duplicated++;
      this.schedule(now + this.delay(), copy(msg));
    }
  }

  /** Schedules `msg` for delivery at tick `at` with no fault applied (a receiver that was paused). */
  redeliverAt(at: number, msg: M): void {
    this.schedule(at, msg);
  }

  /** Removes and returns the messages due at `now` (call once per tick, with increasing `now`). */
  deliverDue(now: number): M[] {
    const due = this.buckets.get(now);
    if (!due) return [];
    this.buckets.delete(now);
    this.inFlight -= due.length;
    if (due.length > 1) this.rng.shuffle(due); // same-tick arrivals come in any order
    const out: M[] = [];
    for (const m of due) {
      if (this.blocked.has(linkKey(m.from, m.to))) {
        this.stats.cut++;
        this.onLost?.(m, 'cut');
        continue;
      }
      this.stats.delivered++;
      out.push(m);
    }
    return out;
  }

  /** Cuts the link from `from` to `to` (one way: replies may still flow). */
  cut(from: string, to: string): void {
    this.blocked.add(linkKey(from, to));
  }

  /** Cuts both directions between every node of `a` and every node of `b`. */
  partition(a: readonly string[], b: readonly string[]): void {
    for (const x of a) {
      for (const y of b) {
        this.cut(x, y);
        this.cut(y, x);
      }
    }
  }

  /** Isolates `node` from all of `others`, both ways. */
  isolate(node: string, others: readonly string[]): void {
    this.partition([node], others.filter((o) => o !== node));
  }

  /** True when messages from `from` to `to` currently get through. */
  connected(from: string, to: string): boolean {
    return !this.blocked.has(linkKey(from, to));
  }

  /** Number of cut directed links. */
  get cutLinks(): number {
    return this.blocked.size;
  }

  /** Restores every link. Messages still in flight will be delivered. */
  heal(): void {
    this.blocked.clear();
  }

  /** Messages currently on the wire. */
  get pending(): number {
    return this.inFlight;
  }

  private delay(): number {
    const f = this.faults;
    if (this.rng.chance(f.longDelayProbability)) return this.rng.range(f.minDelayTicks, Math.max(f.minDelayTicks, f.maxLongDelayTicks));
    return this.rng.range(f.minDelayTicks, f.maxDelayTicks);
  }

  private schedule(at: number, msg: M): void {
    let bucket = this.buckets.get(at);
    if (!bucket) {
      bucket = [];
      this.buckets.set(at, bucket);
    }
    bucket.push(msg);
    this.inFlight++;
  }
}

function linkKey(from: string, to: string): string {
  return `${from}>${to}`;
}

/** Throws a RangeError naming the field when `f` is not a sensible fault description. */
export function validateFaults(f: NetworkFaults): void {
  for (const k of ['dropProbability', 'duplicateProbability', 'longDelayProbability'] as const) {
    if (!(f[k] >= 0 && f[k] <= 1)) throw new RangeError(`NetworkFaults.${k} must be in [0, 1], got ${f[k]}`);
  }
  if (!Number.isInteger(f.minDelayTicks) || f.minDelayTicks < 1) throw new RangeError(`NetworkFaults.minDelayTicks must be an integer >= 1`);
  if (!Number.isInteger(f.maxDelayTicks) || f.maxDelayTicks < f.minDelayTicks) throw new RangeError(`NetworkFaults.maxDelayTicks must be an integer >= minDelayTicks`);
  if (!Number.isInteger(f.maxLongDelayTicks) || f.maxLongDelayTicks < 1) throw new RangeError(`NetworkFaults.maxLongDelayTicks must be an integer >= 1`);
}
