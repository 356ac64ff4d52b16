// Records this node's `--zone` in the replicated membership, so that every node (its /v1/status,
// the client's status, `qkv_zone_quorum_at_risk`) can see the whole failure-domain layout. The
// founding members' membership comes from `--peers`, which carries no zones; a member added with
// `member add --zone` has its zone from the start and this does nothing for it.
//
// While the membership's record of this node lacks its zone (or has another one), it asks the
// leader (`PUT /v1/admin/members/{id}/zone`, or the core directly when it leads) every
// ZONE_RECORD_RETRY_MS, at most ZONE_RECORD_ATTEMPTS_MAX times. In maintenance mode it waits
// (without counting attempts): the record is a membership change, which maintenance freezes.
import { adminAuthorization } from '@quorumkv/transport';
import type { Logger } from './logger.js';
import type { PeerHttp } from './peer-http.js';
import { splitHostPort } from './http-api.js';
import { ZONE_RE, zoneRecordChange } from './membership.js';
import type { QuorumKvNode } from './node.js';

/** Pause between attempts (no leader yet, a conf change in progress, the leader busy). */
export const ZONE_RECORD_RETRY_MS = 2_000;
/** Attempts before giving up (with a warning): about five minutes. */
export const ZONE_RECORD_ATTEMPTS_MAX = 150;
/** Deadline of one attempt. */
const ZONE_RECORD_TIMEOUT_MS = 5_000;

type ZoneNode = Pick<QuorumKvNode, 'cfg' | 'id' | 'memberById' | 'membership' | 'leaderHint' | 'isLeader' | 'changeMembership' | 'opsSwitches'>;

/** Starts recording `zone` for `node` in the background; `stop()` ends it (at shutdown). */
export function recordOwnZone(node: ZoneNode, zone: string | undefined, log: Logger, peerHttp: PeerHttp): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  if (!zone) return { stop: () => undefined };
  if (!ZONE_RE.test(zone)) {
    log.warn({ zone }, 'the zone label cannot be recorded in the membership (letters, digits, ".", "_", "-"; at most 64)');
    return { stop: () => undefined };
  }
  const attempt = async (n: number): Promise<void> => {
    if (stopped) return;
    if (node.memberById(node.id)?.zone === zone) {
      log.info({ zone }, 'zone recorded in the membership');
      return;
    }
    if (n >= ZONE_RECORD_ATTEMPTS_MAX) {
      log.warn({ zone, attempts: n }, 'gave up recording the zone in the membership (record it with PUT /v1/admin/members/{id}/zone)');
      return;
    }
    const frozen = node.opsSwitches.maintenance;
    if (!frozen) await askLeader(node, zone, peerHttp).catch(() => undefined); // retried below until the record shows it
    if (!stopped) timer = setTimeout(() => void attempt(frozen ? n : n + 1), ZONE_RECORD_RETRY_MS);
  };
  timer = setTimeout(() => void attempt(0), 0);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** One request to record the zone: through the core when this node leads, else over HTTP. */
async function askLeader(node: ZoneNode, zone: string, peerHttp: PeerHttp): Promise<void> {
  if (node.memberById(node.id) === undefined) return; // not a member (yet)
  if (node.isLeader()) {
    const cc = zoneRecordChange(node.membership(), node.id, zone);
    if (cc) await node.changeMembership(cc, { deadlineMs: Date.now() + ZONE_RECORD_TIMEOUT_MS });
    return;
  }
  const leader = node.leaderHint();
  if (!leader?.address) return;
  const [host, port] = splitHostPort(leader.address);
  const body = JSON.stringify({ zone });
  await new Promise<void>((resolve, reject) => {
    const req = peerHttp.request(
      leader.id,
      { host, port, method: 'PUT', path: `/v1/admin/members/${encodeURIComponent(node.id)}/zone`, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: adminAuthorization(node.cfg.clusterSecret) }, timeout: ZONE_RECORD_TIMEOUT_MS },
      (res) => {
        res.resume();
        res.once('end', resolve);
        res.once('error', reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error('zone record request timed out')));
    req.once('error', reject);
    req.end(body);
  });
}
