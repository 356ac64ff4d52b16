// The adaptive catch-up throttle: a pure controller that sets the rate at which the leader sends
// catch-up snapshots from the leader's own health (docs/storage.md, "Adaptive catch-up throttle").
//
// Every step (CATCHUP_THROTTLE_STEP_MS, driven by catchup-throttle-loop.ts) it is handed the p99 of
// the leader's commit latency (a write's propose → answer) and of its synced log batches over the
// last step, whether a catch-up transfer runs, whether the operator paused sends, and the
// configured ceiling (--snapshot-rate). It answers the effective rate:
//
//  - while no catch-up runs it learns each signal's steady value (a slow moving average, never
//    below the configured floor) and parks the rate at a start rate, a fraction of the ceiling;
//  - while a catch-up runs: pressure = the larger of signal / steady value. Above HIGH the rate is
//    cut multiplicatively (at most once per cooldown, so a cut is seen before the next one); below
//    LOW it grows additively up to the ceiling; between the two it holds (the hysteresis band);
//  - the operator's pause wins: the controller freezes (the token bucket grants nothing anyway) and
//    goes on from the same rate on resume;
//  - the rate always stays within [min, ceiling]. A ceiling of 0 (unlimited) leaves the throttle out.
//
// No clock and no randomness inside: the same steps give the same rates (unit-tested with a
// hand-driven time in packages/server/test/catchup-throttle.test.ts).

/** The controller's step, in milliseconds (the loop's period; the cooldown counts in it). */
export const CATCHUP_THROTTLE_STEP_MS = 250;
/** The lowest rate the controller sets (bytes/s): a catch-up always progresses. */
export const CATCHUP_RATE_MIN_BYTES_PER_SEC = 512 * 1024;
/** A catch-up starts at this fraction of the ceiling (slow start), then grows while healthy. */
export const CATCHUP_START_FRACTION = 0.25;
/** Additive increase per healthy step, as a fraction of the ceiling (full speed from start in ~4 s). */
export const CATCHUP_INCREASE_FRACTION = 0.05;
/** Multiplicative decrease: the rate is multiplied by this when the leader is unhealthy. */
export const CATCHUP_DECREASE_FACTOR = 0.5;
/** Pressure (signal / steady value) above which the rate is cut. */
export const CATCHUP_PRESSURE_HIGH = 1.5;
/** Pressure below which the rate grows; between LOW and HIGH it holds (hysteresis). */
export const CATCHUP_PRESSURE_LOW = 1.2;
/** After a cut, no further cut for this long: the effect of one cut shows before the next. */
export const CATCHUP_DECREASE_COOLDOWN_MS = 1000;
/** Weight of one idle step's sample in the steady value (a slow exponential moving average). */
export const CATCHUP_BASELINE_WEIGHT = 0.05;

/** What the controller is doing, for /v1/status and the metric. */
export type CatchupThrottleState = 'idle' | 'increasing' | 'holding' | 'backing-off' | 'paused' | 'unlimited';

export const CATCHUP_THROTTLE_STATES: readonly CatchupThrottleState[] = ['idle', 'increasing', 'holding', 'backing-off', 'paused', 'unlimited'];

/** One step's inputs. Latencies are the p99 over the last step, null when nothing was measured. */
export interface CatchupSignals {
  nowMs: number;
  commitP99Ms: number | null;
  fsyncP99Ms: number | null;
  /** A catch-up transfer runs (or waits for tokens). */
  active: boolean;
  /** The operator paused catch-up sends (`quorumkv snapshot-rate pause`). */
  paused: boolean;
  /** The configured rate (--snapshot-rate or `quorumkv snapshot-rate N`); 0 = unlimited. */
  ceilingBytesPerSec: number;
}

export interface CatchupThrottleOptions {
  /** Steady values never below this (ms): noise under it is not pressure. */
  latencyFloorMs: number;
}

/** The controller's view for /v1/status. */
export interface CatchupThrottleStatus {
  state: CatchupThrottleState;
  /** The rate the sender is held to now (bytes/s); 0 = unlimited. */
  effectiveBytesPerSec: number;
  ceilingBytesPerSec: number;
  minBytesPerSec: number;
  /** The steady values learnt while no catch-up ran (ms), null before the first sample. */
  steadyCommitMs: number | null;
  steadyFsyncMs: number | null;
  /** The last step's p99s (ms) and the pressure they made (null: nothing measured). */
  commitP99Ms: number | null;
  fsyncP99Ms: number | null;
  pressure: number | null;
  /** Rate cuts since start. */
  decreases: number;
}

