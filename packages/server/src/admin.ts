// Admin HTTP endpoints (behind `quorumkv member …`, `leader transfer`, `snapshot-rate`):
//
//   GET    /v1/admin/members              this node's view: voters and learners, with recorded incarnations
//   POST   /v1/admin/members              {"id","address","learner"?,"zone"?}
//          joins as a learner; unless "learner": true, it is promoted once caught up
//   POST   /v1/admin/members/{id}/promote  refused (409) while the learner is behind
//   DELETE /v1/admin/members/{id}           removing the leader transfers leadership first
//   PUT    /v1/admin/members/{id}/zone      {"zone"}  records the member's failure domain
//   POST   /v1/admin/leader/transfer        {"id"}
//   PUT    /v1/admin/snapshot-rate          {"bytesPerSecond"?, "paused"?}   this node only (0 = unlimited;
//          paused: true stops every catch-up snapshot send until paused: false; ops-switches.ts)
//   GET    /v1/admin/maintenance             this node's maintenance switch
//   PUT    /v1/admin/maintenance             {"on"}  this node only: refuse membership changes (ops-switches.ts)
//   GET    /v1/admin/snapshots              transfers in flight
//   GET    /v1/admin/snapshot               a backup: this node's state as one snapshot stream (backup-endpoint.ts)
//   PUT    /v1/admin/faults                 {"fsyncDelayMs"}  test-only, with --enable-fault-injection
//
// Membership requests must run on the leader: a follower forwards them (like writes). In
// maintenance mode (on the node asked or on the leader) they are refused with QKV_MAINTENANCE.
// Every route here (and POST /v1/compact) needs the admin token: http-api.ts checks it before
// routing (admin-auth.ts).
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { ConfChangeType, type ConfChange } from '@quorumkv/raft';
import { InvalidArgumentError, QuorumKvError, TimeoutError } from '@quorumkv/protocol';
import type { AdminRoutes } from './http-api.js';
import { splitHostPort, watchForwardedRequest } from './http-api.js';
import { ZONE_RE, memberContext, zoneRecordChange } from './membership.js';
import type { QuorumKvNode } from './node.js';
import type { SnapshotManager } from './snapshots.js';
import type { PeerHttp } from './peer-http.js';
import { BackupEndpoint } from './backup-endpoint.js';
import { parseHostPort } from './config.js';
import { MaintenanceError } from './ops-switches.js';
import { relayedAuthorization } from './admin-auth.js';

/** A learner is "caught up" when its match index is within this many entries of the leader's last. */
const CAUGHT_UP_MAX_LAG = 100;
/** How long `member add` waits for the new learner to catch up before giving up on promotion. */
const PROMOTE_WAIT_MS = 120_000;
const MAX_ADMIN_BODY_BYTES = 64 * 1024;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

class AdminError extends QuorumKvError {}

/**
 * The routes maintenance mode refuses: every membership change (a leader's own removal would also
 * start an automatic leader transfer). An explicit `leader transfer` is the operator's act and passes.
 */
function isMembershipChange(method: string, path: string): boolean {
  if (path === '/v1/admin/members') return method === 'POST';
  if (!path.startsWith('/v1/admin/members/')) return false;
  return method === 'POST' || method === 'PUT' || method === 'DELETE';
}

export class AdminApi implements AdminRoutes {
  private readonly backup: BackupEndpoint;

  constructor(
    private readonly node: QuorumKvNode,
    private readonly snapshots: SnapshotManager,
    private readonly peerHttp: PeerHttp,
  ) {
    this.backup = new BackupEndpoint(node);
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const p = url.pathname;
    if (!p.startsWith('/v1/admin/')) return false;
    const m = req.method ?? 'GET';
    if (p === '/v1/admin/snapshot-rate' && m === 'PUT') return this.snapshotRate(req, res);
    if (p === '/v1/admin/faults' && m === 'PUT') return this.faults(req, res);
    if (p === '/v1/admin/snapshot' && m === 'GET') return this.backup.serve(res);
    if (p === '/v1/admin/snapshots' && m === 'GET') return json(res, 200, { rateBytesPerSec: this.snapshots.rateBytesPerSec, transfers: this.snapshots.status() });
    if (p === '/v1/admin/members' && m === 'GET') return json(res, 200, { id: this.node.id, incarnation: this.node.incarnation, ...this.node.membership() });
    if (p === '/v1/admin/maintenance' && m === 'GET') return json(res, 200, { id: this.node.id, maintenance: this.node.opsSwitches.maintenance });
    if (p === '/v1/admin/maintenance' && m === 'PUT') return this.maintenance(req, res);
    // Everything below changes the cluster: leader only (followers forward).
    if (this.node.opsSwitches.maintenance && isMembershipChange(m, p)) throw new MaintenanceError(`${m} ${p}`);
    if (!this.node.isLeader()) return this.forward(req, res);
    if (p === '/v1/admin/members' && m === 'POST') return this.add(req, res);
    const promote = /^\/v1\/admin\/members\/([^/]+)\/promote$/.exec(p);
    if (promote && m === 'POST') return this.promote(res, decodeURIComponent(promote[1]!));
    const zone = /^\/v1\/admin\/members\/([^/]+)\/zone$/.exec(p);
    if (zone && m === 'PUT') return this.recordZone(req, res, decodeURIComponent(zone[1]!));
    const member = /^\/v1\/admin\/members\/([^/]+)$/.exec(p);
    if (member && m === 'DELETE') return this.remove(req, res, decodeURIComponent(member[1]!));
    if (p === '/v1/admin/leader/transfer' && m === 'POST') return this.transfer(req, res);
    throw new AdminError('QKV_NOT_FOUND', `no admin route ${m} ${p}`);
  }

