// Micro-benchmark of the client's per-operation cost: 64 concurrent closed-loop puts over one
// client (one WebSocket) against a minimal fake node in a child process, so that this process's
// CPU and heap are the client's alone. Not a test and not part of the test run.
//
//   pnpm exec tsc -b packages/client && node packages/client/bench/client-ops.mjs
//   QKV_CLIENT_DIST=/path/to/other/dist/index.js node packages/client/bench/client-ops.mjs   (compare builds)
//   QKV_BENCH_SECONDS=4 QKV_BENCH_CALLERS=64 ...
//   QKV_BENCH_PROFILE=cpu|heap ...   (profiles the measured phase; prints the top self costs)
//
// To compare with an older build: `git worktree add /tmp/old <commit>`, build it there, and point
// QKV_CLIENT_DIST at a copy of its packages/client/dist placed under packages/client/bench/dist/
// (git-ignored) so that its imports resolve through this package's node_modules.
//
// Prints client CPU µs per put, throughput, scavenges and GC time per 10k puts, and JS-heap bytes
// allocated per put (median heap growth over GC-free windows of WINDOW_OPS puts).
//
// The fake node speaks just enough of the protocol (hello and put) and answers every frame that
// arrived in one turn with one corked write, as the real endpoint does.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { getHeapStatistics } from 'node:v8';

const MEASURE_S = Number(process.env.QKV_BENCH_SECONDS ?? 4);
const WARMUP_S = 1.5;
const CALLERS = Number(process.env.QKV_BENCH_CALLERS ?? 64);
const WINDOW_OPS = 256;

if (process.argv[2] === 'server') await serve();
else await main();

async function serve() {
  const { WebSocketServer } = await import('ws');
  const { decodeMsgpack, encodeFrame, DEFAULT_LIMITS, PROTOCOL_VERSION } = await import('@quorumkv/protocol');
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/client', perMessageDeflate: false });
  let revision = 0;
  wss.on('connection', (ws) => {
    let out = [];
    const flush = () => {
      const frames = out;
      out = [];
      ws._socket.cork();
      for (const f of frames) ws.send(f);
      ws._socket.uncork();
    };
    ws.on('message', (data) => {
      const req = decodeMsgpack(data, DEFAULT_LIMITS.maxFrameBytes);
      let result;
      if (req.op === 'hello') {
        const port = wss.address().port;
        result = { version: PROTOCOL_VERSION, serverId: 'n1', leader: { id: 'n1', address: `127.0.0.1:${port}` }, limits: DEFAULT_LIMITS };
      } else if (req.op === 'put') result = { revision: ++revision, term: 1 };
      else throw new Error(`fake node: unexpected op ${req.op}`);
      if (out.length === 0) setImmediate(flush);
      out.push(encodeFrame({ id: req.id, ok: true, result }, DEFAULT_LIMITS.maxFrameBytes));
    });
  });
  wss.on('listening', () => console.log(`PORT ${wss.address().port}`));
  process.on('SIGTERM', () => process.exit(0));
}

async function main() {
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, 'server'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const port = Number(String(await new Promise((r) => lines.once('line', r))).split(' ')[1]);
  try {
    const modPath = process.env.QKV_CLIENT_DIST;
    const { connect } = await import(modPath ? pathToFileURL(modPath).href : '@quorumkv/client');
    const kv = await connect({ endpoints: [`127.0.0.1:${port}`], timeoutMs: 30_000 });
    const value = 'x'.repeat(100);
    const keys = Array.from({ length: 10_000 }, (_, i) => `bench/${i}`);

    let gcCount = 0;
    let gcMs = 0;
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        gcCount++;
        gcMs += e.duration;
      }
    });
    obs.observe({ entryTypes: ['gc'] });

    let done = 0;
    let windowStart = getHeapStatistics().used_heap_size;
    const windows = [];
    let sampling = false;
    let stopAt = 0;
    const caller = async () => {
      while (performance.now() < stopAt) {
        await kv.put(keys[done % keys.length], value);
        if (++done % WINDOW_OPS === 0 && sampling) {
          const used = getHeapStatistics().used_heap_size;
          windows.push(used - windowStart);
          windowStart = used;
        }
      }
    };
    const runFor = async (seconds) => {
      stopAt = performance.now() + seconds * 1000;
      await Promise.all(Array.from({ length: CALLERS }, caller));
    };

    await runFor(WARMUP_S);
    await new Promise((r) => setTimeout(r, 50)); // let the warm-up's GC entries arrive
    const gc0 = { count: gcCount, ms: gcMs };
    const done0 = done;
    windowStart = getHeapStatistics().used_heap_size;
    sampling = true;
    const profiler = process.env.QKV_BENCH_PROFILE ? await startProfile(process.env.QKV_BENCH_PROFILE) : undefined;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await runFor(MEASURE_S);
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    if (profiler) await profiler.stop();
    sampling = false;
    await new Promise((r) => setTimeout(r, 50));
    obs.disconnect();
    await kv.close();

    const ops = done - done0;
    const positive = windows.filter((d) => d > 0).sort((a, b) => a - b);
    const median = positive[Math.floor(positive.length / 2)] ?? NaN;
    const per10k = (x) => (x * 10_000) / ops;
    console.log(
      [
        `puts ${ops}`,
        `${Math.round((ops / wallMs) * 1000)} ops/s`,
        `client CPU ${((cpu.user + cpu.system) / ops).toFixed(2)} µs/put`,
        `GCs ${per10k(gcCount - gc0.count).toFixed(1)} /10k puts`,
        `GC ${((gcMs - gc0.ms) * 1000 / ops).toFixed(2)} µs/put`,
        `heap alloc ~${Math.round(median / WINDOW_OPS)} B/put`,
      ].join('  '),
    );
  } finally {
    child.kill('SIGTERM');
  }
}

/**
 * Optional profiling of the measured phase through the inspector: 'cpu' writes a .cpuprofile,
 * 'heap' an allocation-sampling profile that includes objects the GC already collected. The
 * file name is printed; the summary lists the top self costs by function.
 */
async function startProfile(kind) {
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  if (kind === 'cpu') {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
  } else {
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 512,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  }
  return {
    async stop() {
      const self = new Map();
      const add = (n, v) => {
        const f = n.callFrame;
        const name = `${f.functionName || '(anon)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
        self.set(name, (self.get(name) ?? 0) + v);
      };
      let file;
      if (kind === 'cpu') {
        const { profile } = await session.post('Profiler.stop');
        const hits = new Map(profile.nodes.map((n) => [n.id, 0]));
        for (const id of profile.samples) hits.set(id, hits.get(id) + 1);
        for (const n of profile.nodes) add(n, hits.get(n.id));
        file = '/tmp/client-ops.cpuprofile';
        writeFileSync(file, JSON.stringify(profile));
      } else {
        const { profile } = await session.post('HeapProfiler.stopSampling');
        const walk = (n) => {
          add(n, n.selfSize);
          for (const c of n.children) walk(c);
        };
        walk(profile.head);
        file = '/tmp/client-ops.heapprofile';
        writeFileSync(file, JSON.stringify(profile));
      }
      session.disconnect();
      const total = [...self.values()].reduce((a, b) => a + b, 0);
      const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
      console.log(`${kind} profile written to ${file}; top self ${kind === 'cpu' ? 'samples' : 'bytes'}:`);
      for (const [name, v] of top) console.log(`  ${((v / total) * 100).toFixed(1).padStart(5)}%  ${name}`);
    },
  };
}