/** The adaptive controller. Call `step` every CATCHUP_THROTTLE_STEP_MS; apply the rate it returns. */
export class CatchupThrottle {
  private rate = 0;
  private state: CatchupThrottleState = 'idle';
  private steadyCommitMs: number | null = null;
  private steadyFsyncMs: number | null = null;
  private lastCutMs = Number.NEGATIVE_INFINITY;
  private last: CatchupSignals | null = null;
  private pressure: number | null = null;
  private decreases = 0;

  constructor(private readonly opts: CatchupThrottleOptions) {
    if (!Number.isFinite(opts.latencyFloorMs) || opts.latencyFloorMs <= 0) throw new RangeError('latencyFloorMs must be a positive number');
  }

  /** Takes one step's signals; returns the effective rate in bytes/s (0 = unlimited). */
  step(s: CatchupSignals): number {
    this.last = s;
    const ceiling = s.ceilingBytesPerSec;
    if (ceiling === 0) return this.settle('unlimited', 0);
    const min = Math.min(CATCHUP_RATE_MIN_BYTES_PER_SEC, ceiling);
    if (this.rate === 0) this.rate = startRate(ceiling, min);
    this.rate = Math.min(Math.max(this.rate, min), ceiling); // the ceiling may have moved
    if (s.paused) return this.settle('paused', this.rate);
    if (!s.active) {
      this.learn(s);
      this.pressure = this.pressureOf(s);
      return this.settle('idle', startRate(ceiling, min));
    }
    this.pressure = this.pressureOf(s);
    return this.react(s.nowMs, this.pressure ?? 0, min, ceiling);
  }

  status(): CatchupThrottleStatus {
    const ceiling = this.last?.ceilingBytesPerSec ?? 0;
    return {
      state: this.state,
      effectiveBytesPerSec: this.rate,
      ceilingBytesPerSec: ceiling,
      minBytesPerSec: Math.min(CATCHUP_RATE_MIN_BYTES_PER_SEC, ceiling),
      steadyCommitMs: this.steadyCommitMs,
      steadyFsyncMs: this.steadyFsyncMs,
      commitP99Ms: this.last?.commitP99Ms ?? null,
      fsyncP99Ms: this.last?.fsyncP99Ms ?? null,
      pressure: this.pressure,
      decreases: this.decreases,
    };
  }

  /** The running catch-up's rule: cut above HIGH (once per cooldown), grow below LOW, else hold. */
  private react(nowMs: number, pressure: number, min: number, ceiling: number): number {
    if (pressure > CATCHUP_PRESSURE_HIGH) {
      if (nowMs - this.lastCutMs < CATCHUP_DECREASE_COOLDOWN_MS) return this.settle('backing-off', this.rate);
      this.lastCutMs = nowMs;
      this.decreases++;
      return this.settle('backing-off', Math.max(min, Math.floor(this.rate * CATCHUP_DECREASE_FACTOR)));
    }
    if (pressure < CATCHUP_PRESSURE_LOW) {
      return this.settle('increasing', Math.min(ceiling, this.rate + Math.ceil(ceiling * CATCHUP_INCREASE_FRACTION)));
    }
    return this.settle('holding', this.rate);
  }

  /** Moves the steady values toward this idle step's samples. */
  private learn(s: CatchupSignals): void {
    this.steadyCommitMs = average(this.steadyCommitMs, s.commitP99Ms);
    this.steadyFsyncMs = average(this.steadyFsyncMs, s.fsyncP99Ms);
  }

  /** The larger of signal / steady value over the signals measured this step; null if none was. */
  private pressureOf(s: CatchupSignals): number | null {
    const floor = this.opts.latencyFloorMs;
    const ratio = (v: number | null, steady: number | null) => (v === null ? null : v / Math.max(steady ?? floor, floor));
    const rs = [ratio(s.commitP99Ms, this.steadyCommitMs), ratio(s.fsyncP99Ms, this.steadyFsyncMs)].filter((r): r is number => r !== null);
    return rs.length === 0 ? null : Math.max(...rs);
  }

  private settle(state: CatchupThrottleState, rate: number): number {
    this.state = state;
    this.rate = rate;
    return rate;
  }
}

function startRate(ceiling: number, min: number): number {
  return Math.max(min, Math.floor(ceiling * CATCHUP_START_FRACTION));
}

function average(prev: number | null, sample: number | null): number | null {
  if (sample === null) return prev;
  if (prev === null) return sample;
  return prev + CATCHUP_BASELINE_WEIGHT * (sample - prev);
}
