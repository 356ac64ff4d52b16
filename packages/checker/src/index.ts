// @quorumkv/checker: the client-history model and the linearizability checker (Wing–Gong–Lowe)
// for jepsen-lite and the simulation, which both may import it. Pure: no I/O, no clock, no
// dependencies — a clock comes in as an argument where one is wanted. See docs/checker.md.

export type { HistoryLine, HistoryRecorderOptions, Op, OpF, OpPair, OpType } from './history.js';
export { HISTORY_LINE_BYTES_MAX, HistoryFormatError, HistoryRecorder, historyOf, outcomeOf, pairOps, parseHistory, serializeHistory } from './history.js';
export type { CheckResult, Validity } from './verdict.js';
export { mergeValid } from './verdict.js';
export type { KeyFailure, LinOpSummary, LinearizableEvidence, LinearizableOptions, UnknownKey } from './linearizable.js';
export {
  LIN_BUDGET_STEPS_PER_KEY_DEFAULT,
  LIN_MEMO_BYTES_MAX_DEFAULT,
  LIN_MEMO_ENTRIES_MAX_DEFAULT,
  LIN_MEMO_ENTRIES_MAX_LIMIT,
  LinearizableOptionsError,
  checkLinearizable,
} from './linearizable.js';
export type { BudgetKind } from './wgl.js';
export { LinearizabilityMonitor } from './monitor.js';
export type { RegisterGenOptions } from './generate.js';
export { generateRegisterHistory, mutateReadToOtherValue, mutateReadToUnwritten } from './generate.js';
export type { Rng } from './random.js';
export { createRng } from './random.js';
