// The founding handshake (docs/server.md, "Who a node is"): a node started with
// `--initial-cluster-state new` and an empty data directory founds a cluster only after a
// majority of the listed peers (itself included) answer that they are not part of a founded
// cluster. A peer of a founded cluster decides instead: it may know this member under another
// incarnation (this node lost its disk: refuse to start), not know it at all (refuse), or know it
// without an incarnation yet (start empty and let the leader replicate). Unreachable peers mean
// wait, and say so — never found.
import type { PeerSpec } from './config.js';
import { isIncarnation, shortIncarnation } from './identity.js';
import type { Logger } from './logger.js';

/** Between two rounds of probes of the peers that have not answered. */
const PROBE_ROUND_MS = 500;
/** How often the wait for unreachable peers is logged. */
const WAITING_LOG_EVERY_MS = 5000;

/** What a node answers a founding probe (the `probe` channel of the peer transport). */
export interface FoundingAnswer {
  /** The answering node belongs to a founded cluster (it has a log or a membership). */
  founded: boolean;
  /** The asker's id is a member (voter or learner) of the answering node's membership. */
  member: boolean;
  /** The incarnation the answering node recorded or pinned for the asker, or null. */
  incarnation: string | null;
}

/** The decision: write the founding entries (`found`), or start empty and be replicated to (`join`). */
export type FoundingDecision = 'found' | 'join';

/** A founded cluster answered that this node must not found (nor start). The process exits non-zero. */
export class FoundingRefusedError extends Error {
  readonly code = 'QKV_FOUNDING_REFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'FoundingRefusedError';
  }
}

/** Validates a probe answer off the wire; undefined when it is not one. */
export function parseFoundingAnswer(v: unknown): FoundingAnswer | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.founded !== 'boolean' || typeof o.member !== 'boolean') return undefined;
  if (o.incarnation !== null && !isIncarnation(o.incarnation)) return undefined;
  return { founded: o.founded, member: o.member, incarnation: o.incarnation as string | null };
}

/** The replace procedure, for error messages. */
export function replaceProcedure(id: string, address: string): string {
  return (
    `to replace a member that lost its data directory: \`quorumkv member remove ${id}\`; start this node ` +
    `WITHOUT --initial-cluster-state new (it then waits to be added); \`quorumkv member add ${id} ${address} --learner\`; ` +
    `\`quorumkv member promote ${id}\` once caught up (docs/server.md, "Replacing a node that lost its disk")`
  );
}

/** What one answer means for this node: a decision, or null (counts towards the unfounded majority). */
function judge(self: PeerSpec, incarnation: string, peer: string, a: FoundingAnswer): FoundingDecision | null {
  if (!a.founded) return null;
  if (a.incarnation !== null && a.incarnation !== incarnation) {
    throw new FoundingRefusedError(
      `refusing to start: ${peer} belongs to a founded cluster in which ${self.id} is incarnation ${shortIncarnation(a.incarnation)}…, ` +
        `but this data directory is incarnation ${shortIncarnation(incarnation)}… (the member already founded and lost its data?). ` +
        replaceProcedure(self.id, self.address),
    );
  }
  if (!a.member) {
    throw new FoundingRefusedError(
      `refusing to start: ${peer} belongs to a founded cluster in which ${self.id} is not a member. Start this node without ` +
        `--initial-cluster-state new and add it with \`quorumkv member add ${self.id} ${self.address}\` (docs/server.md)`,
    );
  }
  return 'join';
}

/**
 * Probes the peers until the decision is made. `probe` asks one peer (throws when it cannot be
 * reached). Resolves `found` once a majority of `peers` (self included) answered "not founded";
 * `join` when a founded peer knows this member with no or this incarnation. Throws
 * FoundingRefusedError when a founded peer knows it under another incarnation, or not at all.
 */
export async function decideFounding(opts: {
  self: PeerSpec;
  incarnation: string;
  peers: PeerSpec[];
  probe: (peerId: string) => Promise<unknown>;
  log: Logger;
  isStopped: () => boolean;
}): Promise<FoundingDecision> {
  const { self, incarnation, log } = opts;
  const majority = Math.floor(opts.peers.length / 2) + 1;
  const unfounded = new Set([self.id]);
  const waiting = new Map<string, string>(opts.peers.filter((p) => p.id !== self.id).map((p) => [p.id, 'not asked yet']));
  let lastLogMs = Date.now();
  while (unfounded.size < majority) {
    if (opts.isStopped()) throw new FoundingRefusedError('stopped before the founding handshake finished');
    const answers = await Promise.all([...waiting.keys()].map((peer) => askOne(peer, opts.probe)));
    for (const a of answers) {
      if (typeof a.answer === 'string') {
        waiting.set(a.peer, a.answer);
        continue;
      }
      waiting.delete(a.peer);
      if (judge(self, incarnation, a.peer, a.answer) === null) {
        unfounded.add(a.peer);
        continue;
      }
      log.warn({ peer: a.peer }, `${a.peer} belongs to a founded cluster that lists this node with no incarnation yet: not founding; starting empty to be replicated to`);
      return 'join';
    }
    if (unfounded.size >= majority) break;
    if (Date.now() - lastLogMs >= WAITING_LOG_EVERY_MS) {
      lastLogMs = Date.now();
      log.warn(
        { notFounded: [...unfounded], waitingFor: Object.fromEntries(waiting), majority },
        'founding: waiting for a majority of the listed peers to answer that they are not founded (never founding without one)',
      );
    }
    await new Promise((r) => setTimeout(r, PROBE_ROUND_MS));
  }
  log.info({ notFounded: [...unfounded], majority }, 'founding: a majority of the listed peers is not founded; founding the cluster');
  return 'found';
}

/** One probe: the peer's answer, or why there is none. */
async function askOne(peer: string, probe: (peerId: string) => Promise<unknown>): Promise<{ peer: string; answer: FoundingAnswer | string }> {
  try {
    const answer = parseFoundingAnswer(await probe(peer));
    return { peer, answer: answer ?? 'malformed answer' };
  } catch (e) {
    return { peer, answer: (e as Error).message };
  }
}
