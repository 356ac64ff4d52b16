// The founding handshake (docs/server.md, "Who a node is"): a node started with
// `--initial-cluster-state new` and an empty data directory founds a cluster only after a
// majority of the listed peers (itself included) answer that they are not part of a founded
// cluster. A founded peer decides instead, by what it knows of this member:
//   - another incarnation: this member founded before and lost its disk — refuse to start;
//   - not a member (removed for replacement, say): start empty and wait to be added;
//   - a member with no incarnation, or this one: if this node already answered "not founded" to
//     another founding node (which may have counted it towards its majority: this node is
//     committed to founding), found too, with the same entries; otherwise start empty and let the
//     leader replicate (an empty node casts no vote, so it cannot help elect a stale leader).
// An empty node waiting to be added answers "waiting": no information either way. Unreachable
// peers mean wait, and say so — never found.
import type { PeerSpec } from './config.js';
import { isIncarnation, shortIncarnation } from './identity.js';
import type { Logger } from './logger.js';
import { sleepOn } from './host-world.js';
import type { Clock } from './world.js';

/** Between two rounds of probes of the peers that have not answered. */
const PROBE_ROUND_MS = 500;
/** How often the wait for unreachable peers is logged. */
const WAITING_LOG_EVERY_MS = 5000;

/** What a node answers a founding probe (the `probe` channel of the peer transport). */
export interface FoundingAnswer {
  /**
   * `no`: the answering node is itself in the founding handshake. `yes`: it has a log or a
   * membership. `waiting`: it is empty and waits to be added (it knows nothing yet).
   */
  founded: 'no' | 'yes' | 'waiting';
  /** The asker's id is a member (voter or learner) of the answering node's membership. */
  member: boolean;
  /** The incarnation the answering node recorded or pinned for the asker, or null. */
  incarnation: string | null;
  /** The answering node's own incarnation (a founder pins those whose answers it counted). */
  self: string;
}

/** A peer whose "not founded" answer counted towards the founding majority. */
export interface FoundingPartner {
  id: string;
  incarnation: string;
}

/**
 * The decision: write the founding entries (`found`, pinning the partners whose answers counted),
 * or start empty and be replicated to or added (`join`).
 */
export type FoundingDecision =
  | { kind: 'found'; partners: FoundingPartner[] }
  /** `member`: a founded peer names this node as a member with no incarnation recorded (its first incarnation). */
  | { kind: 'join'; member: boolean };

/** A founded cluster answered that this node must not found (nor start). The process exits non-zero. */
export class FoundingRefusedError extends Error {
  readonly code = 'QKV_FOUNDING_REFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'FoundingRefusedError';
  }
}

const FOUNDED = new Set(['no', 'yes', 'waiting']);

/** Validates a probe answer off the wire; undefined when it is not one. */
export function parseFoundingAnswer(v: unknown): FoundingAnswer | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.founded !== 'string' || !FOUNDED.has(o.founded) || typeof o.member !== 'boolean') return undefined;
  if ((o.incarnation !== null && !isIncarnation(o.incarnation)) || !isIncarnation(o.self)) return undefined;
  return { founded: o.founded as FoundingAnswer['founded'], member: o.member, incarnation: o.incarnation as string | null, self: o.self };
}

/** The replace procedure, for error messages. */
export function replaceProcedure(id: string, address: string): string {
  return (
    `to replace a member that lost its data directory: \`quorumkv member remove ${id}\`; start it again (with the same ` +
    `command line it then starts empty and waits); \`quorumkv member add ${id} ${address} --learner\`; ` +
    `\`quorumkv member promote ${id}\` once caught up (docs/server.md, "Replacing a node that lost its disk")`
  );
}

/** What one answer means: found, join, count (towards the "not founded" majority) or nothing. */
type Verdict = 'found' | 'join' | 'count' | 'nothing';

