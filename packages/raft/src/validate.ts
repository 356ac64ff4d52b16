// The core's own check of a message from a peer, run by RawNode.step BEFORE the message touches
// any state. The transport validates shapes too, but the core does not trust its host: anything
// a correct peer cannot send is refused here with a BadMessageError instead of reaching an
// assertion deep in the log (which would stop the node) or being believed (which could break
// safety: an entry of term 999 would win every later election).
//
// Only facts that hold for EVERY correct peer are checked, so a correct cluster never sees one:
//  - the entries of an append are contiguous and follow the message's index (the leader slices
//    them out of its log), and their terms never decrease, start at or above logTerm (and 1) and
//    never exceed the message's term (a leader only holds entries of its term or earlier); only
//    index 0 has log term 0;
//  - an append or heartbeat of our current term comes from the leader we know for that term
//    (election safety: one leader per term);
//  - an append from a leader of our term or a later one agrees with every entry we know is
//    committed (leader completeness: such a leader holds all of them).
import { BadMessageError } from './errors.js';
import type { Raft } from './raft.js';
import { MessageType, type Message } from './types.js';

/** Throws BadMessageError when `m` could not have come from a correct peer. */
export function checkPeerMessage(r: Raft, m: Message): void {
  checkMessageShape(m);
  if (m.term < r.term) return; // dropped by the term rules anyway
  if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) checkLeaderClaim(r, m);
  if (m.type === MessageType.App) checkAgainstCommitted(r, m);
}

/**
 * The facts about one message that hold whatever the receiver's state: entries only on appends,
 * and in the shape a leader's log gives them; a snapshot only on a snapshot message, of a term
 * not above the message's; a candidate's last log term not above its campaign term. Exported so
 * that a transport can refuse such a frame before it reaches the core (one set of rules).
 * @throws BadMessageError naming the rule.
 */
export function checkMessageShape(m: Message): void {
  if (m.entries.length > 0 && m.type !== MessageType.App) throw new BadMessageError(m.from, 'only appends carry entries');
  if (m.snapshot !== undefined && m.type !== MessageType.Snap) throw new BadMessageError(m.from, 'only snapshot messages carry a snapshot');
  switch (m.type) {
    case MessageType.App:
      checkAppendShape(m);
      return;
    case MessageType.Snap:
      if (m.snapshot && m.snapshot.metadata.term > m.term) {
        throw new BadMessageError(m.from, `snapshot term ${m.snapshot.metadata.term} is above the message term ${m.term}`);
      }
      return;
    case MessageType.Vote:
    case MessageType.PreVote:
      if (m.logTerm > m.term) throw new BadMessageError(m.from, `candidate's last log term ${m.logTerm} is above its campaign term ${m.term}`);
      return;
    default:
      return;
  }
}

function checkAppendShape(m: Message): void {
  if (m.logTerm > m.term) throw new BadMessageError(m.from, `append: log term ${m.logTerm} is above the message term ${m.term}`);
  // Every entry has a term >= 1 (the founding entries are of term 1); only index 0 has term 0.
  // (An out-of-range index "matches" term 0, so this one would pass the log-matching check.)
  if (m.index > 0 && m.logTerm === 0) throw new BadMessageError(m.from, `append: log term 0 at index ${m.index} (only index 0 has term 0)`);
  let prevTerm = Math.max(1, m.logTerm);
  for (let k = 0; k < m.entries.length; k++) {
    const e = m.entries[k]!;
    if (e.index !== m.index + 1 + k) {
      throw new BadMessageError(m.from, `append: entry ${k} has index ${e.index}, expected ${m.index + 1 + k} (entries must follow index ${m.index} contiguously)`);
    }
    if (e.term < prevTerm || e.term > m.term) {
      throw new BadMessageError(m.from, `append: entry ${e.index} has term ${e.term}, outside [${prevTerm}, ${m.term}] (terms never decrease nor exceed the message term)`);
    }
    prevTerm = e.term;
  }
}

/** A message only a leader sends, in our current term, from someone other than that term's leader. */
function checkLeaderClaim(r: Raft, m: Message): void {
  if (m.term !== r.term) return;
  const leader = r.role === 'leader' ? r.id : r.lead;
  if (leader !== null && leader !== m.from) {
    throw new BadMessageError(m.from, `claims to lead term ${m.term}, whose leader is ${leader}`);
  }
}

/** An append that contradicts an entry this node knows is committed. */
function checkAgainstCommitted(r: Raft, m: Message): void {
  const log = r.log;
  const committed = log.committed;
  if (m.index > committed) return;
  const dummy = log.firstIndex() - 1; // entries below it are compacted: nothing left to compare
  if (m.index >= dummy && log.term(m.index) !== m.logTerm) {
    throw new BadMessageError(m.from, `append: entry ${m.index} has term ${m.logTerm}, but the committed entry there has term ${log.term(m.index)}`);
  }
  for (const e of m.entries) {
    if (e.index > committed) break;
    if (e.index > dummy && log.term(e.index) !== e.term) {
      throw new BadMessageError(m.from, `append: entry ${e.index} of term ${e.term} conflicts with the committed entry of term ${log.term(e.index)}`);
    }
  }
}
