import { describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import type { Message, MessageType } from '@quorumkv/raft';
import { decodeFrame, encodeFrame, estimateMessageBytes, FRAME_OVERHEAD_BYTES, FrameError, frameBytesNeededForAppend, MAX_NODE_ID_LENGTH } from '../src/index.js';
import { mulberry32 } from '@quorumkv/testkit';
import { entries, msg } from './helpers.js';

const raw = new Packr({ useRecords: false, moreTypes: false });

function full(): Message {
  return msg({
    type: 16 as MessageType,
    from: 'n1',
    to: 'n2',
    term: 7,
    logTerm: 6,
    index: 2 ** 40,
    commit: 99,
    reject: true,
    rejectHint: 12,
    rejectHintTerm: 5,
    entries: [...entries(100, 3, 256), { term: 7, index: 103, type: 1, data: new Uint8Array(0) }],
    context: new Uint8Array([0, 255, 1]),
    snapshot: {
      metadata: { index: 90, term: 6, confState: { voters: ['n1', 'n2', 'ñ3'], learners: ['l4'] } },
      data: new Uint8Array([9, 8, 7]),
    },
  });
}

/** A frame built by hand: [1, [tuple]] with `tuple` as given. */
function frameOf(tuple: unknown[]): Uint8Array {
  return raw.pack([1, [tuple]]);
}
const validTuple = (): unknown[] => [10, 'n2', 'n1', 1, 0, 0, 0, false, 0, [], null, null, null];

describe('frame codec', () => {
  it('round-trips every field exactly, with plain Uint8Array payloads', () => {
    const messages = [full(), msg({ from: 'n1', to: 'n2', type: 17 as MessageType })];
    const decoded = decodeFrame(encodeFrame(messages));
    expect(decoded).toEqual(messages);
    for (const e of decoded[0]!.entries) expect(e.data.constructor).toBe(Uint8Array);
    expect(decoded[0]!.context!.constructor).toBe(Uint8Array);
    expect(decoded[1]).not.toHaveProperty('rejectHintTerm');
    expect(decoded[1]).not.toHaveProperty('snapshot');
  });

  it('encodes payloads from views of larger buffers without their neighbours', () => {
    const backing = new Uint8Array([1, 2, 3, 4, 5, 6]);
    const m = msg({ from: 'a', to: 'b', entries: [{ term: 1, index: 1, type: 0, data: backing.subarray(2, 4) }] });
    expect(Array.from(decodeFrame(encodeFrame([m]))[0]!.entries[0]!.data)).toEqual([3, 4]);
  });

  it('estimates an upper bound of the encoded size', () => {
    const seed = Number(process.env.QKV_SEED ?? 1);
    const rand = mulberry32(seed);
    for (let i = 0; i < 200; i++) {
      const m = full();
      m.entries = entries(1, Math.floor(rand() * 20), Math.floor(rand() * 300));
      m.term = Math.floor(rand() * 2 ** 53);
      m.to = 'x'.repeat(1 + Math.floor(rand() * 128));
      const actual = encodeFrame([m]).byteLength;
      expect(estimateMessageBytes(m) + FRAME_OVERHEAD_BYTES, `seed ${seed}; replay: QKV_SEED=${seed} pnpm vitest run packages/transport/test/codec.test.ts`).toBeGreaterThanOrEqual(actual);
    }
  });

  it('sizes frames for any append the core builds under maxBytesPerAppend', () => {
    const maxBytesPerAppend = 64 * 1024;
    const longId = 'x'.repeat(MAX_NODE_ID_LENGTH);
    for (const size of [0, 1, 100, 4000]) {
      // As many entries as the core's accounting (data + 16 bytes each) lets into one append.
      const count = Math.max(1, Math.floor(maxBytesPerAppend / (size + 16)));
      const m = msg({ from: longId, to: longId, entries: entries(1, count, size), index: 2 ** 52, term: 2 ** 52 });
      expect(estimateMessageBytes(m) + FRAME_OVERHEAD_BYTES).toBeLessThanOrEqual(frameBytesNeededForAppend(maxBytesPerAppend));
    }
  });

  const bad: Array<[string, Uint8Array]> = [
    ['garbage', new Uint8Array([0xc1, 0xff, 0x00, 0x13])],
    ['empty', new Uint8Array(0)],
    ['truncated', encodeFrame([full()]).subarray(0, 40)],
    ['trailing bytes', new Uint8Array([...encodeFrame([full()]), 0x01])],
    ['not an array', raw.pack({ a: 1 })],
    ['unknown frame kind', raw.pack([2, []])],
    ['messages not an array', raw.pack([1, 'x'])],
    ['short tuple', frameOf(validTuple().slice(0, 12))],
    ['local message type', frameOf(Object.assign(validTuple(), { 0: 2 }))],
    ['unknown message type', frameOf(Object.assign(validTuple(), { 0: 99 }))],
    ['empty to', frameOf(Object.assign(validTuple(), { 1: '' }))],
    ['numeric from', frameOf(Object.assign(validTuple(), { 2: 5 }))],
    ['negative term', frameOf(Object.assign(validTuple(), { 3: -1 }))],
    ['fractional index', frameOf(Object.assign(validTuple(), { 5: 1.5 }))],
    ['huge commit', frameOf(Object.assign(validTuple(), { 6: 2 ** 64 }))],
    ['string reject', frameOf(Object.assign(validTuple(), { 7: 'yes' }))],
    ['entries not flat groups of 4', frameOf(Object.assign(validTuple(), { 9: [1, 1, 0] }))],
    ['entry data as string', frameOf(Object.assign(validTuple(), { 9: [1, 1, 0, 'abc'] }))],
    ['entry type 7', frameOf(Object.assign(validTuple(), { 9: [1, 1, 7, new Uint8Array(1)] }))],
    ['context as array', frameOf(Object.assign(validTuple(), { 11: [1, 2] }))],
    ['snapshot wrong shape', frameOf(Object.assign(validTuple(), { 12: [1, 2, [], []] }))],
    ['snapshot voter not an id', frameOf(Object.assign(validTuple(), { 12: [1, 2, [7], [], new Uint8Array(0)] }))],
  ];
  it.each(bad)('rejects %s with a FrameError', (_name, frame) => {
    expect(() => decodeFrame(frame)).toThrow(FrameError);
  });

  it('never throws anything but FrameError on corrupted frames (seeded fuzz)', () => {
    const seed = Number(process.env.QKV_SEED ?? 42);
    const rand = mulberry32(seed);
    const base = encodeFrame([full(), full()]);
    let rejected = 0;
    for (let i = 0; i < 2000; i++) {
      const f = new Uint8Array(base);
      const flips = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < flips; k++) f[Math.floor(rand() * f.length)] = Math.floor(rand() * 256);
      const cut = rand() < 0.2 ? Math.floor(rand() * f.length) : f.length;
      try {
        decodeFrame(f.subarray(0, cut));
      } catch (err) {
        expect(err, `seed ${seed}; replay: QKV_SEED=${seed} pnpm vitest run packages/transport/test/codec.test.ts`).toBeInstanceOf(FrameError);
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(0);
  });
});
