// The pieces of the client's fast path: request encoding (byte-identical to the old spread),
// the call signal's listener slot, and the per-connection deadline sweep.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AbortedError,
  InvalidArgumentError,
  DEFAULT_LIMITS,
  PROTOCOL_VERSION,
  TimeoutError,
  decodeMsgpack,
  encodeFrame,
  toBytes,
  TooLargeError,
  type ClientRequest,
} from '@quorumkv/protocol';
import { CallSignal, type AbortListener } from '../src/call-signal.js';
import { NodeConnection, encodeRequest, type RequestBody } from '../src/node-connection.js';
import { ClientSession } from '../src/session.js';
import { bytesOf } from '../src/utf8.js';
import type { WebSocketLike } from '../src/websocket.js';
import { mulberry32 } from '@quorumkv/testkit';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const MAX = DEFAULT_LIMITS.maxFrameBytes;

describe('encodeRequest', () => {
  const session = { id: 's-1', seq: 7, ackedBelow: 3 };
  const bodies = (): RequestBody[] => [
    { op: 'hello', version: PROTOCOL_VERSION },
    { op: 'put', key: b('user/1'), value: b('ada'), session },
    { op: 'get', key: b('user/1'), consistency: 'linearizable' },
    { op: 'delete', key: b('k'), session },
    { op: 'cas', key: b('k'), condition: { kind: 'modRevision', modRevision: 4 }, action: { kind: 'put', value: b('v') }, session },
    { op: 'range', prefix: b('user/'), after: b('user/1'), limit: 500, consistency: 'stale' },
    { op: 'status' },
  ];

  it('gives the same bytes as encoding { ...body, id, timeoutMs }', () => {
    const expected = bodies().map((body, i) => encodeFrame({ ...body, id: i + 1, timeoutMs: 1000 + i } as ClientRequest, MAX));
    const actual = bodies().map((body, i) => encodeRequest(body, i + 1, 1000 + i, MAX));
    for (let i = 0; i < expected.length; i++) expect(Buffer.from(actual[i]!)).toEqual(Buffer.from(expected[i]!));
  });

  it('gives the same bytes when a retry sends the same body object again', () => {
    for (const body of bodies()) {
      encodeRequest(body, 1, 5000, MAX);
      const again = encodeRequest(body, 2, 4000, MAX);
      const { id: _id, timeoutMs: _t, ...plain } = body as RequestBody & { id: number; timeoutMs: number };
      expect(Buffer.from(again)).toEqual(Buffer.from(encodeFrame({ ...plain, id: 2, timeoutMs: 4000 } as ClientRequest, MAX)));
    }
  });
});

describe('put fast path', () => {
  const INTS = [0, 1, 0x1f, 0x20, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0xffffffff, 2 ** 32, 2 ** 53 - 1];
  const LENGTHS = [0, 1, 31, 32, 255, 256, 1000, 4096, 16 * 1024 - 200, 16 * 1024, 20_000];
  const ID_CHARS = ['a', 'Z', '-', '0', '\u007f', 'é', '日', '\ud83d\ude42'];

  it('writes exactly the bytes msgpackr writes for { ...body, id, timeoutMs }, over many random puts', () => {
    const seed = Number(process.env.QKV_SEED ?? 20261122);
    const rnd = mulberry32(seed);
    const pickOf = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
    const int = (): number => (rnd() < 0.5 ? pickOf(INTS) : Math.floor(rnd() * 2 ** (1 + Math.floor(rnd() * 32))));
    const bytes = (): Uint8Array => {
      const n = rnd() < 0.5 ? pickOf(LENGTHS) : Math.floor(rnd() * 3000);
      const b2 = new Uint8Array(n);
      for (let i = 0; i < n; i++) b2[i] = Math.floor(rnd() * 256);
      return b2;
    };
    let fast = 0;
    for (let i = 0; i < 3000; i++) {
      const idLength = rnd() < 0.3 ? 36 : pickOf([0, 1, 31, 32, 64, 255, 256]);
      const asciiOnly = rnd() < 0.8;
      let sid = '';
      for (let c = 0; c < idLength; c++) sid += asciiOnly ? String.fromCharCode(0x20 + Math.floor(rnd() * 0x5f)) : pickOf(ID_CHARS);
      const session = { id: sid, seq: int(), ackedBelow: int() };
      const body: RequestBody = { op: 'put', key: bytes(), value: bytes(), session };
      const id = int();
      const timeoutMs = int();
      const maxFrameBytes = rnd() < 0.1 ? Math.floor(rnd() * 4000) : MAX;
      const replay = `seed ${seed}, case ${i}: QKV_SEED=${seed} pnpm vitest run packages/client/test/internals.test.ts`;
      let want: Uint8Array | Error;
      try {
        want = encodeFrame({ ...body, id, timeoutMs } as ClientRequest, maxFrameBytes);
      } catch (e) {
        want = e as Error;
      }
      let got: Uint8Array | Error;
      try {
        got = encodeRequest({ ...body }, id, timeoutMs, maxFrameBytes);
      } catch (e) {
        got = e as Error;
      }
      if (want instanceof Error) {
        expect(want, replay).toBeInstanceOf(TooLargeError);
        expect(got, replay).toBeInstanceOf(TooLargeError);
        expect((got as Error).message, replay).toBe(want.message);
        continue;
      }
      expect(got, replay).toBeInstanceOf(Uint8Array);
      const g = got as Uint8Array;
      if (!(g instanceof Buffer)) fast++;
      if (!Buffer.from(g.buffer, g.byteOffset, g.length).equals(want)) {
        expect(Buffer.from(g).toString('hex'), replay).toBe(Buffer.from(want).toString('hex'));
      }
    }
    // The fast path did most of the work (msgpackr's frames are Node Buffers, its own are not).
    expect(fast).toBeGreaterThan(1000);
  });

  it('leaves earlier frames intact while writing later ones', () => {
    const session = { id: 'abc', seq: 1, ackedBelow: 1 };
    const frames: Array<[Uint8Array, Uint8Array]> = [];
    for (let i = 0; i < 200; i++) {
      const body: RequestBody = { op: 'put', key: b(`k/${i}`), value: new Uint8Array(3000).fill(i), session };
      frames.push([encodeRequest({ ...body }, i, 1000, MAX), encodeFrame({ ...body, id: i, timeoutMs: 1000 } as ClientRequest, MAX)]);
    }
    const wrong = frames.filter(([got, want]) => !Buffer.from(got.buffer, got.byteOffset, got.length).equals(want));
    expect(wrong.length).toBe(0);
  });
});

