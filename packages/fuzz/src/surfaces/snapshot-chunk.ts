// Snapshot chunks: what a leader streams on the snapshot channel (begin, chunks, end), fed to the
// receiving state machine (server snapshot-receiver.ts) through the real frame decoder, with a
// driver that plays the host: it stages written chunks, answers every I/O action, and installs a
// delivered snapshot. Generated streams are coherent (right offsets, checksums, total and SHA-256)
// and then damaged: raw edits to frames, a reconnect in the middle. The stage survives from one
// input to the next, so resumes are fuzzed too. Invariants: the machine never throws; it answers
// only with receiver frames; it delivers a snapshot only when the staged bytes are exactly the
// stream the end frame vouches for (length and SHA-256) — never a damaged one.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { MessageType, type Message } from '@quorumkv/raft';
import { SnapshotReceiver, decodeSnapshotFrame, encodeSnapshotFrame, type ReceiveAction, type ReceiveEvent } from '@quorumkv/server';
import { crc32 } from '@quorumkv/storage';
import { FuzzViolation, type FuzzTarget, type Outcome, type Surface } from '../runner.js';
import { applyEdits, byteEdit, type ByteEdit } from '../mutate.js';

const SELF = 'n1';
const LEADER = 'n2';
const RECEIVER_FRAMES = new Set(['resume', 'ack', 'nack', 'done', 'fail']);
/** Most actions one event may produce before the driver calls it a loop. */
const ACTIONS_PER_EVENT_MAX = 64;

/** One stream, as the leader would send it, and the damage done to it. */
export interface SnapshotInput {
  index: number;
  term: number;
  fresh: boolean;
  chunks: Uint8Array[];
  /** Per frame (begin, chunks…, end): raw edits to its bytes, or none. */
  damage: (ByteEdit[] | null)[];
  /** Frame position after which the connection drops and a new one continues; -1 = never. */
  reconnectAfter: number;
  /** The end frame claims this many extra bytes (0 = honest). */
  totalSkew: number;
  /** The host's writes fail from this write on; -1 = never. */
  writeFailsAt: number;
}

const input: fc.Arbitrary<SnapshotInput> = fc
  .record({
    index: fc.integer({ min: 0, max: 6 }),
    term: fc.integer({ min: 0, max: 3 }),
    fresh: fc.boolean(),
    chunks: fc.array(fc.uint8Array({ maxLength: 64 }), { minLength: 0, maxLength: 4 }),
    reconnectAfter: fc.integer({ min: -1, max: 6 }),
    totalSkew: fc.constantFrom(0, 0, 0, 1, -1),
    writeFailsAt: fc.constantFrom(-1, -1, -1, -1, 0, 1, 2),
  })
  .chain((r) => fc.array(fc.option(fc.array(byteEdit, { minLength: 1, maxLength: 3 }), { freq: 3, nil: null }), { minLength: r.chunks.length + 2, maxLength: r.chunks.length + 2 }).map((damage) => ({ ...r, damage })));

function snapMessage(index: number, term: number): Message {
  return {
    type: MessageType.Snap, to: SELF, from: LEADER, term: term + 1, logTerm: 0, index: 0, commit: index, reject: false, rejectHint: 0, entries: [],
    snapshot: { metadata: { index, term, confState: { voters: [SELF, LEADER, 'n3'], learners: [] } }, data: new Uint8Array(0) },
  };
}

/** The frames of one stream, encoded as the sender does, damaged as the input says. */
function frames(i: SnapshotInput): Uint8Array[] {
  const out: Uint8Array[] = [encodeSnapshotFrame({ t: 'begin', index: i.index, term: i.term, msg: snapMessage(i.index, i.term), ...(i.fresh ? { fresh: true } : {}) })];
  let offset = 0;
  const hash = createHash('sha256');
  for (const data of i.chunks) {
    out.push(encodeSnapshotFrame({ t: 'chunk', offset, data, crc: crc32(data) }));
    offset += data.length;
    hash.update(data);
  }
  out.push(encodeSnapshotFrame({ t: 'end', total: Math.max(0, offset + i.totalSkew), sha256: hash.digest() }));
  return out.map((f, k) => (i.damage[k] ? applyEdits(f, i.damage[k]!) : f));
}

export const snapshotChunkSurface: Surface<SnapshotInput> = {
  name: 'snapshot-chunk',
  description: 'snapshot streams (begin/chunk/end) fed to the receiving state machine',
  arbitrary: () => input,
  open: async () => openSnapshotTarget(),
  show: (i) => JSON.stringify(i, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)),
};

/** The host's side: the staged writer, the connection ids, the I/O answers. */
class Driver {
  readonly rx = new SnapshotReceiver(SELF);
  private now = 0;
  private conn = 0;
  private staged: Buffer[] | undefined;
  private lastEnd: { total: number; sha256: Buffer } | undefined;
  writes = 0;
  writeFailsAt = -1;
  delivered = 0;
  open = false;

