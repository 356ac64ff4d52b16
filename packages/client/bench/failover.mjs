// Failover as a client sees it, against a real three-node cluster: 32 concurrent writers write
// unique keys while the leader is killed with SIGKILL, several times. Reports, per kill, the gap
// (kill → first acknowledged write after it) and checks afterwards that every acknowledged key
// exists with version 1 (no write applied twice, none lost). Not a test; needs a build:
//
//   pnpm exec tsc -b packages/server packages/client
//   node packages/client/bench/failover.mjs            (QKV_FAILOVER_RUNS=5, QKV_FAILOVER_BASE_PORT=27201)
//   QKV_DEBUG=1 node packages/client/bench/failover.mjs   (also lists the retries between election and first ack)

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect } from '@quorumkv/client';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const RUNS = Number(process.env.QKV_FAILOVER_RUNS ?? 5);
const BASE = Number(process.env.QKV_FAILOVER_BASE_PORT ?? 27201);
const WRITERS = 32;
const data = `/tmp/qkv-failover-${process.pid}`;
const ids = ['n1', 'n2', 'n3'];
const addr = (i) => `127.0.0.1:${BASE + i}`;
const peers = ids.map((id, i) => `${id}=${addr(i)}`).join(',');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** @type {Map<string, import('node:child_process').ChildProcess>} */
const procs = new Map();

function startNode(i) {
  const id = ids[i];
  const log = createWriteStream(`${data}/${id}.log`, { flags: 'a' });
  const child = spawn(process.execPath, [`${root}packages/server/dist/cli.js`, 'serve', '--id', id, '--listen', addr(i), '--peers', peers, '--data', `${data}/${id}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  procs.set(id, child);
}
// Never leave nodes behind, whatever happens to this script.
process.on('exit', () => {
  for (const p of procs.values()) p.kill('SIGKILL');
});

async function leaderOf(kv) {
  for (let i = 0; i < 100; i++) {
    const s = await kv.status().catch(() => undefined);
    if (s?.leader) return s.leader.id;
    await sleep(100);
  }
  throw new Error('no leader after 10 s');
}

rmSync(data, { recursive: true, force: true });
mkdirSync(data, { recursive: true });
ids.forEach((_, i) => startNode(i));
await sleep(1500);
const events = [];
const kv = await connect({
  endpoints: ids.map((_, i) => addr(i)),
  timeoutMs: 15_000,
  connectTimeoutMs: 10_000,
  onRetry: (e) => events.push([Date.now(), e.address, e.error.code, e.error.message]),
});
await leaderOf(kv);

const acked = [];
const failed = [];
const ackTimes = [];
let stop = false;
const writers = Array.from({ length: WRITERS }, async (_, w) => {
  for (let i = 0; !stop; i++) {
    const key = `failover/w${w}/k${i}`;
    try {
      await kv.put(key, 'v');
      acked.push(key);
      ackTimes.push(Date.now());
    } catch (e) {
      failed.push(`${key}: ${e.code ?? e}`);
    }
  }
});

/** When a surviving node logged "became leader" after `sinceMs` (from the nodes' JSON logs). */
function electedAt(sinceMs, except) {
  let first = Infinity;
  for (const id of ids.filter((x) => x !== except)) {
    for (const line of readFileSync(`${data}/${id}.log`, 'utf8').split('\n')) {
      if (!line.includes('"became leader"')) continue;
      const t = Date.parse(JSON.parse(line).time);
      if (t > sinceMs && t < first) first = t;
    }
  }
  return first;
}

/** The longest pause between acknowledgements from just before the kill until `windowMs` after. */
function longestPause(killedAt, windowMs) {
  const ts = ackTimes.filter((t) => t <= killedAt + windowMs).sort((a, b) => a - b);
  let prev = ts.filter((t) => t <= killedAt).pop() ?? killedAt;
  let worst = 0;
  for (const t of ts.filter((x) => x > killedAt)) {
    worst = Math.max(worst, t - prev);
    prev = t;
  }
  return worst;
}

const pauses = [];
const extras = [];
for (let run = 1; run <= RUNS; run++) {
  await sleep(1500);
  const leader = await leaderOf(kv);
  const before = acked.length;
  const killedAt = Date.now();
  procs.get(leader).kill('SIGKILL');
  await sleep(6000);
  const pause = longestPause(killedAt, 6000);
  const elected = electedAt(killedAt, leader);
  const firstAfterElection = ackTimes.filter((t) => t >= elected).sort((a, b) => a - b)[0];
  const extra = firstAfterElection === undefined ? Infinity : firstAfterElection - elected;
  pauses.push(pause);
  extras.push(extra);
  console.log(
    `run ${run}: killed leader ${leader} after ${before} acks; longest pause in acks ${pause} ms; ` +
      `new leader elected ${elected - killedAt} ms after the kill; first ack ${extra} ms after the election`,
  );
  if (process.env.QKV_DEBUG) {
    const counts = new Map();
    for (const [t, a, code, msg] of events.filter((e) => e[0] >= elected - 100 && e[0] <= (firstAfterElection ?? elected + 3000))) {
      const k = `${Math.floor((t - elected) / 100) * 100}ms after election ${a} ${code} ${msg.slice(0, 60)}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    for (const [k, n] of [...counts].sort()) console.log(`   ${k} x${n}`);
  }
  startNode(ids.indexOf(leader));
}
stop = true;
await Promise.all(writers);

let missing = 0;
let dup = 0;
for (const key of acked) {
  const item = await kv.get(key);
  if (!item) missing++;
  else if (item.version !== 1) dup++;
}
console.log(`writes acknowledged: ${acked.length}; failed (outcome unknown): ${failed.length}; missing: ${missing}; version != 1: ${dup}`);
const stats = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return `min ${v[0]} ms, median ${v[Math.floor(v.length / 2)]} ms, max ${v[v.length - 1]} ms`;
};
console.log(`longest pause in acknowledged writes per leader kill (${RUNS} kills): ${stats(pauses)}`);
console.log(`client's share (election → first ack): ${stats(extras)}`);
if (failed.length) console.log(`first failures: ${failed.slice(0, 5).join('; ')}`);
await kv.close();
for (const p of procs.values()) p.kill('SIGTERM');
process.exitCode = missing || dup ? 1 : 0;