describe('bytesOf', () => {
  const samples = ['', 'a', 'user/1', 'x'.repeat(100), 'é', '日本語', '🙂 ok', 'lone \ud800 high', 'lone \udc00 low', 'y'.repeat(1024), 'z'.repeat(1025), 'é'.repeat(3000)];

  it('gives the same bytes as toBytes, each result its own bytes, across many slabs', () => {
    const results: Array<[Uint8Array, Uint8Array]> = [];
    // Enough strings to fill several slabs, so the roll-over to a fresh slab is crossed.
    for (let round = 0; round < 200; round++) {
      for (const s of samples) results.push([bytesOf(`${s}${round}`, 'value'), toBytes(`${s}${round}`, 'value')]);
    }
    // Checked after all were made: a later string must not have overwritten an earlier one.
    const wrong = results.filter(([got, want]) => !Buffer.from(got.buffer, got.byteOffset, got.length).equals(want));
    expect(wrong.length).toBe(0);
    expect(results.length).toBe(200 * samples.length);
  });

  it('passes bytes through and refuses anything else like toBytes', () => {
    const raw = new Uint8Array([1, 2, 3]);
    expect(bytesOf(raw, 'key')).toBe(raw);
    expect(() => bytesOf(42 as unknown as string, 'key')).toThrow(InvalidArgumentError);
    expect(() => bytesOf(42 as unknown as string, 'key')).toThrow('key must be a string or a Uint8Array');
  });

  it('encodes into the same request frame bytes as toBytes does', () => {
    const session = { id: 's', seq: 1, ackedBelow: 1 };
    const a = encodeRequest({ op: 'put', key: bytesOf('k/1', 'key'), value: bytesOf('vé', 'value'), session }, 9, 100, MAX);
    const b2 = encodeRequest({ op: 'put', key: toBytes('k/1', 'key'), value: toBytes('vé', 'value'), session }, 9, 100, MAX);
    expect(Buffer.from(a)).toEqual(Buffer.from(b2));
  });
});

describe('ClientSession', () => {
  it('acks below the oldest unanswered write, whatever order answers come in', () => {
    const s = new ClientSession('s');
    const t = [s.begin(), s.begin(), s.begin(), s.begin()];
    expect(t.map((x) => x.seq)).toEqual([1, 2, 3, 4]);
    expect(t[3]!.ref()).toEqual({ id: 's', seq: 4, ackedBelow: 1 });
    t[1]!.done();
    expect(s.ackedBelow()).toBe(1);
    t[0]!.done();
    expect(s.ackedBelow()).toBe(3);
    t[3]!.done();
    t[2]!.done();
    expect(s.ackedBelow()).toBe(5);
    expect(s.begin().ref()).toEqual({ id: 's', seq: 5, ackedBelow: 5 });
  });
});

