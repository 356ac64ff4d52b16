// The hostile-peer nemesis: a process that holds the cluster secret sends malformed, oversized
// and out-of-authority frames to the nodes (the plan is in the schedule: nemesis.ts
// `hostilePeerFault`), one every `intervalMs`, at most HOSTILE_FRAMES_PER_EVENT_MAX per event.
// This file builds each frame from the cluster's current state (with forger.ts's message
// builders) and runs the campaign; forger.ts delivers them.
//
// In scope: frames no correct member could send. A well-formed forgery by a secret holder (a vote
// request or an append a real member could have sent) is out of scope until per-node certificates:
// the shared secret cannot tell members apart (README § Faults).

import type { Entry, MessageType as MessageTypeValue } from '@quorumkv/raft';
import { EntryType, MessageType } from '@quorumkv/raft';
import { defaultLimits, encodeFrame } from '@quorumkv/transport';
import { Packr } from 'msgpackr';
import type { ForgeOutcome, ForgerOptions } from './forger.js';
import { forgedAppendResponse, forgedMessage, forgedTimeoutNow } from './forger.js';
import type { ClusterView, Fault, HostileFrameKind } from './nemesis.js';
import { resolveRef } from './nemesis.js';
import type { Rng } from './random.js';
import { createRng } from './random.js';

/** The hostile-peer fault of a schedule. */
export type HostilePeerFault = Extract<Fault, { kind: 'hostile-peer' }>;

/** What a frame is built from: the attacked node, who the hello claims to be, the cluster's state. */
export interface FrameContext {
  target: string;
  /** The member the hello claims to be (never the target). */
  claimFrom: string;
  /** A third member (the `from` a `wrong-from` message claims). */
  otherMember: string;
  /** The target's current term and commit index (from its status). */
  term: number;
  commitIndex: number;
  rng: Rng;
}

/** One built frame and a short description of it (for the frame log). */
export interface BuiltFrame {
  bytes: Uint8Array;
  what: string;
}

/** Bytes of a `garbage` frame: at most this many. */
const GARBAGE_BYTES_MAX = 512;
/** Distance beyond the commit index an `append-resp-beyond-last` acknowledges. */
const BEYOND_LAST_INDEXES = 1_000_000;

// The same msgpack settings as the transport's codec (plain `bin` for bytes, no records).
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false, structuredClone: false });

function randomBytes(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(0, 255);
  return out;
}

function entry(term: number, index: number, rng: Rng): Entry {
  return { term, index, type: EntryType.Normal, data: randomBytes(rng, 8) };
}

/** A message tuple as the codec lays it out, with `patch` applied (for codec-valid nonsense). */
function rawTuple(type: MessageTypeValue, c: FrameContext, patch: Record<number, unknown>): unknown[] {
  const t: unknown[] = [type, c.target, c.claimFrom, c.term, 0, 0, 0, false, 0, [], null, null, null];
  for (const [i, v] of Object.entries(patch)) t[Number(i)] = v;
  return t;
}

/**
 * Frames that break the codec's or the core's rules of shape: a short tuple, an unknown frame
 * kind, a negative term, entries not in fours, a gap between the message's index and its first
 * entry, an entry whose term is above its message's.
 */
function malformed(c: FrameContext): BuiltFrame {
  const app = MessageType.App;
  const variants: (() => BuiltFrame)[] = [
    () => ({ bytes: packr.pack([1, [[app, c.target, c.claimFrom]]]), what: 'message tuple of 3 elements' }),
    () => ({ bytes: packr.pack([7, []]), what: 'unknown frame kind 7' }),
    () => ({ bytes: packr.pack([1, [rawTuple(MessageType.Heartbeat, c, { 3: -1 })]]), what: 'negative term' }),
    () => ({ bytes: packr.pack([1, [rawTuple(app, c, { 9: [c.term, 1, 0] })]]), what: 'entries not in fours' }),
    () => {
      const index = c.commitIndex;
      const m = forgedMessage({ type: app, to: c.target, from: c.claimFrom, term: c.term, index, logTerm: c.term, entries: [entry(c.term, index + 5, c.rng)] });
      return { bytes: encodeFrame([m]), what: `append after index ${index} whose entry is ${index + 5}` };
    },
    () => {
      const index = c.commitIndex;
      const m = forgedMessage({ type: app, to: c.target, from: c.claimFrom, term: c.term, index, logTerm: c.term, entries: [entry(c.term + 5, index + 1, c.rng)] });
      return { bytes: encodeFrame([m]), what: `entry term ${c.term + 5} above the message's term ${c.term}` };
    },
  ];
  return c.rng.pick(variants)();
}

