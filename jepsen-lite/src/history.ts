// The history model lives in @quorumkv/checker (which the simulation may import too); this
// module adds what only a real run needs: the wall-clock recorder and reading history.jsonl.

import { readFileSync } from 'node:fs';
import type { HistoryRecorderOptions, Op } from '@quorumkv/checker';
import { HistoryRecorder as CheckerHistoryRecorder, parseHistory } from '@quorumkv/checker';

export type { Op, OpF, OpPair, OpType } from '@quorumkv/checker';
export { HISTORY_LINE_BYTES_MAX, HistoryFormatError, outcomeOf, pairOps, parseHistory, serializeHistory } from '@quorumkv/checker';

/**
 * The history recorder on the process's monotonic clock (`process.hrtime.bigint`, injectable for
 * tests).
 *
 * @example
 * const rec = new HistoryRecorder();
 * const inv = rec.invoke(0, 'write', ['k1', 3], 'n1');
 * rec.complete(inv, 'ok', ['k1', 3]);
 */
export class HistoryRecorder extends CheckerHistoryRecorder {
  constructor(options: Partial<HistoryRecorderOptions> = {}) {
    super({ nowNs: options.nowNs ?? process.hrtime.bigint });
  }
}

/** Reads and validates `history.jsonl`; throws HistoryFormatError on the first bad line. */
export function loadHistoryFile(path: string): Op[] {
  return parseHistory(readFileSync(path, 'utf8'));
}
