// Measures the client's CPU per operation and its throughput with 64 concurrent callers, against
// fake nodes (the real /client endpoint + an in-memory service) running in child processes, so
// the client's process.cpuUsage() is the client's alone. Not a test: numbers vary by machine.
//
//   node packages/client/bench/measure.mjs            (builds what it needs first)
//   QKV_BENCH_OPS=20000 node packages/client/bench/measure.mjs
//   QKV_BENCH_ENDPOINTS=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 node packages/client/bench/measure.mjs   (a real cluster)

import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const here = fileURLToPath(new URL('./', import.meta.url));
const OPS = Number(process.env.QKV_BENCH_OPS ?? 20000);
const CALLERS = Number(process.env.QKV_BENCH_CALLERS ?? 64);
const WARMUP_OPS = 2000;

function build() {
  const tsc = ['exec', 'tsc'];
  execFileSync('pnpm', [...tsc, '-b', 'packages/client'], { cwd: root, stdio: 'inherit' });
  // Only the endpoint file of the server package, compiled next to this script (bench/dist is
  // ignored by git) so its imports resolve through packages/client/node_modules.
  execFileSync('pnpm', [...tsc, '--outDir', `${here}dist`, '--rootDir', 'packages/server/src', '--module', 'nodenext',
    '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--types', 'node', '--declaration', 'false',
    'packages/server/src/client-endpoint.ts'], { cwd: root, stdio: 'inherit' });
}

async function startNode(id) {
  const child = spawn(process.execPath, [`${here}fake-server.mjs`, id], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const next = () => new Promise((resolve) => lines.once('line', resolve));
  const port = Number(String(await next()).split(' ')[1]);
  return {
    address: `127.0.0.1:${port}`,
    async stop() {
      const line = next();
      child.kill('SIGTERM');
      const [, cpu, , ops] = String(await line).split(' ');
      return { cpuUs: Number(cpu), ops: Number(ops) };
    },
  };
}

async function run(kv, total, op) {
  let i = 0;
  const value = 'x'.repeat(100);
  const caller = async () => {
    while (i < total) {
      const n = i++;
      if (op === 'put') await kv.put(`bench/${n % 10000}`, value);
      else await kv.get(`bench/${n % 1000}`, { consistency: op === 'stale' ? 'stale' : 'linearizable' });
    }
  };
  await Promise.all(Array.from({ length: CALLERS }, caller));
}

const ONLY = process.env.QKV_BENCH_ONLY; // e.g. "get" to run only the rows whose op is get
async function measure(label, nodes, op) {
  if (ONLY && ONLY !== op) return undefined;
  const { connect } = await import('@quorumkv/client');
  const kv = await connect({ endpoints: nodes.map((n) => n.address), timeoutMs: 30_000 });
  if (op !== 'put') await run(kv, 1000, 'put');
  await run(kv, WARMUP_OPS, op);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await run(kv, OPS, op);
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  await kv.close();
  const cpuUsPerOp = (cpu.user + cpu.system) / OPS;
  console.log(`${label.padEnd(48)} ${String(Math.round(OPS / wallS)).padStart(7)} ops/s   client CPU ${cpuUsPerOp.toFixed(1).padStart(6)} µs/op`);
  return { label, opsPerS: OPS / wallS, cpuUsPerOp };
}

if (!process.env.QKV_BENCH_NO_BUILD) build();
console.log(`node ${process.version}, ${OPS} ops per row, ${CALLERS} concurrent callers, 100-byte values`);
const real = process.env.QKV_BENCH_ENDPOINTS?.split(',');
if (real) {
  // A real cluster: its nodes' CPU is not ours to measure; the client's is.
  const nodes = real.map((address) => ({ address }));
  await measure('put, real cluster', nodes, 'put');
  await measure('linearizable get, real cluster', nodes, 'get');
  await measure('stale get, real cluster (spread over every node)', nodes, 'stale');
  process.exit(0);
}
const one = [await startNode('n1')];
await measure('put, 1 node (one connection)', one, 'put');
await measure('linearizable get, 1 node (one connection)', one, 'get');
await measure('stale get, 1 node (one connection)', one, 'stale');
const server1 = await one[0].stop();
const three = [await startNode('n1'), await startNode('n2'), await startNode('n3')];
await measure('stale get, 3 nodes (one connection per node)', three, 'stale');
const s3 = await Promise.all(three.map((n) => n.stop()));
console.log(`endpoint (server side, 1-node runs incl. warm-up): ${(server1.cpuUs / server1.ops).toFixed(1)} µs CPU per request over ${server1.ops} requests`);
console.log(`3-node run: requests per node ${s3.map((s) => s.ops).join(' / ')}`);