function judge(self: PeerSpec, incarnation: string, committed: boolean, peer: string, a: FoundingAnswer): Verdict {
  if (a.founded === 'no') return 'count';
  // Even an empty node waiting to be added may have pinned this member when it connected.
  if (a.incarnation !== null && a.incarnation !== incarnation) {
    throw new FoundingRefusedError(
      `refusing to start: ${peer} belongs to a founded cluster in which ${self.id} is incarnation ${shortIncarnation(a.incarnation)}…, ` +
        `but this data directory is incarnation ${shortIncarnation(incarnation)}… (this member founded before and lost its data?). ` +
        replaceProcedure(self.id, self.address),
    );
  }
  if (a.founded === 'waiting') return 'nothing';
  if (!a.member) return 'join';
  return committed ? 'found' : 'join';
}

/**
 * Probes the peers until the decision is made (see the file comment). `probe` asks one peer
 * (throws when it cannot be reached); `committed` tells whether this node answered "not founded"
 * to another founding node. Throws FoundingRefusedError when a founded peer knows this member
 * under another incarnation.
 */
export async function decideFounding(opts: {
  self: PeerSpec;
  incarnation: string;
  peers: PeerSpec[];
  probe: (peer: PeerSpec) => Promise<unknown>;
  committed: () => boolean;
  log: Logger;
  isStopped: () => boolean;
  /** Time and the wait between probe rounds (host-world.ts). */
  clock: Clock;
}): Promise<FoundingDecision> {
  const clock = opts.clock;
  const { self, incarnation, log } = opts;
  const majority = Math.floor(opts.peers.length / 2) + 1;
  const unfounded = new Map<string, string>([[self.id, incarnation]]);
  const waiting = new Map<string, string>(opts.peers.filter((p) => p.id !== self.id).map((p) => [p.id, 'not asked yet']));
  let lastLogMs = clock.nowMs();
  while (unfounded.size < majority) {
    if (opts.isStopped()) throw new FoundingRefusedError('stopped before the founding handshake finished');
    const answers = await Promise.all(opts.peers.filter((p) => waiting.has(p.id)).map((peer) => askOne(peer, opts.probe)));
    for (const a of answers) {
      if (typeof a.answer === 'string') {
        waiting.set(a.peer, a.answer);
        continue;
      }
      const verdict = judge(self, incarnation, opts.committed(), a.peer, a.answer);
      if (verdict === 'nothing') {
        waiting.set(a.peer, 'empty, waiting to be added');
        continue;
      }
      waiting.delete(a.peer);
      if (verdict === 'count') {
        unfounded.set(a.peer, a.answer.self);
        continue;
      }
      log.warn(
        { peer: a.peer, member: a.answer.member, decision: verdict },
        verdict === 'found'
          ? `${a.peer} founded the cluster while this node had answered another founding node: founding too`
          : `${a.peer} belongs to a founded cluster (${a.answer.member ? 'this node is a member with no incarnation recorded' : 'this node is not a member'}): ` +
              `not founding; starting empty to be ${a.answer.member ? 'replicated to' : 'added with member add'}`,
      );
      return verdict === 'found' ? { kind: 'found', partners: [] } : { kind: 'join', member: a.answer.member };
    }
    if (unfounded.size >= majority) break;
    if (clock.nowMs() - lastLogMs >= WAITING_LOG_EVERY_MS) {
      lastLogMs = clock.nowMs();
      log.warn(
        { notFounded: [...unfounded.keys()], waitingFor: Object.fromEntries(waiting), majority },
        'founding: waiting for a majority of the listed peers to answer that they are not founded (never founding without one)',
      );
    }
    await sleepOn(clock, PROBE_ROUND_MS);
  }
  log.info({ notFounded: [...unfounded.keys()], majority }, 'founding: a majority of the listed peers is not founded; founding the cluster');
  return { kind: 'found', partners: [...unfounded].filter(([id]) => id !== self.id).map(([id, inc]) => ({ id, incarnation: inc })) };
}

/** One probe: the peer's answer, or why there is none. */
async function askOne(peer: PeerSpec, probe: (peer: PeerSpec) => Promise<unknown>): Promise<{ peer: string; answer: FoundingAnswer | string }> {
  try {
    const answer = parseFoundingAnswer(await probe(peer));
    return { peer: peer.id, answer: answer ?? 'malformed answer' };
  } catch (e) {
    return { peer: peer.id, answer: (e as Error).message };
  }
}
