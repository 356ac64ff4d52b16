// Builders for hand-made histories in tests.
import type { Op, OpF, OpType } from '../src/history.js';

/** One line of a hand-made history: [process, type, f, value]; times are 10 ns apart. */
export type Line = [number, OpType, OpF, unknown];

/** Turns compact lines into a valid history with increasing times. */
export function hist(lines: readonly Line[]): Op[] {
  return lines.map(([process, type, f, value], index) => ({ index, process, type, f, value, time: (index + 1) * 10 }));
}
