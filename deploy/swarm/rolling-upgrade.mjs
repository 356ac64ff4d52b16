#!/usr/bin/env node
// Rolling upgrade of the quorumkv Swarm stack (deploy/swarm/quorumkv-stack.yml): one node at a
// time, and the next only once the cluster is whole again.
//
//   node deploy/swarm/rolling-upgrade.mjs --stack qkv --image quorumkv/node:NEW \
//        --endpoints n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003
//
// The members are upgraded in the order given, except that the leader at the start goes last, so
// leadership moves once. For each member:
//   1. wait until the cluster is healthy: one agreed leader, every member answering and within
//      MAX_LAG_ENTRIES of the leader's commit index;
//   2. if the member leads, hand leadership to a caught-up follower first, one already upgraded
//      when there is one (one leader change instead of an election after an election timeout);
//   3. `docker service update --image IMAGE STACK_ID` (stop-first: the old task stops, SIGTERM,
//      then the new one starts on the same volume), waiting for Swarm to report it converged;
//   4. wait until the member answers `/ready` (it knows the leader and has applied what it knows)
//      and is healthy again as in step 1.
// Maintenance mode (`quorumkv maintenance on`) is turned on for the whole upgrade, so nothing
// changes the membership meanwhile, and turned off at the end (also when a step fails).
// Every wait is bounded (STEP_TIMEOUT_MS); the script exits 1 with the reason when one runs out.
//
// Admin actions (maintenance, leader transfer) go through the `quorumkv` CLI (--cli, default the
// repository's packages/server/dist/cli.js), so they carry whatever the CLI sends to admin
// endpoints; reads (/v1/status, /ready) are plain HTTP.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** A member is "caught up" within this many entries of the leader's commit index. */
const MAX_LAG_ENTRIES = 50;
/** Bound of each wait (healthy, converged, ready). */
const STEP_TIMEOUT_MS = 120_000;
/** Poll period of the waits. */
const POLL_MS = 250;
/** Deadline of one HTTP request to a node. */
const REQUEST_TIMEOUT_MS = 2_000;

/** The `quorumkv` CLI script (set by parse()). */
let cliPath = '';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => console.log(`[rolling-upgrade ${new Date().toISOString()}] ${msg}`);

/** The CLI of this repository, when --cli is not given. */
const DEFAULT_CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'packages', 'server', 'dist', 'cli.js');

function parse() {
  const { values } = parseArgs({ options: { stack: { type: 'string' }, image: { type: 'string' }, endpoints: { type: 'string' }, cli: { type: 'string' } } });
  if (!values.stack || !values.image || !values.endpoints) {
    console.error('usage: rolling-upgrade.mjs --stack NAME --image IMAGE --endpoints n1=HOST:PORT,n2=HOST:PORT,... [--cli PATH/cli.js]');
    process.exit(2);
  }
  cliPath = values.cli ?? DEFAULT_CLI;
  const members = values.endpoints.split(',').map((pair) => {
    const [id, address] = pair.split('=');
    if (!id || !address) throw new Error(`bad --endpoints entry "${pair}" (want ID=HOST:PORT)`);
    return { id, address };
  });
  return { stack: values.stack, image: values.image, members };
}

/** Runs a command (bounded); resolves with its stdout, rejects with its stderr. */
function exec(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: STEP_TIMEOUT_MS + 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(cmd)} ${args.join(' ')}: ${stderr || stdout || err.message}`));
      else resolve(stdout);
    });
  });
}

const docker = (args) => exec('docker', args);
/** `quorumkv ARGS --endpoints …` through the CLI. */
const quorumkv = (args, endpoints) => exec(process.execPath, [cliPath, ...args, '--endpoints', endpoints.join(',')]);

/** A GET of `urlPath` on `address`: its status and JSON body. */
async function http(address, urlPath) {
  const r = await fetch(`http://${address}${urlPath}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  return { status: r.status, body: await r.json().catch(() => ({})) };
}

async function statusOf(m) {
  try {
    const r = await http(m.address, '/v1/status');
    return r.status === 200 ? r.body : null;
  } catch {
    return null;
  }
}

async function waitFor(what, fn) {
  const until = Date.now() + STEP_TIMEOUT_MS;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${STEP_TIMEOUT_MS} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** The leader's status when every member answers, agrees on it and is caught up; else undefined. */
async function healthy(members) {
  const sts = await Promise.all(members.map(statusOf));
  if (sts.some((s) => s === null)) return undefined;
  const leader = sts.find((s) => s.role === 'leader');
  if (!leader || sts.some((s) => s.leader !== leader.id || s.term !== leader.term)) return undefined;
  return sts.every((s) => leader.commitIndex - s.appliedIndex <= MAX_LAG_ENTRIES) ? leader : undefined;
}

/** `quorumkv maintenance on|off` on every member; a member that did not take it is reported. */
async function setMaintenance(members, on) {
  await quorumkv(['maintenance', on ? 'on' : 'off'], members.map((m) => m.address)).catch((e) => log(`warning: maintenance ${on ? 'on' : 'off'}: ${e.message}`));
}

async function upgradeOne(stack, image, members, m, done) {
  const leader = await waitFor('a healthy cluster', () => healthy(members));
  if (leader.id === m.id) {
    const to = [...done, ...members].find((x) => x.id !== m.id);
    log(`${m.id} leads (term ${leader.term}): transferring leadership to ${to.id}`);
    await quorumkv(['leader', 'transfer', to.id], [m.address]);
    await waitFor(`a healthy cluster led by another node than ${m.id}`, async () => {
      const l = await healthy(members);
      return l && l.id !== m.id ? l : undefined;
    });
  }
  log(`updating ${stack}_${m.id} to ${image}`);
  await docker(['service', 'update', '--detach=false', '--quiet', '--image', image, `${stack}_${m.id}`]);
  await waitFor(`${m.id} to answer /ready`, async () => {
    try {
      return (await http(m.address, '/ready')).status === 200;
    } catch {
      return false;
    }
  });
  const after = await waitFor('a healthy cluster', () => healthy(members));
  log(`${m.id} is back and caught up (leader ${after.id}, term ${after.term})`);
}

async function main() {
  const { stack, image, members } = parse();
  await setMaintenance(members, true);
  try {
    const first = await waitFor('a healthy cluster', () => healthy(members));
    const order = [...members.filter((m) => m.id !== first.id), ...members.filter((m) => m.id === first.id)];
    log(`order: ${order.map((m) => m.id).join(', ')} (the leader, ${first.id}, last)`);
    const done = [];
    for (const m of order) {
      await upgradeOne(stack, image, members, m, done);
      done.push(m);
    }
  } finally {
    await setMaintenance(members, false);
  }
  log('done: every member runs the new image and the cluster is healthy');
}

main().catch((e) => {
  console.error(`[rolling-upgrade] FAILED: ${e.message}`);
  process.exit(1);
});
