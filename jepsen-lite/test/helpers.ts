// Builders for hand-made histories in tests (they live with the history model in @quorumkv/checker).
export type { HistoryLine as Line } from '@quorumkv/checker';
export { historyOf as hist } from '@quorumkv/checker';