  connect(): void {
    this.conn++;
    this.open = true;
    this.run({ type: 'connected', conn: this.conn, peer: LEADER });
  }

  disconnect(): void {
    if (this.open) this.run({ type: 'disconnected', conn: this.conn });
    this.open = false;
  }

  frame(bytes: Uint8Array): void {
    if (!this.open) return;
    const f = decodeSnapshotFrame(Buffer.from(bytes));
    if (f && f.t === 'end' && typeof f.total === 'number' && f.sha256 instanceof Uint8Array) this.lastEnd = { total: f.total, sha256: Buffer.from(f.sha256) };
    this.run({ type: 'frame', conn: this.conn, frame: f });
  }

  /** Steps one event and answers every I/O action it asks for (each result is the next event). */
  private run(first: ReceiveEvent): void {
    const queue: ReceiveEvent[] = [first];
    for (let n = 0; queue.length > 0; n++) {
      if (n > ACTIONS_PER_EVENT_MAX) throw new FuzzViolation('the receiver keeps asking for I/O (loop)');
      const e = queue.shift()!;
      let actions: ReceiveAction[];
      try {
        actions = this.rx.step(e, (this.now += 1));
      } catch (err) {
        throw new FuzzViolation(`the snapshot receiver threw on ${e.type}: ${(err as Error).stack ?? String(err)}`, { cause: err });
      }
      for (const a of actions) {
        const next = this.act(a);
        if (next) queue.push(next);
      }
    }
  }

  private act(a: ReceiveAction): ReceiveEvent | undefined {
    switch (a.type) {
      case 'send':
        if (!RECEIVER_FRAMES.has(a.frame.t)) throw new FuzzViolation(`the receiver sent a ${a.frame.t} frame`);
        return undefined;
      case 'closeConn':
        if (a.conn === this.conn) this.open = false;
        return undefined;
      case 'openWriter':
        this.staged = [];
        return { type: 'staged', bytesReceived: 0 };
      case 'write':
        if (!this.staged) throw new FuzzViolation('write with no open writer');
        if (this.writeFailsAt >= 0 && this.writes++ >= this.writeFailsAt) return { type: 'writeFailed', error: 'disk full (fuzzed)' };
        this.staged.push(Buffer.from(a.data));
        return { type: 'written' };
      case 'abortWriter':
        this.staged = undefined;
        return undefined;
      case 'deliver':
        this.checkDelivery(a.msg);
        return { type: 'install', index: a.msg.snapshot!.metadata.index };
      case 'installWriter':
        this.staged = undefined;
        return { type: 'installed' };
      default:
        return undefined;
    }
  }

  /** Never misread: what is delivered is exactly the stream the end frame vouched for. */
  private checkDelivery(msg: Message): void {
    const data = Buffer.concat(this.staged ?? []);
    const end = this.lastEnd;
    if (!this.staged || !end) throw new FuzzViolation('delivered a snapshot with nothing staged or no end frame');
    if (data.length !== end.total || !createHash('sha256').update(data).digest().equals(end.sha256)) {
      throw new FuzzViolation(`delivered ${data.length} staged bytes that do not match the end frame (${end.total} bytes)`);
    }
    if (msg.from !== LEADER || msg.to !== SELF || msg.type !== MessageType.Snap) throw new FuzzViolation(`delivered a message not from the stream's leader: ${JSON.stringify(msg)}`);
    this.delivered++;
  }
}

function openSnapshotTarget(): FuzzTarget<SnapshotInput> {
  let d = new Driver();
  let inputs = 0;
  return {
    feed: (i): Outcome => {
      d.writes = 0;
      d.writeFailsAt = i.writeFailsAt;
      const before = d.delivered;
      d.connect();
      frames(i).forEach((f, k) => {
        d.frame(f);
        if (k === i.reconnectAfter) (d.disconnect(), d.connect());
      });
      // Leave the stage for the next input (a resume) most of the time; drop the connection.
      d.disconnect();
      if (++inputs % 100 === 0) d = new Driver(); // bound the machine's age, not its state
      return d.delivered > before ? 'accepted' : 'refused';
    },
    control: () => {
      // A clean stream into a fresh connection is delivered.
      const before = d.delivered;
      const data = Uint8Array.of(1, 2, 3);
      d.writes = 0;
      d.writeFailsAt = -1;
      d.connect();
      for (const f of frames({ index: 9, term: 9, fresh: true, chunks: [data], damage: [null, null, null], reconnectAfter: -1, totalSkew: 0, writeFailsAt: -1 })) d.frame(f);
      d.disconnect();
      if (d.delivered !== before + 1) throw new FuzzViolation('a clean snapshot stream was not delivered after the fuzzed ones');
    },
    close: async () => undefined,
  };
}
