#!/usr/bin/env node
// Rolling upgrade of the quorumkv Swarm stack (deploy/swarm/quorumkv-stack.yml): one node at a
// time, and the next only once the cluster is whole again.
//
//   node deploy/swarm/rolling-upgrade.mjs --stack qkv --image quorumkv/node:NEW \
//        --endpoints n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003
//
// For each member, in order:
//   1. wait until the cluster is healthy: one agreed leader, every member answering and within
//      MAX_LAG_ENTRIES of the leader's commit index;
//   2. if the member leads, hand leadership to a caught-up follower first (one leader change
//      instead of an election after an election timeout);
//   3. `docker service update --image IMAGE STACK_ID` (stop-first: the old task stops, SIGTERM,
//      then the new one starts on the same volume), waiting for Swarm to report it converged;
//   4. wait until the member answers `/ready` (it knows the leader and has applied what it knows)
//      and is healthy again as in step 1.
// Maintenance mode (`quorumkv maintenance on`) is turned on for the whole upgrade, so nothing
// changes the membership meanwhile, and turned off at the end (also when a step fails).
// Every wait is bounded (STEP_TIMEOUT_MS); the script exits 1 with the reason when one runs out.
import { execFile } from 'node:child_process';
import { parseArgs } from 'node:util';

/** A member is "caught up" within this many entries of the leader's commit index. */
const MAX_LAG_ENTRIES = 50;
/** Bound of each wait (healthy, converged, ready). */
const STEP_TIMEOUT_MS = 120_000;
/** Poll period of the waits. */
const POLL_MS = 250;
/** Deadline of one HTTP request to a node. */
const REQUEST_TIMEOUT_MS = 2_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => console.log(`[rolling-upgrade ${new Date().toISOString()}] ${msg}`);

function parse() {
  const { values } = parseArgs({ options: { stack: { type: 'string' }, image: { type: 'string' }, endpoints: { type: 'string' } } });
  if (!values.stack || !values.image || !values.endpoints) {
    console.error('usage: rolling-upgrade.mjs --stack NAME --image IMAGE --endpoints n1=HOST:PORT,n2=HOST:PORT,...');
    process.exit(2);
  }
  const members = values.endpoints.split(',').map((pair) => {
    const [id, address] = pair.split('=');
    if (!id || !address) throw new Error(`bad --endpoints entry "${pair}" (want ID=HOST:PORT)`);
    return { id, address };
  });
  return { stack: values.stack, image: values.image, members };
}

function docker(args) {
  return new Promise((resolve, reject) => {
    execFile('docker', args, { timeout: STEP_TIMEOUT_MS + 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`docker ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

async function http(address, method, path, body) {
  const r = await fetch(`http://${address}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  return { status: r.status, body: await r.json().catch(() => ({})) };
}

async function statusOf(m) {
  try {
    const r = await http(m.address, 'GET', '/v1/status');
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

async function setMaintenance(members, on) {
  for (const m of members) {
    const r = await http(m.address, 'PUT', '/v1/admin/maintenance', { on }).catch((e) => ({ status: 0, body: String(e) }));
    if (r.status !== 200) log(`warning: maintenance ${on ? 'on' : 'off'} on ${m.id}: ${r.status} ${JSON.stringify(r.body)}`);
  }
}

async function upgradeOne(stack, image, members, m) {
  const leader = await waitFor('a healthy cluster', () => healthy(members));
  if (leader.id === m.id) {
    const to = members.find((x) => x.id !== m.id);
    log(`${m.id} leads (term ${leader.term}): transferring leadership to ${to.id}`);
    const r = await http(m.address, 'POST', '/v1/admin/leader/transfer', { id: to.id });
    if (r.status !== 200) throw new Error(`leader transfer to ${to.id}: ${r.status} ${JSON.stringify(r.body)}`);
    await waitFor(`a healthy cluster led by another node than ${m.id}`, async () => {
      const l = await healthy(members);
      return l && l.id !== m.id ? l : undefined;
    });
  }
  log(`updating ${stack}_${m.id} to ${image}`);
  await docker(['service', 'update', '--detach=false', '--quiet', '--image', image, `${stack}_${m.id}`]);
  await waitFor(`${m.id} to answer /ready`, async () => {
    try {
      return (await http(m.address, 'GET', '/ready')).status === 200;
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
    for (const m of members) await upgradeOne(stack, image, members, m);
  } finally {
    await setMaintenance(members, false);
  }
  log('done: every member runs the new image and the cluster is healthy');
}

main().catch((e) => {
  console.error(`[rolling-upgrade] FAILED: ${e.message}`);
  process.exit(1);
});
