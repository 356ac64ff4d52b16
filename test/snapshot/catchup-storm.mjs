#!/usr/bin/env node
// "Catch-up storm" benchmark (issue 5): a three-node quorumkv cluster holding a lot of state
// (values of ~4 KiB) under a steady open-loop write load on the leader; one follower is wiped and
// replaced the documented way (member remove; start empty without the founding flag; member add
// --learner; promote once caught up) and catches up through a snapshot. It measures the leader's client latency (p50/p99) and throughput
// before and during the catch-up, with the default snapshot rate limit (32 MiB/s) and with no limit,
// the catch-up time, and leader changes. It prints a table and writes it as Markdown.
//
// A script, not a test. Build first: `pnpm exec tsc -b packages/server`. Then, from the repo root:
//   node test/snapshot/catchup-storm.mjs [--target-mb 500] [--fill-seconds 300] [--load-rps 100]
//        [--steady-seconds 20] [--out ./catchup-storm.md] [--keep] [--server-args="--flag v …"]
//        [--rates 33554432,0]   snapshot rate limits to try, one catch-up round each (0 = unlimited)
//
// The load is open-loop: request i is due at start + i/rps and its latency is measured from that
// due time, so a stall shows up as latency (no coordinated omission). At most MAX_IN_FLIGHT
// requests are outstanding; a request that would exceed that is counted as "shed" instead.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { adminAuthorization } from '../../packages/transport/dist/index.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(REPO, 'packages', 'server', 'dist', 'cli.js');
const SECRET = 'quorumkv-bench-secret-0123456789';
const VALUE_BYTES = 4096;
/** Concurrent writers while filling. */
const FILL_CONCURRENCY = 96;
/** Outstanding load requests at most (beyond it a due request is shed and counted). */
const MAX_IN_FLIGHT = 512;
/** Keys the steady load overwrites (so the load itself does not grow the state much). */
const LOAD_KEYS = 2000;
/** Longest a catch-up may take before the round gives up on it (--catchup-timeout-seconds). */
let CATCHUP_TIMEOUT_MS = 240_000;
const REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_RATE = 32 * 1024 * 1024;
/** Writers of small unmeasured writes while the wiped follower is down (see round()). */
const OUTRUN_CONCURRENCY = 32;
/** Load runs this long before a steady window starts (after the fill, and after a catch-up). */
const WARMUP_MS = 10_000;

const { values: opt } = parseArgs({
  options: {
    'target-mb': { type: 'string', default: '500' },
    'fill-seconds': { type: 'string', default: '300' },
    'load-rps': { type: 'string', default: '100' },
    'steady-seconds': { type: 'string', default: '20' },
    out: { type: 'string', default: './catchup-storm.md' },
    keep: { type: 'boolean', default: false },
    'catchup-timeout-seconds': { type: 'string', default: '240' },
    rates: { type: 'string', default: `${32 * 1024 * 1024},0` },
    'server-args': { type: 'string', default: '' },
  },
});
const TARGET_BYTES = Number(opt['target-mb']) * 1024 * 1024;
const FILL_SECONDS = Number(opt['fill-seconds']);
const LOAD_RPS = Number(opt['load-rps']);
const STEADY_SECONDS = Number(opt['steady-seconds']);
CATCHUP_TIMEOUT_MS = Number(opt['catchup-timeout-seconds']) * 1000;
/** Extra `serve` flags for every node (default: none, i.e. the server's defaults). */
const SERVER_ARGS = opt['server-args'].split(/\s+/).filter(Boolean);

const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

function request(port, method, p, body, timeoutMs = REQUEST_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const buf = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent, headers: { authorization: adminAuthorization(SECRET), ...(buf ? { 'content-length': buf.length } : {}) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(buf);
  });
}
const json = async (port, p) => JSON.parse((await request(port, 'GET', p, undefined, 3000)).body.toString());

