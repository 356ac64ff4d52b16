// Replacing a member that lost its disk, the way an operator does it (docs/server.md): remove the
// member, start it empty as a joiner, add it as a learner, promote it once it has caught up. Each
// step is one call of the server's admin HTTP API — the API behind `quorumkv member remove|add|
// promote` — sent to the other members in turn (a follower forwards it to the leader), retried
// until it succeeds or REPLACE_STEP_WAIT_MS passes.

import { nodeFetch } from './node-http.js';

/** Time one step of the replacement may take, retries included. */
export const REPLACE_STEP_WAIT_MS = 30_000;
/** Pause between attempts of a step. */
export const REPLACE_RETRY_MS = 500;
/** Deadline of one admin request (a membership change waits for its commit). */
const ADMIN_REQUEST_TIMEOUT_MS = 10_000;

/** What the procedure needs from the cluster. */
export interface ReplaceEnv {
  /** The `Authorization` header admin calls carry (the admin token of the cluster secret). */
  authorization: string;
  /** Client/admin endpoints (`host:port`) of the members other than the replaced one. */
  otherEndpoints(): string[];
  /** The address the member is added under (its peer address). */
  peerAddress: string;
  /** Stops the node's process (and expects its exit). */
  stop(): Promise<void>;
  /** Starts the node with an empty data directory as a joiner (no founding flag). */
  startJoiner(): Promise<void>;
  /** A line for the node's log. */
  log(line: string): void;
  sleep(ms: number): Promise<void>;
  /** Time one step may take. Default {@link REPLACE_STEP_WAIT_MS}. */
  stepWaitMs?: number;
  /** The CA to trust on a TLS run (admin requests over HTTPS). */
  ca?: Buffer;
}

/** One admin call's answer: the HTTP status and the error code of a JSON error body. */
interface AdminAnswer {
  status: number;
  code: string | undefined;
  text: string;
}

async function adminCall(endpoint: string, authorization: string, method: string, path: string, body: unknown, ca: Buffer | undefined): Promise<AdminAnswer> {
  const res = await nodeFetch(endpoint, path, {
    method,
    headers: { 'content-type': 'application/json', authorization },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(ADMIN_REQUEST_TIMEOUT_MS),
  }, ca);
  const text = await res.text();
  let code: string | undefined;
  try {
    const c = (JSON.parse(text) as { code?: unknown }).code;
    code = typeof c === 'string' ? c : undefined;
  } catch {
    code = undefined;
  }
  return { status: res.status, code, text: text.slice(0, 200) };
}

/**
 * Sends one admin request to the other members in turn until `done` accepts an answer, retrying
 * for REPLACE_STEP_WAIT_MS. Returns null on success, else the last answer or error.
 */
async function step(env: ReplaceEnv, what: string, method: string, path: string, body: unknown, done: (a: AdminAnswer) => boolean): Promise<string | null> {
  const waitMs = env.stepWaitMs ?? REPLACE_STEP_WAIT_MS;
  const until = Date.now() + waitMs;
  let last = 'no member answered';
  env.log(`# jepsen-lite: replace: ${what}`);
  while (Date.now() < until) {
    for (const ep of env.otherEndpoints()) {
      try {
        const a = await adminCall(ep, env.authorization, method, path, body, env.ca);
        if (done(a)) return null;
        last = `${ep} answered ${a.status} ${a.text}`;
      } catch (err) {
        last = `${ep}: ${(err as Error).message}`;
      }
    }
    await env.sleep(REPLACE_RETRY_MS);
  }
  return `${what} did not succeed within ${waitMs} ms (${last})`;
}

/**
 * Runs the replacement of member `id`. Resolves with a note: `replaced` and the time it took, or
 * which step failed and why (the node is then left stopped or as a learner, as an operator
 * who stopped there would leave it).
 */
export async function replaceMember(id: string, env: ReplaceEnv): Promise<string> {
  const t0 = Date.now();
  const path = `/v1/admin/members/${encodeURIComponent(id)}`;
  await env.stop();
  // Already gone (an earlier attempt landed) counts as done.
  const removed = await step(env, `quorumkv member remove ${id}`, 'DELETE', path, undefined, (a) => a.status === 200 || a.code === 'QKV_NOT_FOUND');
  if (removed !== null) return `replace ${id} FAILED: ${removed}`;
  await env.startJoiner();
  const added = await step(env, `quorumkv member add ${id} ${env.peerAddress} --learner`, 'POST', '/v1/admin/members', { id, address: env.peerAddress, learner: true }, (a) => a.status === 200 || a.code === 'QKV_CONFLICT');
  if (added !== null) return `replace ${id} FAILED: ${added}`;
  // Refused with QKV_NOT_CAUGHT_UP until the learner has caught up; "not a learner" after an
  // attempt that landed although its answer was lost.
  const promoted = await step(env, `quorumkv member promote ${id}`, 'POST', `${path}/promote`, undefined, (a) => a.status === 200 || a.code === 'QKV_NOT_FOUND');
  if (promoted !== null) return `replace ${id} FAILED: ${promoted}`;
  return `${id} replaced (removed, joined empty, learner, promoted) in ${Date.now() - t0} ms`;
}
