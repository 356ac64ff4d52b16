// When the leader proposes a retention compact: a pure function of the applied revisions.
import { describe, expect, it } from 'vitest';
import { HISTORY_COMPACT_SLACK_REVISIONS as SLACK, historyCompactTarget } from '../src/history-retention.js';

describe('historyCompactTarget', () => {
  it('keeps the last retainRevisions readable, compacting only once SLACK more have piled up', () => {
    const cases: Array<[revision: number, compacted: number, retain: number, expected: number | undefined]> = [
      [5_000, 0, 10_000, undefined], // less history than the retention
      [10_000 + SLACK - 1, 0, 10_000, undefined], // within the slack: no compact per write
      [10_000 + SLACK, 0, 10_000, SLACK],
      [25_000, 0, 10_000, 15_000],
      [25_000, 15_000, 10_000, undefined], // just compacted there
      [25_000 + SLACK, 15_000, 10_000, 15_000 + SLACK],
      [1_000_000, 0, 0, undefined], // 0 keeps everything
    ];
    for (const [revision, compacted, retain, expected] of cases) {
      expect(historyCompactTarget(revision, compacted, retain), `revision ${revision}, compacted ${compacted}, retain ${retain}`).toBe(expected);
    }
  });
});