async function freePorts(n) {
  const servers = [];
  for (let i = 0; i < n; i++) {
    const s = net.createServer();
    await new Promise((r) => s.listen(0, '127.0.0.1', r));
    servers.push(s);
  }
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

// ---------------------------------------------------------------------------------------------
// The cluster.

const dir = mkdtempSync(path.join(os.tmpdir(), 'qkv-storm-'));
const ports = await freePorts(3);
const nodes = ports.map((port, i) => ({ id: `n${i + 1}`, port, dataDir: path.join(dir, `n${i + 1}`), logPath: path.join(dir, `n${i + 1}.log`), proc: null }));
const peers = nodes.map((n) => `${n.id}=127.0.0.1:${n.port}`).join(',');
const procs = new Set();
const killAll = () => {
  for (const p of procs) try { p.kill('SIGKILL'); } catch { /* gone */ }
};
process.on('exit', killAll);
for (const s of ['SIGINT', 'SIGTERM']) process.once(s, () => { killAll(); process.exit(130); });

/** Starts a node; `state` is its --initial-cluster-state (`new` founds an empty data directory). */
function startNode(n, state = 'new') {
  const fd = openSync(n.logPath, 'a');
  const args = [CLI, 'serve', '--id', n.id, '--listen', `127.0.0.1:${n.port}`, '--peers', peers, '--data', n.dataDir, '--initial-cluster-state', state, '--log-level', 'info', ...SERVER_ARGS];
  const p = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], env: { ...process.env, QKV_CLUSTER_SECRET: SECRET, QKV_CLUSTER_SECRET_FILE: '' } });
  closeSync(fd);
  procs.add(p);
  n.proc = p;
  p.once('exit', () => { procs.delete(p); if (n.proc === p) n.proc = null; });
}
async function stopNode(n) {
  const p = n.proc;
  if (!p) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await exited;
}
async function waitUntil(what, fn, timeoutMs) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try { const v = await fn(); if (v !== undefined && v !== false) return v; } catch { /* retry */ }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
async function leader() {
  return waitUntil('a leader', async () => {
    const sts = await Promise.all(nodes.filter((n) => n.proc).map((n) => json(n.port, '/v1/status').catch(() => null)));
    const l = sts.find((s) => s && s.role === 'leader');
    return l ? nodes.find((n) => n.id === l.id) : undefined;
  }, 30_000);
}
function logEvents(n, prefix) {
  try {
    return readFileSync(n.logPath, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter((e) => e && typeof e.msg === 'string' && e.msg.startsWith(prefix));
  } catch { return []; }
}
async function metric(port, name, filter = '') {
  const text = (await request(port, 'GET', '/metrics', undefined, 3000)).body.toString();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] ?? '').includes(filter)) sum += Number(m[3]);
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Fill and load.

/** Incompressible value bytes (LevelDB compresses blocks; dots would make the disk work unrealistic). */
const RANDOM_POOL = randomBytes(1024 * 1024);
let poolAt = 0;
function valueFor(key) {
  const v = Buffer.allocUnsafe(VALUE_BYTES);
  if (poolAt + VALUE_BYTES > RANDOM_POOL.length) poolAt = (poolAt * 7919 + 13) % 4093;
  RANDOM_POOL.copy(v, 0, poolAt, poolAt + VALUE_BYTES);
  poolAt += VALUE_BYTES + 1;
  v.write(`${key}:`);
  return v;
}

