// jepsen-lite's seeded PRNG is the one of @quorumkv/checker's history generator (mulberry32):
// everything random in jepsen-lite comes from one of these, so a seed replays a run's schedule,
// workload values and proxy jitter exactly.

export type { Rng } from '@quorumkv/checker';
export { createRng } from '@quorumkv/checker';
