import { describe, expect, it } from 'vitest';
import { decodePong, encodePong, LivenessTracker, PongKind } from '../src/progress.js';

// Transcripts of the dialler's liveness rule: pongTimeoutMs = 100, a check every 50 ms.
describe('LivenessTracker', () => {
  it('keeps an idle link whose pongs arrive alive', () => {
    const l = new LivenessTracker(100, 0);
    for (let t = 50; t <= 1000; t += 50) {
      l.onPong(t - 10, 6 * Math.floor(t / 50)); // the peer has read every ping so far
      expect(l.check(t, 6 * Math.floor(t / 50))).toEqual({ ok: true });
    }
  });

  it('keeps a slow link alive while the read count advances, however far behind', () => {
    const l = new LivenessTracker(100, 0);
    for (let t = 50; t <= 2000; t += 50) {
      l.onPong(t, t * 10); // reads 10 bytes per ms
      expect(l.check(t, 10_000_000).ok).toBe(true); // 10 MB written long ago
    }
  });

  it('terminates when no pong arrives for the timeout', () => {
    const l = new LivenessTracker(100, 0);
    expect(l.check(50, 0).ok).toBe(true);
    expect(l.check(100, 0).ok).toBe(true);
    expect(l.check(150, 0)).toEqual({ ok: false, reason: 'no pong for 150 ms' });
  });

  it('terminates a one-way partition: reports keep coming, the read count does not move', () => {
    const l = new LivenessTracker(100, 0);
    l.onPong(40, 500);
    expect(l.check(50, 800).ok).toBe(true); // 300 outstanding: stall starts at 50
    l.onPong(90, 500);
    expect(l.check(100, 800).ok).toBe(true);
    l.onPong(140, 500);
    expect(l.check(150, 800).ok).toBe(true); // stalled for exactly 100 ms
    l.onPong(190, 500);
    expect(l.check(200, 800)).toEqual({ ok: false, reason: 'peer read none of 300 outstanding bytes for 150 ms' });
  });

  it('does not count idle time before new bytes as a stall', () => {
    const l = new LivenessTracker(100, 0);
    for (let t = 50; t <= 500; t += 50) {
      l.onPong(t, 0);
      expect(l.check(t, 0).ok).toBe(true);
    }
    expect(l.check(550, 4000).ok).toBe(true); // bytes written just now
    l.onPong(560, 4000);
    expect(l.check(600, 4000).ok).toBe(true);
  });
});

describe('progress pong payload', () => {
  it('round-trips and rejects anything else', () => {
    expect(decodePong(encodePong(PongKind.Report, 2 ** 40))).toEqual({ kind: PongKind.Report, bytesRead: 2 ** 40 });
    expect(decodePong(Buffer.alloc(0))).toBeNull();
    expect(decodePong(encodePong(3 as PongKind, 1))).toBeNull();
    expect(decodePong(encodePong(PongKind.Reply, -1))).toBeNull();
    expect(decodePong(encodePong(PongKind.Reply, 1.5))).toBeNull();
  });
});
