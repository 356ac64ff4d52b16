// The client-history model and the WGL linearizability checker. Until @quorumkv/checker (branch
// wgl-shared) is on main, they come from jepsen-lite's build through a relative path; switching
// is this file only.
export type { Op, OpPair } from '../../../jepsen-lite/dist/history.js';
export { pairOps } from '../../../jepsen-lite/dist/history.js';
export { checkLinearizable } from '../../../jepsen-lite/dist/checkers/linearizable.js';
