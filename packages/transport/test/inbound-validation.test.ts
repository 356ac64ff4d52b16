// Frames a hostile or broken peer can send after an authenticated handshake: malformed,
// oversized, out of authority (wrong from/to), or well-formed but impossible (entries not
// contiguous, terms above the message's, too many entries). Each closes that one connection with
// a reason, delivers none of the frame's messages, and the node keeps serving. A handler that
// throws (the core's BadMessageError) closes the connection too, never the process.
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { BadMessageError, type Message, type MessageType } from '@quorumkv/raft';
import { mulberry32 } from '@quorumkv/testkit';
import { checkMessage, CloseCode, encodeFrame, FrameError, HELLO_HEADER, MAX_CONTEXT_BYTES, MAX_CLOSE_REASON_BYTES, messageBounds } from '../src/index.js';
import { createHelloHeader } from '../src/handshake.js';
import { cluster, entries, Host, INCARNATION, msg, SECRET, testLimits, waitFor } from './helpers.js';

const SEED = Number(process.env.QKV_SEED ?? 1414);
const REPLAY = `replay: QKV_SEED=${SEED} pnpm exec vitest run --project unit packages/transport/test/inbound-validation.test.ts`;
/** Small frames, so "too many entries" and "oversized" are cheap to build. */
const MAX_FRAME_BYTES = 8192;
/** Few messages per frame, so "too many messages" fits a small frame. */
const MAX_MESSAGES_PER_FRAME = 8;
const limits = { ...testLimits, maxFrameBytes: MAX_FRAME_BYTES, maxQueuedMessages: MAX_MESSAGES_PER_FRAME };
const maxEntries = messageBounds(MAX_FRAME_BYTES).maxEntriesPerMessage;
/** Frames sent; the first MUTATIONS.length rounds try each mutation once, the rest draw from the seed. */
const ROUNDS = 40;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Connects to n2's /raft as n1 (authenticated), sends `frame`, resolves with the close. */
async function sendAsN1(port: number, frame: Uint8Array): Promise<{ code: number; reason: string }> {
  const hello = createHelloHeader({ from: 'n1', to: 'n2', channel: 'raft', clusterSecret: SECRET, nowMs: Date.now(), incarnation: INCARNATION });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/raft`, { headers: { [HELLO_HEADER]: hello }, maxPayload: 1 << 20 });
  ws.on('error', () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve) => ws.once('open', () => resolve()));
  ws.send(frame);
  return closed;
}

/** A valid append from n1 to n2: term 5, entries index+1.. of terms 4, 5. */
function goodAppend(index: number): Message {
  const ents = entries(index + 1, 2, 8);
  ents[0]!.term = 4;
  ents[1]!.term = 5;
  return msg({ from: 'n1', to: 'n2', type: 10 as MessageType, term: 5, logTerm: 4, index, commit: index, entries: ents });
}

type Mutation = { name: string; apply: (m: Message, rand: () => number) => Message | Uint8Array };
const int = (rand: () => number, n: number): number => Math.floor(rand() * n);

/** Ways to make one message of a frame impossible (or the frame itself unreadable). */
const MUTATIONS: Mutation[] = [
  { name: 'entry index not following the message index', apply: (m, r) => ({ ...m, entries: m.entries.map((e, k) => (k === 0 ? { ...e, index: 1 + int(r, m.index) } : e)) }) },
  { name: 'gap between entries', apply: (m, r) => ({ ...m, entries: m.entries.map((e, k) => (k === 1 ? { ...e, index: e.index + 1 + int(r, 5) } : e)) }) },
  { name: 'entry term above the message term', apply: (m, r) => ({ ...m, entries: m.entries.map((e, k) => (k === 1 ? { ...e, term: m.term + 1 + int(r, 999) } : e)) }) },
  { name: 'entry terms decreasing', apply: (m) => ({ ...m, entries: m.entries.map((e, k) => (k === 1 ? { ...e, term: 3 } : e)) }) },
  { name: 'log term above the message term', apply: (m, r) => ({ ...m, logTerm: m.term + 1 + int(r, 9), entries: [] }) },
  { name: 'entries on a heartbeat', apply: (m) => ({ ...m, type: 17 as MessageType }) },
  { name: 'wrong from', apply: (m, r) => ({ ...m, from: ['n3', 'n2', 'x'][int(r, 3)]! }) },
  { name: 'wrong to', apply: (m, r) => ({ ...m, to: ['n1', 'n3', 'y'][int(r, 3)]! }) },
  { name: 'context too large', apply: (m, r) => ({ ...m, type: 17 as MessageType, entries: [], context: new Uint8Array(MAX_CONTEXT_BYTES + 1 + int(r, 100)) }) },
  { name: 'snapshot on an append', apply: (m) => ({ ...m, snapshot: { metadata: { index: 1, term: 1, confState: { voters: ['n1'], learners: [] } }, data: new Uint8Array(0) } }) },
  { name: 'snapshot term above the message term', apply: (m) => ({ ...m, type: 16 as MessageType, entries: [], snapshot: { metadata: { index: 1, term: m.term + 1, confState: { voters: ['n1'], learners: [] } }, data: new Uint8Array(0) } }) },
  { name: 'too many entries', apply: (m) => ({ ...m, entries: Array.from({ length: maxEntries + 1 }, (_, k) => ({ term: 5, index: m.index + 1 + k, type: 0 as const, data: new Uint8Array(0) })) }) },
  { name: 'too many messages in one frame', apply: (m) => encodeFrame(Array.from({ length: MAX_MESSAGES_PER_FRAME + 1 }, () => ({ ...m, entries: [] }))) },
  { name: 'oversized frame', apply: (m) => encodeFrame([{ ...m, entries: entries(m.index + 1, 1, MAX_FRAME_BYTES).map((e) => ({ ...e, term: 5 })) }]) },
  { name: 'garbage', apply: (_m, r) => Uint8Array.from({ length: 1 + int(r, 64) }, () => int(r, 256)) },
];

describe('inbound frame validation', () => {
  it('checkMessage accepts what the core sends and names the rule a bad message breaks', () => {
    const bounds = messageBounds(MAX_FRAME_BYTES);
    expect(() => checkMessage(goodAppend(10), 0, bounds)).not.toThrow();
    expect(() => checkMessage(msg({ from: 'n1', to: 'n2', type: 10 as MessageType, term: 2, index: 5, entries: [{ term: 999, index: 1, type: 0, data: new Uint8Array(0) }] }), 3, bounds)).toThrow(
      /message 3: append: entry 0 has index 1, expected 6/,
    );
  });

  it(`closes the connection on each seeded malformed, oversized or out-of-authority frame and keeps serving (seed ${SEED})`, async () => {
    const [n2] = await cluster(['n2'], { limits }, { n1: '127.0.0.1:1', n3: '127.0.0.1:1' });
    cleanups.push(() => n2!.stop());
    const rand = mulberry32(SEED);
    const seen = new Set<string>();
    for (let round = 0; round < ROUNDS; round++) {
      const mutation = round < MUTATIONS.length ? MUTATIONS[round]! : MUTATIONS[int(rand, MUTATIONS.length)]!;
      seen.add(mutation.name);
      const count = 1 + int(rand, 3);
      const badAt = int(rand, count);
      const messages = Array.from({ length: count }, (_, k) => goodAppend(10 + k * 10 + int(rand, 5)));
      const mutated = mutation.apply(messages[badAt]!, rand);
      const frame = mutated instanceof Uint8Array ? mutated : encodeFrame(messages.map((m, k) => (k === badAt ? mutated : m)));
      const { code, reason } = await sendAsN1(n2!.port, frame);
      const what = `round ${round}: ${mutation.name} (message ${badAt} of ${count}); ${REPLAY}`;
      expect([CloseCode.BadInput, CloseCode.TooBig], what).toContain(code);
      expect(Buffer.byteLength(reason), what).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
      // The whole frame is refused: not even the valid messages before the bad one were delivered.
      expect(n2!.received, what).toHaveLength(0);
    }
    expect(seen.size).toBe(MUTATIONS.length);
    // Still serving: a valid frame is delivered.
    const hello = createHelloHeader({ from: 'n1', to: 'n2', channel: 'raft', clusterSecret: SECRET, nowMs: Date.now(), incarnation: INCARNATION });
    const ws = new WebSocket(`ws://127.0.0.1:${n2!.port}/raft`, { headers: { [HELLO_HEADER]: hello } });
    ws.on('error', () => {});
    await new Promise<void>((resolve) => ws.once('open', () => resolve()));
    ws.send(encodeFrame([goodAppend(77)]));
    await waitFor(() => n2!.received.some((m) => m.index === 77), `n2 still serving; ${REPLAY}`);
    ws.terminate();
    expect(n2!.transport!.stats().badFrames).toBeGreaterThanOrEqual(ROUNDS);
  });

  it('closes the connection (reason cut to 123 bytes) when the handler throws, and never the process', async () => {
    const n2 = new Host('n2');
    cleanups.push(() => n2.stop());
    await n2.listen();
    let calls = 0;
    n2.start(
      { n1: '127.0.0.1:1' },
      {
        limits,
        onMessage: (m) => {
          calls++;
          if (m.index === 13) throw new BadMessageError(m.from, `entry conflicts with a committed entry ${'é'.repeat(200)}`);
          n2.received.push(m);
        },
      },
    );
    const { code, reason } = await sendAsN1(n2.port, encodeFrame([goodAppend(13), goodAppend(14)]));
    expect(code).toBe(CloseCode.BadInput);
    expect(reason).toMatch(/^bad message from n1: entry conflicts with a committed entry/);
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
    // The message after the refused one in the same frame was not delivered.
    expect(calls).toBe(1);
    const line = n2.logger.lines.find((l) => l.msg.includes('host refused a message'));
    expect(line?.fields).toMatchObject({ peer: 'n1', code: 'QKV_BAD_MESSAGE' });
    // The next connection is served.
    const hello = createHelloHeader({ from: 'n1', to: 'n2', channel: 'raft', clusterSecret: SECRET, nowMs: Date.now(), incarnation: INCARNATION });
    const ws = new WebSocket(`ws://127.0.0.1:${n2.port}/raft`, { headers: { [HELLO_HEADER]: hello } });
    ws.on('error', () => {});
    await new Promise<void>((resolve) => ws.once('open', () => resolve()));
    ws.send(encodeFrame([goodAppend(20)]));
    await waitFor(() => n2.received.some((m) => m.index === 20), 'served after the refused message');
    ws.terminate();
  });

  it('FrameError is what checkMessage throws', () => {
    expect(() => checkMessage(msg({ from: 'a', to: 'b', type: 17 as MessageType, entries: entries(1, 1, 1) }), 0, messageBounds(MAX_FRAME_BYTES))).toThrow(FrameError);
  });
});
