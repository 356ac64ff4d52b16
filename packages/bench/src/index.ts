// @quorumkv/bench — the benchmark harness, usable as a library as well as through dist/cli.js.
//
//   const r = await runBenchmark(parseRunOptions(['--op', 'put', '--clients', '64', '--seconds', '10']));
//   console.log(formatRun(r));

export { runBenchmark, type RunResult } from './run.js';
export { runCompare, ratioTable, runsTable } from './compare.js';
export { runFailover, runSoak, failoverTables } from './failover.js';
export { analyseRound, longestGap, type RoundEvents, type RoundResult } from './failover-analysis.js';
export { parseRunOptions, parseCompareOptions, parseFailoverOptions, UsageError } from './options.js';
export type { RunOptions, CompareOptions, FailoverOptions } from './options.js';
export { startCluster, findLeader, ETCD_INSTALL_HINT, type LocalCluster, type TargetName, type MemberStatus } from './cluster.js';
export { Histogram, type HistogramSnapshot, type LatencySummary } from './histogram.js';
export { cpuBetween, sampleCpu, type CpuUsage } from './cpu.js';
export { formatRun } from './report.js';