  private deadline(ms = this.node.cfg.requestTimeoutMs) {
    return { deadlineMs: Date.now() + ms };
  }

  private async add(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const body = await readJson(req);
    const id = str(body, 'id');
    const address = str(body, 'address');
    if (!ID_RE.test(id)) throw new InvalidArgumentError(`bad node id "${id}"`);
    try {
      parseHostPort(address, 'address');
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
    const zone = body.zone === undefined ? undefined : str(body, 'zone');
    const learnerOnly = body.learner === true;
    if (this.node.memberById(id)) throw new AdminError('QKV_CONFLICT', `${id} is already a member`);
    await this.node.changeMembership({ type: ConfChangeType.AddLearner, nodeId: id, context: memberContext(address, zone) }, this.deadline());
    if (learnerOnly) return json(res, 200, { id, added: 'learner' });
    await this.waitCaughtUp(id, PROMOTE_WAIT_MS);
    await this.node.changeMembership({ type: ConfChangeType.AddNode, nodeId: id }, this.deadline());
    return json(res, 200, { id, added: 'voter' });
  }

  private async promote(res: ServerResponse, id: string): Promise<boolean> {
    const m = this.node.membership();
    if (!m.learners.some((l) => l.id === id)) throw new AdminError('QKV_NOT_FOUND', `${id} is not a learner`);
    const lag = this.lag(id);
    if (lag === undefined || lag > CAUGHT_UP_MAX_LAG) {
      throw new AdminError('QKV_NOT_CAUGHT_UP', `${id} is ${lag ?? 'an unknown number of'} entries behind; promote it once caught up`);
    }
    if (this.node.recordedIncarnation(id) === undefined) {
      throw new AdminError('QKV_NOT_CAUGHT_UP', `${id}'s incarnation is not recorded yet (it has not connected to the leader); promote it once it has`);
    }
    await this.node.changeMembership({ type: ConfChangeType.AddNode, nodeId: id }, this.deadline());
    return json(res, 200, { id, promoted: true });
  }

  /** Records a member's zone in the replicated membership (the founding members' `--zone` is not). */
  private async recordZone(req: IncomingMessage, res: ServerResponse, id: string): Promise<boolean> {
    const zone = str(await readJson(req), 'zone');
    if (!ZONE_RE.test(zone)) throw new InvalidArgumentError(`bad zone "${zone}"`);
    if (this.node.memberById(id)?.zone === zone) return json(res, 200, { id, zone, changed: false });
    const cc = zoneRecordChange(this.node.membership(), id, zone);
    if (!cc) throw new AdminError('QKV_NOT_FOUND', `${id} is not a member`);
    await this.node.changeMembership(cc, this.deadline());
    return json(res, 200, { id, zone, changed: true });
  }

  private async remove(req: IncomingMessage, res: ServerResponse, id: string): Promise<boolean> {
    if (!this.node.memberById(id)) throw new AdminError('QKV_NOT_FOUND', `${id} is not a member`);
    if (id === this.node.id) {
      // Never remove a leader under its own feet: hand leadership to the most caught-up voter,
      // then let the new leader remove this node.
      const target = this.bestTransferee();
      if (!target) throw new AdminError('QKV_CONFLICT', 'cannot remove the only voter');
      await this.node.transferLeadership(target, this.deadline());
      return this.forward(req, res);
    }
    const cc: ConfChange = { type: ConfChangeType.RemoveNode, nodeId: id };
    await this.node.changeMembership(cc, this.deadline());
    return json(res, 200, { id, removed: true });
  }

  private async transfer(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const id = str(await readJson(req), 'id');
    if (id === this.node.id) return json(res, 200, { leader: id, transferred: false });
    await this.node.transferLeadership(id, this.deadline(Math.max(this.node.cfg.requestTimeoutMs, 4 * this.node.cfg.electionTicks * this.node.cfg.tickMs)));
    return json(res, 200, { leader: this.node.leaderId(), transferred: true });
  }

  /** Sets the send rate limit and/or pauses or resumes every snapshot send (persisted, ops-switches.ts). */
  private async snapshotRate(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const body = await readJson(req);
    const v = body.bytesPerSecond;
    const paused = body.paused;
    if (v === undefined && paused === undefined) throw new InvalidArgumentError('give bytesPerSecond and/or paused');
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) throw new InvalidArgumentError('bytesPerSecond must be a non-negative integer');
    if (paused !== undefined && typeof paused !== 'boolean') throw new InvalidArgumentError('paused must be true or false');
    if (typeof v === 'number') this.snapshots.setRate(v);
    const kept = typeof paused === 'boolean' ? this.setSwitch({ snapshotSendsPaused: paused }) : {};
    return json(res, 200, { id: this.node.id, bytesPerSecond: this.snapshots.rateBytesPerSec, paused: this.snapshots.sendsPaused, ...kept });
  }

