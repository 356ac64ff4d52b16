// Drives the adaptive catch-up throttle (catchup-throttle.ts) on the node's clock: every
// CATCHUP_THROTTLE_STEP_MS it drains the step's commit-latency and fsync samples (metrics.ts),
// reads the snapshot sender's state and applies the controller's rate to the sender's token
// bucket (snapshots.ts). With --catchup-throttle fixed no loop runs and the configured rate holds.
import type { CatchupThrottleMode } from './config.js';
import { CATCHUP_THROTTLE_STEP_MS, CatchupThrottle, type CatchupThrottleStatus } from './catchup-throttle.js';
import type { RecentSamples } from './metrics.js';
import type { Clock, TimerHandle } from './world.js';

/** What the loop drives: the snapshot sender's rate (SnapshotManager implements it). */
export interface ThrottledSender {
  /** The configured rate, the ceiling (0 = unlimited). */
  readonly rateBytesPerSec: number;
  /** The rate the bucket grants now. */
  readonly effectiveRateBytesPerSec: number;
  /** A transfer runs or is queued. */
  readonly sending: boolean;
  /** The operator paused sends. */
  readonly sendsPaused: boolean;
  setThrottledRate(bytesPerSec: number): void;
}

/** The step's samples (seconds); `takeP99` drains them. */
export interface StepSamples {
  commitStep: Pick<RecentSamples, 'takeP99'>;
  fsyncStep: Pick<RecentSamples, 'takeP99'>;
}

/** /v1/status `catchupThrottle`: the mode and, when adaptive, the controller's view. */
export type CatchupThrottleView = { mode: 'fixed'; effectiveBytesPerSec: number; ceilingBytesPerSec: number } | ({ mode: 'adaptive' } & CatchupThrottleStatus);

export class CatchupThrottleLoop {
  private readonly controller: CatchupThrottle | undefined;
  private timer: TimerHandle | undefined;

  constructor(
    private readonly mode: CatchupThrottleMode,
    private readonly deps: { clock: Clock; sender: ThrottledSender; samples: StepSamples; latencyFloorMs: number },
  ) {
    this.controller = mode === 'adaptive' ? new CatchupThrottle({ latencyFloorMs: deps.latencyFloorMs }) : undefined;
  }

  /** Starts stepping (adaptive mode only); the first step runs at once. */
  start(): void {
    if (!this.controller || this.timer) return;
    this.step();
  }

  stop(): void {
    if (this.timer) this.deps.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  /** One step: signals in, rate out. Public so tests on a ManualClock can see one step's effect. */
  step(): void {
    this.stop();
    const { clock, sender, samples } = this.deps;
    const ms = (p99: number | null) => (p99 === null ? null : p99 * 1000);
    const rate = this.controller!.step({
      nowMs: clock.nowMs(),
      commitP99Ms: ms(samples.commitStep.takeP99()),
      fsyncP99Ms: ms(samples.fsyncStep.takeP99()),
      active: sender.sending,
      paused: sender.sendsPaused,
      ceilingBytesPerSec: sender.rateBytesPerSec,
    });
    sender.setThrottledRate(rate);
    this.timer = clock.setTimer(CATCHUP_THROTTLE_STEP_MS, () => this.step());
  }

  view(): CatchupThrottleView {
    const { sender } = this.deps;
    if (!this.controller) return { mode: 'fixed', effectiveBytesPerSec: sender.effectiveRateBytesPerSec, ceilingBytesPerSec: sender.rateBytesPerSec };
    return { mode: 'adaptive', ...this.controller.status(), effectiveBytesPerSec: sender.effectiveRateBytesPerSec };
  }
}