/** Builds one frame of `kind` for the context. */
export function buildHostileFrame(kind: HostileFrameKind, c: FrameContext): BuiltFrame {
  switch (kind) {
    case 'garbage':
      return { bytes: randomBytes(c.rng, c.rng.int(1, GARBAGE_BYTES_MAX)), what: 'random bytes' };
    case 'malformed':
      return malformed(c);
    case 'oversized':
      // One byte over the peer frame limit every node runs with.
      return { bytes: new Uint8Array(defaultLimits.maxFrameBytes + 1), what: `${defaultLimits.maxFrameBytes + 1} bytes (frame limit + 1)` };
    case 'wrong-from': {
      const m = forgedMessage({ type: MessageType.Heartbeat, to: c.target, from: c.otherMember, term: c.term, commit: c.commitIndex });
      return { bytes: encodeFrame([m]), what: `heartbeat claiming from ${c.otherMember} on ${c.claimFrom}'s connection` };
    }
    case 'timeout-now': {
      const m = forgedTimeoutNow({ to: c.target, from: c.claimFrom, term: c.term });
      return { bytes: encodeFrame([m]), what: `TimeoutNow from non-leader ${c.claimFrom}, term ${c.term}` };
    }
    case 'conflicting-append': {
      const m = forgedMessage({ type: MessageType.App, to: c.target, from: c.claimFrom, term: c.term, index: 0, logTerm: 0, entries: [entry(c.term, 1, c.rng)], commit: 1 });
      return { bytes: encodeFrame([m]), what: `append of entry 1 (term ${c.term}) over committed ${c.commitIndex}` };
    }
    case 'append-resp-beyond-last': {
      const index = c.commitIndex + BEYOND_LAST_INDEXES;
      const m = forgedAppendResponse({ to: c.target, from: c.claimFrom, term: c.term, index });
      return { bytes: encodeFrame([m]), what: `append response acknowledging index ${index}` };
    }
  }
}

/** One sent (or skipped) frame, as logged in `hostile-frames.jsonl`. */
export interface HostileFrameRecord {
  event: string;
  /** Wall-clock ms (Date.now) when it was sent. */
  wallMs: number;
  kind: HostileFrameKind;
  target: string;
  claimFrom: string | null;
  what: string;
  outcome: ForgeOutcome | { result: 'skipped'; reason: string };
}

/** What the campaign needs from the cluster. */
export interface HostileEnv {
  view(): Promise<ClusterView>;
  /** The target's term and commit index, or undefined when it does not answer. */
  state(node: string): Promise<{ term: number; commitIndex: number } | undefined>;
  /** Port, secret and incarnation to reach `node`'s /raft as `from`. */
  target(node: string, from: string): ForgerOptions;
  send(target: ForgerOptions, frame: Uint8Array): Promise<ForgeOutcome>;
  record(r: HostileFrameRecord): void;
  sleep(ms: number): Promise<void>;
}

/** A running campaign: `stop()` ends it after the frame in flight and resolves with every record. */
export interface HostileCampaign {
  stop(): Promise<HostileFrameRecord[]>;
}

/** Starts sending `fault`'s frames, one every `intervalMs`, until the plan ends or `stop()`. */
export function startHostilePeer(eventId: string, fault: HostilePeerFault, env: HostileEnv): HostileCampaign {
  let stopped = false;
  const records: HostileFrameRecord[] = [];
  const rng = createRng(fault.seed);
  const done = (async () => {
    for (const planned of fault.frames) {
      if (stopped) break;
      const r = await sendOne(eventId, planned.kind, planned.target, rng, env);
      records.push(r);
      env.record(r);
      if (!stopped) await env.sleep(fault.intervalMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
      return records;
    },
  };
}

async function sendOne(event: string, kind: HostileFrameKind, ref: string, rng: Rng, env: HostileEnv): Promise<HostileFrameRecord> {
  const wallMs = Date.now();
  const view = await env.view();
  const target = resolveRef(ref, view).node;
  const skipped = (reason: string): HostileFrameRecord => ({ event, wallMs, kind, target, claimFrom: null, what: '', outcome: { result: 'skipped', reason } });
  const state = await env.state(target);
  if (state === undefined) return skipped('the target does not answer its status');
  // Claim to be a member other than the target; for TimeoutNow, one that is not the leader.
  const others = view.nodes.filter((n) => n !== target && (kind !== 'timeout-now' || n !== view.leader));
  if (others.length === 0) return skipped('no member to claim to be');
  const claimFrom = rng.pick(others);
  const otherMember = rng.pick(view.nodes.filter((n) => n !== claimFrom));
  const built = buildHostileFrame(kind, { target, claimFrom, otherMember, term: state.term, commitIndex: state.commitIndex, rng });
  const outcome = await env.send(env.target(target, claimFrom), built.bytes);
  return { event, wallMs, kind, target, claimFrom, what: built.what, outcome };
}

/** One line for a fault label: how many frames went out and what the nodes did with them. */
export function describeCampaign(records: readonly HostileFrameRecord[]): string {
  const by = new Map<string, number>();
  for (const r of records) by.set(r.outcome.result, (by.get(r.outcome.result) ?? 0) + 1);
  const parts = [...by.entries()].sort().map(([k, n]) => `${n} ${k}`);
  return `${records.length} hostile frames: ${parts.join(', ') || 'none'}`;
}
