// Peer frames after the handshake: what an authenticated `/raft` connection from n2 delivers to
// n1. Each input is one binary frame, decoded and checked exactly as the transport's inbound
// connection does (decodeFrame, addressing, checkMessage), and every message that passes is
// stepped into a real consensus core (RawNode of a three-voter cluster) whose Ready is then
// persisted to memory and advanced, as the host does. Invariants: decoding raises only
// FrameError; the core refuses a message no correct peer sends only with BadMessageError (the
// transport then closes the connection); nothing else is thrown; the core keeps ticking and
// answering afterwards.
import fc from 'fast-check';
import { BadMessageError, MemoryStorage, RawNode, defaultConfig, type Entry, type Message, type Snapshot } from '@quorumkv/raft';
import { FrameError, checkMessage, decodeFrame, defaultLimits, encodeFrame, messageBounds } from '@quorumkv/transport';
import { FuzzViolation, type FuzzTarget, type Outcome, type Surface } from '../runner.js';
import { showBytes, withMutation } from '../mutate.js';

const SELF = 'n1';
const PEER = 'n2';
const VOTERS = ['n1', 'n2', 'n3'];
/** The core is rebuilt after this many log entries, so a long run's memory stays bounded. */
const CORE_LOG_ENTRIES_MAX = 50_000;
const WIRE_TYPES = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22] as const;

const small = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 12 }) }, { weight: 1, arbitrary: fc.constantFrom(2 ** 31, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER) });
const bytes = fc.uint8Array({ maxLength: 48 });

const entries = fc.tuple(small, small, fc.array(fc.record({ type: fc.constantFrom(0, 0, 0, 1), data: bytes }), { maxLength: 4 })).map(([start, term, es]): Entry[] =>
  es.map((e, k) => ({ index: start + 1 + k, term: term + (k > 1 ? 1 : 0), type: e.type as Entry['type'], data: e.data })),
);

const snapshot = fc.record({ index: small, term: small, voters: fc.constantFrom<string[]>(VOTERS, ['n1'], ['n2', 'n3'], []), learners: fc.constantFrom<string[]>([], ['n4']), data: bytes }).map(
  (s): Snapshot => ({ metadata: { index: s.index, term: s.term, confState: { voters: s.voters, learners: s.learners } }, data: s.data }),
);

const message: fc.Arbitrary<Message> = fc
  .record({
    type: fc.constantFrom(...WIRE_TYPES),
    to: fc.constantFrom(SELF, SELF, SELF, 'n3'),
    from: fc.constantFrom(PEER, PEER, PEER, 'n3', 'n1'),
    term: small,
    logTerm: small,
    index: small,
    commit: small,
    reject: fc.boolean(),
    rejectHint: small,
    rejectHintTerm: fc.option(small, { nil: undefined }),
    entries: fc.oneof({ weight: 3, arbitrary: fc.constant([] as Entry[]) }, { weight: 2, arbitrary: entries }),
    snapshot: fc.option(snapshot, { nil: undefined, freq: 4 }),
    context: fc.option(bytes, { nil: undefined, freq: 3 }),
  })
  .map((m) => {
    const out: Message = { ...m, type: m.type as Message['type'] };
    if (out.rejectHintTerm === undefined) delete out.rejectHintTerm;
    if (out.snapshot === undefined) delete out.snapshot;
    if (out.context === undefined) delete out.context;
    return out;
  });

const frame = fc.array(message, { minLength: 0, maxLength: 4 }).map((ms) => encodeFrame(ms));

/** Frames a correct n2 would send to n1, half of them raw-mutated (also used by the socket surface). */
export const peerFrames = (): fc.Arbitrary<Uint8Array> => withMutation(frame);

export const peerFrameSurface: Surface<Uint8Array> = {
  name: 'peer-frame',
  description: 'peer frames after the handshake, decoded and stepped into a real consensus core',
  arbitrary: peerFrames,
  open: async () => openFrameTarget(),
  show: showBytes,
};

interface Core {
  node: RawNode;
  storage: MemoryStorage;
}

/** n1 of a founded three-voter cluster, its bootstrap applied. */
function newCore(): Core {
  const storage = new MemoryStorage();
  let s = 1;
  const random = { int: (n: number) => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % n) };
  const node = new RawNode({ ...defaultConfig, id: SELF, storage, random });
  node.bootstrap(VOTERS.map((id) => ({ id })));
  drain({ node, storage });
  return { node, storage };
}

/** The host's part of one turn: persist, install, advance (committed entries are not applied). */
function drain(c: Core): void {
  for (let turns = 0; c.node.hasReady() && turns < 100; turns++) {
    const rd = c.node.ready();
    if (rd.snapshot) c.storage.applySnapshot(rd.snapshot);
    c.storage.append(rd.entries);
    if (rd.hardState) c.storage.setHardState(rd.hardState);
    c.node.advance(rd);
  }
}

function openFrameTarget(): FuzzTarget<Uint8Array> {
  const limits = defaultLimits;
  const bounds = messageBounds(limits.maxFrameBytes);
  let core = newCore();
  const stepAll = (messages: Message[]): Outcome => {
    for (const m of messages) {
      try {
        core.node.step(m);
        drain(core);
      } catch (e) {
        if (e instanceof BadMessageError) return 'refused';
        throw new FuzzViolation(`the core threw on a message that passed the transport's checks (${JSON.stringify({ ...m, entries: m.entries.length })}): ${(e as Error).stack ?? String(e)}`, { cause: e });
      }
    }
    return 'accepted';
  };
  return {
    feed: (bytesIn) => {
      let messages: Message[];
      try {
        if (bytesIn.byteLength > limits.maxFrameBytes) return 'refused';
        messages = decodeFrame(bytesIn);
        if (messages.length > limits.maxQueuedMessages) return 'refused';
        messages.forEach((m, i) => {
          if (m.from !== PEER || m.to !== SELF) throw new FrameError('misaddressed');
          checkMessage(m, i, bounds);
        });
      } catch (e) {
        if (e instanceof FrameError) return 'refused';
        throw new FuzzViolation(`decoding or checking a frame threw a ${(e as Error)?.name}, not FrameError: ${(e as Error)?.stack ?? String(e)}`, { cause: e });
      }
      return stepAll(messages);
    },
    control: () => {
      try {
        for (let i = 0; i < 3; i++) core.node.tick();
        drain(core);
        core.node.status();
      } catch (e) {
        throw new FuzzViolation(`the core no longer ticks after fuzzed frames: ${(e as Error).stack ?? String(e)}`, { cause: e });
      }
      if (core.storage.lastIndex() > CORE_LOG_ENTRIES_MAX) core = newCore();
    },
    close: async () => undefined,
  };
}
