// The client-history model and the WGL linearizability checker, shared with jepsen-lite.
export type { Op, OpPair } from '@quorumkv/checker';
export { checkLinearizable, pairOps } from '@quorumkv/checker';
