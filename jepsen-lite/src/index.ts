// @quorumkv/jepsen-lite: break a real quorumkv cluster the way production breaks, record every
// operation, and check the history. The public surface: history format, checkers, fault proxy,
// nemesis schedules, report, and the run/check entry points.

export type { Op, OpF, OpPair, OpType } from './history.js';
export { HistoryFormatError, HistoryRecorder, loadHistoryFile, outcomeOf, pairOps, parseHistory, serializeHistory } from './history.js';
export type { CheckResult, ComposedResult, Validity } from './checker.js';
export { compose, mergeValid } from './checker.js';
export type { KeyFailure, LinearizableEvidence, LinearizableOptions } from './checkers/linearizable.js';
export { checkLinearizable } from './checkers/linearizable.js';
export type { SetEvidence } from './checkers/set.js';
export { checkSet } from './checkers/set.js';
export type { AckedWrite, SplitBrainEvidence, StatusSample } from './checkers/split-brain.js';
export { checkSplitBrain } from './checkers/split-brain.js';
export type { AppliedHashSample, FinalNodeState, LogAgreementEvidence } from './checkers/log-agreement.js';
export { checkLogAgreement } from './checkers/log-agreement.js';
export type { AvailabilityEvidence, AvailabilityOptions, FaultWindow } from './checkers/availability.js';
export { checkAvailability } from './checkers/availability.js';
export type { Direction, FaultProxyOptions, ProxyStats, Shaping } from './proxy.js';
export type { LinkOptions } from './proxy.js';
export { FaultProxy, Link } from './proxy.js';
export type { NodeRouterOptions } from './router.js';
export { NodeRouter, dialerOf } from './router.js';
export type { Cut, Fault, NemesisEvent, NemesisName, NemesisSchedule, NodeRef, ScheduleOptions } from './nemesis.js';
export { NEMESES, NEMESIS_GROUPS, NemesisSpecError, expandNemeses, generateSchedule, majoritiesRingCuts } from './nemesis.js';
export type { ClusterControl, RunClock } from './nemesis-exec.js';
export { executeSchedule } from './nemesis-exec.js';
export type { LabelledFault, ReportInput, RunMeta, Summary } from './report.js';
export { renderReportHtml, writeReport } from './report.js';
export type { RunData } from './rundir.js';
export { RUN_FILES, RunDirError, loadRunDir } from './rundir.js';
export type { CheckOptions, RunCheck } from './check.js';
export { checkDir, checkRun } from './check.js';
export type { Rng } from './random.js';
export { createRng } from './random.js';
export { generateRegisterHistory, mutateReadToOtherValue, mutateReadToUnwritten } from '@quorumkv/checker';
export type { RunOptions } from './orchestrator.js';
export { runTest } from './orchestrator.js';
export type { ClientConnectOptions, RunCluster } from './db.js';
export type { DockerClusterOptions } from './docker-db.js';
export { COMPOSE_NODES, DockerCluster, isolatedSetFor } from './docker-db.js';
export type { DockerPreflight } from './docker.js';
export { dockerPreflight } from './docker.js';