async function fill(port) {
  const t0 = Date.now();
  const deadline = t0 + FILL_SECONDS * 1000;
  let next = 0;
  let bytes = 0;
  let errors = 0;
  let lastReport = t0;
  const worker = async () => {
    while (bytes < TARGET_BYTES && Date.now() < deadline) {
      const key = `fill-${String(next++).padStart(8, '0')}`;
      const value = valueFor(key);
      try {
        const r = await request(port, 'PUT', `/v1/kv/${key}`, value);
        if (r.status === 200) bytes += VALUE_BYTES + key.length;
        else { errors++; await sleep(20); }
      } catch { errors++; await sleep(50); }
      if (Date.now() - lastReport > 10_000) {
        lastReport = Date.now();
        log(`fill: ${(bytes / 1048576).toFixed(0)} MiB in ${((Date.now() - t0) / 1000).toFixed(0)} s (${errors} errors), load ${os.loadavg()[0].toFixed(1)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: FILL_CONCURRENCY }, worker));
  return { bytes, keys: next, seconds: (Date.now() - t0) / 1000, errors };
}

/** An open-loop write load on one node; `mark()` starts a new measurement window. */
class Load {
  constructor(port) {
    this.port = port;
    this.windows = [];
    this.current = null;
    this.inFlight = 0;
    this.stopped = false;
    this.seq = 0;
  }
  mark(name) {
    if (this.current) this.current.endMs = Date.now();
    this.current = { name, startMs: Date.now(), endMs: 0, lat: [], ok: 0, errors: 0, shed: 0 };
    this.windows.push(this.current);
    return this.current;
  }
  start() {
    this.t0 = performance.now();
    this.running = (async () => {
      let i = 0;
      while (!this.stopped) {
        const due = this.t0 + (i * 1000) / LOAD_RPS;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        i++;
        const w = this.current;
        if (this.inFlight >= MAX_IN_FLIGHT) { if (w) w.shed++; continue; }
        this.inFlight++;
        const key = `load-${this.seq++ % LOAD_KEYS}`;
        request(this.port, 'PUT', `/v1/kv/${key}`, valueFor(key))
          .then((r) => { if (w) { if (r.status === 200) { w.ok++; w.lat.push(performance.now() - due); } else w.errors++; } })
          .catch(() => { if (w) w.errors++; })
          .finally(() => { this.inFlight--; });
      }
    })();
    return this;
  }
  async stop() {
    this.stopped = true;
    if (this.current) this.current.endMs = Date.now();
    await this.running;
    await waitUntil('load requests to finish', () => this.inFlight === 0, 30_000).catch(() => undefined);
  }
}

/** Sum and count of qkv_storage_fsync_seconds on one node (for a mean over a window). */
async function fsyncStats(n) {
  try {
    return { sum: await metric(n.port, 'qkv_storage_fsync_seconds_sum'), count: await metric(n.port, 'qkv_storage_fsync_seconds_count') };
  } catch {
    return { sum: NaN, count: NaN };
  }
}
const meanMs = (a, b) => (b.count > a.count ? ((b.sum - a.sum) / (b.count - a.count)) * 1000 : NaN);

/** The leader's 'log compacted' events inside a window (each may stall writes for its `ms`). */
function compactionsIn(n, w) {
  return logEvents(n, 'log compacted').filter((e) => { const t = Date.parse(e.time); return t >= w.startMs && t <= (w.endMs || Date.now()); }).map((e) => e.ms);
}

function summarize(w) {
  const lat = [...w.lat].sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
  const secs = Math.max(0.001, ((w.endMs || Date.now()) - w.startMs) / 1000);
  return { name: w.name, seconds: secs, ok: w.ok, errors: w.errors, shed: w.shed, p50: q(0.5), p99: q(0.99), max: lat.length ? lat[lat.length - 1] : NaN, rps: w.ok / secs };
}

/** Records the (term, leader) pairs the live nodes report, every 200 ms. */
function watchLeaders() {
  const seen = new Set();
  // The leader's catch-up throttle (/v1/status catchupThrottle): its mode, the lowest rate it set, its cuts.
  const throttle = { mode: null, minRate: Infinity, decreases: null };
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      await Promise.all(nodes.filter((n) => n.proc).map(async (n) => {
        try {
          const s = await json(n.port, '/v1/status');
          if (s.leader) seen.add(`${s.term}:${s.leader}`);
          const t = s.role === 'leader' ? s.catchupThrottle : undefined;
          if (t) Object.assign(throttle, { mode: t.mode, minRate: Math.min(throttle.minRate, t.effectiveBytesPerSec), decreases: t.decreases ?? null });
        } catch { /* down */ }
      }));
      await sleep(200);
    }
  })();
  return { seen, throttle, stop: async () => { stop = true; await loop; } };
}

// ---------------------------------------------------------------------------------------------
// One catch-up round: steady window, wipe a follower, catch-up window.

async function round(label, rate, lead, follower, load) {
  log(`${label}: snapshot rate ${rate === 0 ? 'unlimited' : `${rate} B/s`} on the leader ${lead.id}`);
  await request(lead.port, 'PUT', '/v1/admin/snapshot-rate', { bytesPerSecond: rate });
  const leaderChangesBefore = await metric(lead.port, 'qkv_raft_leader_changes_total');
  const installedBefore = logEvents(lead, 'snapshot transfer finished').length;
  const other = nodes.find((n) => n !== lead && n !== follower);
  const fs0 = [await fsyncStats(lead), await fsyncStats(other)];
  const steady = load.mark(`${label} steady`);
  await sleep(STEADY_SECONDS * 1000);
  const fs1 = [await fsyncStats(lead), await fsyncStats(other)];
  const loadSteady = os.loadavg()[0];
  const watcher = watchLeaders();
  const leadStatus0 = await json(lead.port, '/v1/status');
  const staleMatch = leadStatus0.members.find((m) => m.id === follower.id)?.matchIndex ?? 0;
  const removed = await request(lead.port, 'DELETE', `/v1/admin/members/${follower.id}`, undefined, REQUEST_TIMEOUT_MS);
  if (removed.status !== 200) throw new Error(`member remove ${follower.id}: ${removed.status} ${removed.body}`);
  await stopNode(follower);
  rmSync(follower.dataDir, { recursive: true, force: true });
  // The node stays down until the leader's log no longer holds the entry after its old match, so
  // the replacement has to catch up by snapshot (a node back after a long absence, on a new disk).
  // Small extra writes (not measured) speed that up.
  load.mark(`${label} follower down`);
  let compactedPast = false;
  const outrun = async (w) => {
    for (let i = 0; !compactedPast; i++) {
      await request(lead.port, 'PUT', `/v1/kv/gap-${label.replace(/\W+/g, '-')}-${w}-${i}`, 'x'.repeat(100)).catch(() => sleep(50));
    }
  };
  const outrunners = Array.from({ length: OUTRUN_CONCURRENCY }, (_, w) => outrun(w));
  try {
    await waitUntil('the leader to compact past the stopped follower', async () => {
      const s = await json(lead.port, '/v1/status');
      return s.firstIndex > staleMatch + 1 ? true : undefined;
    }, 300_000);
  } finally {
    compactedPast = true;
    await Promise.all(outrunners);
  }
  const fs2 = [await fsyncStats(lead), await fsyncStats(other)];
  const during = load.mark(`${label} catch-up`);
  const tRestart = Date.now();
  startNode(follower, 'existing');
  await waitUntil(`${follower.id} to be added as a learner`, async () => {
    const r = await request(lead.port, 'POST', '/v1/admin/members', { id: follower.id, address: `127.0.0.1:${follower.port}`, learner: true }, REQUEST_TIMEOUT_MS);
    return r.status === 200 ? true : undefined;
  }, 30_000);
  let caughtUpMs = NaN;
  try {
    await waitUntil(`${follower.id} to catch up`, async () => {
      const [l, f] = await Promise.all([json(lead.port, '/v1/status'), json(follower.port, '/v1/status')]);
      return f.appliedIndex > leadStatus0.commitIndex && l.commitIndex - f.appliedIndex <= 100 ? true : undefined;
    }, CATCHUP_TIMEOUT_MS);
    caughtUpMs = Date.now() - tRestart;
    await waitUntil(`${follower.id} to be promoted`, async () => ((await request(lead.port, 'POST', `/v1/admin/members/${follower.id}/promote`, undefined, REQUEST_TIMEOUT_MS)).status === 200 ? true : undefined), 60_000);
  } catch (e) {
    log(`${label}: ${e.message}`);
  }
  load.mark(`${label} after`);
  const fs3 = [await fsyncStats(lead), await fsyncStats(other)];
  const loadDuring = os.loadavg()[0];
  await watcher.stop();
  const transfers = logEvents(lead, 'snapshot transfer finished').slice(installedBefore).filter((e) => e.peer === follower.id);
  const finished = transfers[transfers.length - 1];
  const leaderChanges = (await metric(lead.port, 'qkv_raft_leader_changes_total').catch(() => NaN)) - leaderChangesBefore;
  const leadersSeen = [...watcher.seen];
  return {
    label, rate, steady: summarize(steady), during: summarize(during),
    compactionsSteady: compactionsIn(lead, steady), compactionsDuring: compactionsIn(lead, during),
    fsyncMsSteady: [meanMs(fs0[0], fs1[0]), meanMs(fs0[1], fs1[1])], fsyncMsDuring: [meanMs(fs2[0], fs3[0]), meanMs(fs2[1], fs3[1])], caughtUpMs, loadSteady, loadDuring,
    snapshotBytes: finished?.bytes ?? null, transferMs: finished?.ms ?? null, attempts: finished?.attempts ?? null,
    transfers: transfers.map((e) => ({ index: e.index, ms: e.ms })),
    throttle: watcher.throttle,
    leaderChanges, leadersSeen, leaderStill: (await json(lead.port, '/v1/status').catch(() => ({}))).role === 'leader',
  };
}

// ---------------------------------------------------------------------------------------------

if (!existsSync(CLI)) throw new Error(`${CLI} missing: run pnpm exec tsc -b packages/server`);
log(`cluster in ${dir}; ${os.cpus().length} cores, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
for (const n of nodes) startNode(n);
let results = [];
let filled;
try {
  const lead = await leader();
  log(`leader ${lead.id}; filling up to ${opt['target-mb']} MiB or ${FILL_SECONDS} s`);
  filled = await fill(lead.port);
  log(`filled ${(filled.bytes / 1048576).toFixed(0)} MiB (${filled.keys} keys) in ${filled.seconds.toFixed(0)} s`);
  await sleep(3000);
  const l2 = await leader();
  const follower = nodes.find((n) => n.id !== l2.id);
  const load = new Load(l2.port).start();
  load.mark('warm-up');
  await sleep(WARMUP_MS);
  for (const [i, rate] of opt.rates.split(',').map(Number).entries()) {
    if (i > 0) await sleep(WARMUP_MS);
    const label = rate === 0 ? 'no limit' : rate === DEFAULT_RATE ? 'default limit (32 MiB/s)' : `limit ${(rate / 1048576).toFixed(0)} MiB/s`;
    const r = await round(label, rate, l2, follower, load);
    results.push(r);
    log(`${label}: ${JSON.stringify(r)}`);
  }
  await load.stop();
} finally {
  killAll();
  if (!opt.keep) rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Report.

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const lines = [];
lines.push(`State: ${(filled.bytes / 1048576).toFixed(0)} MiB in ${filled.keys} keys of ${VALUE_BYTES} B (filled in ${filled.seconds.toFixed(0)} s${filled.bytes < TARGET_BYTES ? `; the ${opt['target-mb']} MiB target was not reached in the ${FILL_SECONDS} s budget` : ''}).`);
lines.push(`Load: open-loop ${LOAD_RPS} writes/s of ${VALUE_BYTES} B on the leader; latency from each request's due time. Machine: ${os.cpus().length} cores, shared (load average shown).`);
lines.push('');
lines.push('| run | window | writes/s | p50 ms | p99 ms | max ms | errors | shed | leader log compactions (ms each) | mean fsync ms leader / other follower | load avg |');
lines.push('|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|');
for (const r of results) {
  for (const [w, la, cs, fm] of [[r.steady, r.loadSteady, r.compactionsSteady, r.fsyncMsSteady], [r.during, r.loadDuring, r.compactionsDuring, r.fsyncMsDuring]]) {
    lines.push(`| ${r.label} | ${w.name.replace(`${r.label} `, '')} (${f0(w.seconds)} s) | ${f1(w.rps)} | ${f1(w.p50)} | ${f1(w.p99)} | ${f1(w.max)} | ${w.errors} | ${w.shed} | ${cs.length ? cs.join(', ') : '–'} | ${f1(fm[0])} / ${f1(fm[1])} | ${f1(la)} |`);
  }
}
lines.push('');
lines.push('| run | snapshot bytes | transfers (s each) | catch-up s | p99 during / steady | leader changes | throttle (lowest rate MiB/s, cuts) |');
lines.push('|---|---:|---:|---:|---:|---:|---|');
for (const r of results) {
  const ratio = r.during.p99 / r.steady.p99;
  lines.push(`| ${r.label} | ${r.snapshotBytes ?? '–'} | ${r.transfers.length} (${r.transfers.map((t) => (t.ms / 1000).toFixed(1)).join(', ')}) | ${Number.isFinite(r.caughtUpMs) ? f1(r.caughtUpMs / 1000) : `not within ${CATCHUP_TIMEOUT_MS / 1000}`} | ${ratio.toFixed(2)}× | ${f0(r.leaderChanges)} (terms:leaders seen ${r.leadersSeen.join(', ')}) | ${r.throttle.mode ?? '–'}${r.throttle.mode === 'adaptive' ? ` (${f1(r.throttle.minRate / 1048576)}, ${r.throttle.decreases})` : ''} |`);
}
const text = lines.join('\n');
console.log(text);
writeFileSync(opt.out, `# Catch-up storm (issue 5) — ${new Date().toISOString()}\n\nCommand: node test/snapshot/catchup-storm.mjs ${process.argv.slice(2).join(' ')}\n\n${text}\n\nRaw: ${JSON.stringify(results.map((r) => ({ ...r, steady: { ...r.steady }, during: { ...r.during } })))}\n`);
log(`written to ${opt.out}`);
process.exit(0);
