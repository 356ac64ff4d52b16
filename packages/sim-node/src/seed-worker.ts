// A worker thread of the seed pool (pool.ts): runs the seeds it is sent, one at a time, and posts
// each result back. Seeds are independent and a run depends on its seed alone, so where a seed
// runs changes nothing in its result.
import { parentPort, workerData } from 'node:worker_threads';
import type { HostPlant } from '@quorumkv/server';
import { runSimNode } from './run.js';
import type { PoolRequest, PoolWorkerData } from './pool.js';

const port = parentPort;
if (port === null) throw new Error('seed-worker.js runs only as a worker thread (pool.ts)');
const data = workerData as PoolWorkerData;

port.on('message', (req: PoolRequest) => {
  if (req.kind === 'stop') return void port.close();
  runSimNode({
    seed: req.seed,
    chaosSeconds: data.chaosSeconds,
    ...(data.nodes !== undefined ? { nodes: data.nodes } : {}),
    ...(data.plant !== undefined ? { plant: data.plant as HostPlant } : {}),
    ...(data.faultsDuringReplacement ? { faultsDuringReplacement: true } : {}),
  }).then(
    (result) => port.postMessage({ kind: 'result', result }),
    (e: unknown) => port.postMessage({ kind: 'error', seed: req.seed, message: (e as Error).stack ?? String(e) }),
  );
});
