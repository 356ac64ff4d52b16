// @quorumkv/sim-node — the production node under deterministic simulation (docs/simulation.md).
export { runSimNode, LIVENESS_BOUND_MS, type SimNodeOptions, type SimNodeResult, type SimNodeStats } from './run.js';
export { SimScheduler } from './scheduler.js';
export { SimNet, CALM_NETWORK, ROUGH_NETWORK, type NetFaults } from './network.js';
export { SimChecks, SimCheckFailure } from './checks.js';
export { huntPlant, type HuntResult } from './hunt.js';
export { runSeedPool, builtWorkerScript, MAX_POOL_WORKERS, type PoolOptions } from './pool.js';