describe('CallSignal', () => {
  const recorder = (log: string[], name: string): AbortListener => ({ onCallAbort: () => log.push(name) });

  it('tells its listeners once, in the order they were added, and not those removed', () => {
    const s = new CallSignal();
    const log: string[] = [];
    const [a, b2, c, d] = ['a', 'b', 'c', 'd'].map((n) => recorder(log, n)) as [AbortListener, AbortListener, AbortListener, AbortListener];
    s.subscribe(a);
    s.subscribe(b2);
    s.subscribe(b2); // already there: no second call
    s.unsubscribe(a);
    s.subscribe(c); // must come after b, though the slot is free
    s.subscribe(d);
    s.unsubscribe(d);
    const reason = new AbortedError('stop');
    s.abort(reason);
    s.abort(new AbortedError('again'));
    expect(log).toEqual(['b', 'c']);
    expect(s.aborted).toBe(true);
    expect(s.reason).toBe(reason);
  });

  it('uses the slot again once every listener is gone, and ignores listeners added after the abort', () => {
    const s = new CallSignal();
    const log: string[] = [];
    const a = recorder(log, 'a');
    s.subscribe(a);
    s.unsubscribe(a);
    s.subscribe(recorder(log, 'b'));
    s.abort(new AbortedError('stop'));
    s.subscribe(recorder(log, 'late'));
    s.abort(new AbortedError('again'));
    expect(log).toEqual(['b']);
  });
});

/** A WebSocket that opens at once, answers hello, and leaves every other request unanswered. */
class SilentSocket implements WebSocketLike {
  binaryType = 'arraybuffer';
  readyState = 0;
  bufferedAmount = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly sent: ClientRequest[] = [];

  constructor() {
    queueMicrotask(() => {
      this.readyState = 1;
      this.onopen?.({});
    });
  }

  send(data: Uint8Array): void {
    const req = decodeMsgpack(data, MAX) as ClientRequest;
    this.sent.push(req);
    if (req.op !== 'hello') return;
    const result = { version: PROTOCOL_VERSION, serverId: 'n1', leader: null, limits: DEFAULT_LIMITS };
    queueMicrotask(() => this.onmessage?.({ data: encodeFrame({ id: req.id, ok: true, result }, MAX) }));
  }

  close(): void {
    this.readyState = 3;
  }
}

describe('NodeConnection deadline sweep', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  async function openNode(): Promise<{ node: NodeConnection; ws: () => SilentSocket }> {
    let socket: SilentSocket | undefined;
    const node = new NodeConnection('n1:1', 'ws://n1:1/client', {
      webSocketFactory: () => (socket = new SilentSocket()),
      maxFrameBytes: MAX,
      connectTimeoutMs: 1000,
      reconnectBackoff: { initialMs: 10, maxMs: 100, multiplier: 2 },
      random: () => 0.5,
      now: () => Date.now(),
      onHello: () => {},
    });
    await node.open({ deadlineMs: Date.now() + 1000, signal: new CallSignal() });
    expect(node.isOpen).toBe(true);
    return { node, ws: () => socket as SilentSocket };
  }

  /** Settles `p` into a record of how and when (fake ms since `t0`) it settled. */
  function watch(p: Promise<unknown>, t0: number): { settledAtMs?: number; error?: unknown } {
    const r: { settledAtMs?: number; error?: unknown } = {};
    p.then(
      () => (r.settledAtMs = Date.now() - t0),
      (e: unknown) => {
        r.settledAtMs = Date.now() - t0;
        r.error = e;
      },
    );
    return r;
  }

  it('fails each request with TimeoutError at its own deadline, not a millisecond before', async () => {
    const { node, ws } = await openNode();
    const t0 = Date.now();
    const body = (): RequestBody => ({ op: 'get', key: b('k'), consistency: 'linearizable' });
    // Added out of deadline order: the sweep must be re-armed for the earlier one.
    const late = watch(node.request('get', body(), t0 + 300, new CallSignal()), t0);
    const early = watch(node.request('get', body(), t0 + 100, new CallSignal()), t0);
    const same = watch(node.request('get', body(), t0 + 100, new CallSignal()), t0);
    expect(ws().sent.filter((r) => r.op === 'get').map((r) => r.timeoutMs)).toEqual([300, 100, 100]);
    expect(node.inflight).toBe(3);

    await vi.advanceTimersByTimeAsync(99);
    expect(early.settledAtMs).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(early).toMatchObject({ settledAtMs: 100 });
    expect(same).toMatchObject({ settledAtMs: 100 });
    expect(early.error).toBeInstanceOf(TimeoutError);
    expect((early.error as Error).message).toBe('no answer from n1:1 before the deadline');
    expect(node.inflight).toBe(1);

    await vi.advanceTimersByTimeAsync(199);
    expect(late.settledAtMs).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(late).toMatchObject({ settledAtMs: 300 });
    expect(late.error).toBeInstanceOf(TimeoutError);
    expect(node.inflight).toBe(0);
    // Nothing in flight: no timer left behind.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('drops the sweep timer when the last request is aborted, and fails aborted requests with the reason', async () => {
    const { node } = await openNode();
    const t0 = Date.now();
    const signal = new CallSignal();
    const r = watch(node.request('get', { op: 'get', key: b('k'), consistency: 'stale' }, t0 + 500, signal), t0);
    expect(vi.getTimerCount()).toBe(1);
    const reason = new AbortedError('stop');
    signal.abort(reason);
    await vi.advanceTimersByTimeAsync(0);
    expect(r.error).toBe(reason);
    expect(node.inflight).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