  /** Turns this node's maintenance switch on or off (persisted, ops-switches.ts). */
  private async maintenance(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const on = (await readJson(req)).on;
    if (typeof on !== 'boolean') throw new InvalidArgumentError('on must be true or false');
    const kept = this.setSwitch({ maintenance: on });
    this.node.log.warn({ maintenance: on }, on ? 'maintenance mode on: membership changes are refused' : 'maintenance mode off');
    return json(res, 200, { id: this.node.id, maintenance: on, ...kept });
  }

  /** Sets a switch; when it could not be persisted, says so in the answer and the log. */
  private setSwitch(change: Parameters<QuorumKvNode['opsSwitches']['set']>[0]): { persisted?: false; persistError?: string } {
    const { persistError } = this.node.opsSwitches.set(change);
    if (persistError === undefined) return {};
    this.node.log.error({ change, err: persistError }, 'operator switch applied but not persisted: it lasts until this node restarts');
    return { persisted: false, persistError };
  }

  /** Test-only fault switches, served only with --enable-fault-injection. */
  private async faults(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (!this.node.cfg.enableFaultInjection) throw new AdminError('QKV_NOT_FOUND', 'fault injection is not enabled on this node (--enable-fault-injection)');
    const v = (await readJson(req)).fsyncDelayMs;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > 60_000) throw new InvalidArgumentError('fsyncDelayMs must be an integer in [0, 60000]');
    this.node.faultFsyncDelayMs = v;
    this.node.log.warn({ fsyncDelayMs: v }, 'fault injection: fsync delay changed');
    return json(res, 200, { id: this.node.id, fsyncDelayMs: v });
  }

  private lag(id: string): number | undefined {
    const pr = this.node.raw.status().progress?.[id];
    return pr ? this.node.raw.status().lastIndex - pr.match : undefined;
  }

  private async waitCaughtUp(id: string, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      // Caught up, and its incarnation recorded: only a known incarnation becomes a voter.
      const lag = this.lag(id);
      if (lag !== undefined && lag <= CAUGHT_UP_MAX_LAG && this.node.recordedIncarnation(id) !== undefined) return;
      if (!this.node.isLeader()) throw this.node.notLeader();
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new TimeoutError(`${id} joined as a learner but did not catch up within ${timeoutMs} ms; promote it later with 'member promote'`);
  }

  private bestTransferee(): string | undefined {
    const st = this.node.raw.status();
    let best: { id: string; match: number } | undefined;
    for (const v of st.confState.voters) {
      if (v === this.node.id) continue;
      const match = st.progress?.[v]?.match ?? 0;
      if (!best || match > best.match) best = { id: v, match };
    }
    return best?.id;
  }

  /** Relays an admin request to the leader (once). */
  private async forward(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const hint = this.node.leaderHint();
    if (!hint?.address || req.headers['x-qkv-forwarded'] !== undefined) throw this.node.notLeader();
    const body = await readRaw(req);
    const [host, port] = splitHostPort(hint.address);
    await new Promise<void>((resolve, reject) => {
      const out = this.peerHttp.request(
        hint.id,
        { host, port, method: req.method, path: req.url, headers: { 'x-qkv-forwarded': this.node.id, ...relayedAuthorization(req), 'content-type': 'application/json' }, timeout: PROMOTE_WAIT_MS + 10_000 },
        (up) => {
          res.writeHead(up.statusCode ?? 502, { 'content-type': up.headers['content-type'] ?? 'application/json', 'x-qkv-forwarded-to': hint.id });
          up.pipe(res);
          up.on('end', resolve);
          up.on('error', reject);
        },
      );
      watchForwardedRequest(out, hint.id, reject);
      out.end(body);
    });
    return true;
  }
}

function json(res: ServerResponse, status: number, body: unknown): true {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
  return true;
}

function readRaw(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_ADMIN_BODY_BYTES) {
        req.destroy();
        reject(new InvalidArgumentError('admin request body too large'));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const raw = await readRaw(req);
  try {
    const v = JSON.parse(raw.toString('utf8') || '{}') as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw new InvalidArgumentError('request body must be a JSON object');
  }
}

function str(o: Record<string, unknown>, name: string): string {
  const v = o[name];
  if (typeof v !== 'string' || v === '') throw new InvalidArgumentError(`"${name}" must be a non-empty string`);
  return v;
}
