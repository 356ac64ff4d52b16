// The snapshot sender and receiver state machines (src/snapshot-sender.ts,
// src/snapshot-receiver.ts) under a ManualClock: events in, actions out, read as transcripts of
// the frames on the wire (test/snapshot-sim.ts). No sockets, disk or real time: a transfer that
// takes seconds at its rate limit runs in milliseconds, and every run is the same.
import { describe, expect, it } from 'vitest';
import { MAX_ATTEMPTS, MAX_QUEUED_TRANSFERS, SnapshotSender, STALL_TIMEOUT_MS } from '../src/snapshot-sender.js';
import { SnapshotReceiver, type ReceiveAction } from '../src/snapshot-receiver.js';
import { MessageType, type Message } from '@quorumkv/raft';
import { Prng } from '@quorumkv/testkit';
import { SnapshotSim } from './snapshot-sim.js';

const SNAP = { index: 10, term: 2 };
const chunks = (n: number, bytes = 100) => Array.from({ length: n }, () => bytes);

/** Lines of the transcript matching `re`. */
const grep = (sim: SnapshotSim, re: RegExp) => sim.lines.filter((l) => re.test(l));

describe('snapshot transfer state machines', () => {
  it('a whole transfer: begin, chunks acknowledged one by one, end checked, then the core installs it', () => {
    const sim = new SnapshotSim({ followers: ['n2'], snapshot: { ...SNAP, chunkSizes: chunks(3) } });
    sim.want('n2');
    sim.run(1000);
    sim.install('n2');
    sim.run(1000);
    expect(sim.lines).toEqual([
      't=0ms n1 dial n2: conn 1',
      't=0ms n1→n2 begin index=10 term=2',
      't=0ms n2→n1 resume offset=0',
      't=0ms n1→n2 chunk offset=0 len=100',
      't=0ms n2→n1 ack offset=100',
      't=0ms n1→n2 chunk offset=100 len=100',
      't=0ms n2→n1 ack offset=200',
      't=0ms n1→n2 chunk offset=200 len=100',
      't=0ms n2→n1 ack offset=300',
      't=0ms n1→n2 end total=300',
      't=0ms n2 core ← Snap index=10 term=2',
      't=0ms n2→n1 done',
      't=0ms conn 1 closed (hang-up)',
      't=0ms n1 finished n2 ok index=10 bytes=300',
      't=0ms n2 installed (300 bytes)',
    ]);
    expect(sim.follower('n2').installed).toEqual(sim.snapshotBytes());
    expect(sim.reports).toEqual(['n2 ok']);
    expect(sim.sender.status()).toEqual([]); // nothing left running
  });

  it('resumes after a cut from the last acknowledged offset, resending only what was not acknowledged', () => {
    const sim = new SnapshotSim({ followers: ['n2'], snapshot: { ...SNAP, chunkSizes: chunks(6) }, faults: { cutAfterChunks: 3 } });
    sim.want('n2');
    sim.run();
    expect(grep(sim, /interrupted|closed|backoff|dial|begin|resume/)).toEqual([
      't=0ms n1 dial n2: conn 1',
      't=0ms n1→n2 begin index=10 term=2',
      't=0ms n2→n1 resume offset=0',
      't=0ms n1 warn "snapshot transfer interrupted" attempt=1 offset=200 err="fault injection: connection cut"',
      't=0ms conn 1 closed (hang-up)',
      't=0ms n1 backoff n2 139ms', // jittered in [0, 200) ms by the seeded Random
      't=139ms n1 dial n2: conn 2',
      't=139ms n1→n2 begin index=10 term=2',
      't=139ms n2→n1 resume offset=200', // the receiver kept its stage: no byte before 200 again
      't=139ms conn 2 closed (hang-up)', // after done
    ]);
    const sent = grep(sim, /n1→n2 chunk/).map((l) => /offset=(\d+)/.exec(l)![1]);
    expect(sent).toEqual(['0', '100', '200', '200', '300', '400', '500']); // only the cut chunk twice
    sim.install('n2');
    sim.run(1000);
    expect(sim.follower('n2').installed).toEqual(sim.snapshotBytes());
    expect(sim.reports).toEqual(['n2 ok']);
  });

  it('a chunk that fails its checksum is refused with nack and re-sent; the stream installs intact', () => {
    const sim = new SnapshotSim({ followers: ['n2'], snapshot: { ...SNAP, chunkSizes: chunks(3) }, faults: { corruptEveryNthChunk: 2 } });
    sim.want('n2');
    sim.run(1000);
    expect(sim.lines.slice(3, 18)).toEqual([
      't=0ms n1→n2 chunk offset=0 len=100',
      't=0ms n2→n1 ack offset=100',
      't=0ms n1→n2 chunk offset=100 len=100', // the 2nd send: corrupted after its CRC was computed
      't=0ms n2 warn "snapshot chunk failed its checksum; asking for it again" offset=100',
      't=0ms n2→n1 nack offset=100 "crc mismatch"',
      't=0ms n1 warn "snapshot chunk refused by the receiver; resending" offset=100 reason="crc mismatch"',
      't=0ms n1→n2 chunk offset=100 len=100', // re-sent intact (each chunk is corrupted once at most)
      't=0ms n2→n1 ack offset=200',
      't=0ms n1→n2 chunk offset=200 len=100', // the 4th send: corrupted
      't=0ms n2 warn "snapshot chunk failed its checksum; asking for it again" offset=200',
      't=0ms n2→n1 nack offset=200 "crc mismatch"',
      't=0ms n1 warn "snapshot chunk refused by the receiver; resending" offset=200 reason="crc mismatch"',
      't=0ms n1→n2 chunk offset=200 len=100',
      't=0ms n2→n1 ack offset=300',
      't=0ms n1→n2 end total=300',
    ]);
    sim.install('n2');
    sim.run(1000);
    expect(sim.follower('n2').installed).toEqual(sim.snapshotBytes());
    expect(grep(sim, /interrupted/)).toEqual([]); // a refused chunk does not cost a connection
  });

  it('respects the rate limit in simulated time, and a rate change applies to the transfer under way', () => {
    const RATE = 5000;
    const sim = new SnapshotSim({ followers: ['n2'], snapshot: { ...SNAP, chunkSizes: chunks(20, 1000) }, rateBytesPerSec: RATE });
    sim.want('n2');
    const ms = sim.run();
    // 20 000 bytes at 5 000 B/s with a burst of one chunk (1 000 bytes): (20 000 - 1 000) / 5 000 s.
    expect(ms).toBe(3800);
    // Never ahead of the bucket: by time t at most burst + R·t bytes went out.
    for (const l of grep(sim, /n1→n2 chunk/)) {
      const [, t, offset] = /^t=(\d+)ms .* offset=(\d+)/.exec(l)!;
      expect(Number(offset) + 1000).toBeLessThanOrEqual(1000 + (RATE * Number(t)) / 1000);
    }
    expect(grep(sim, /interrupted/)).toEqual([]); // waiting for tokens is not a stall

    const halved = new SnapshotSim({ followers: ['n2'], snapshot: { ...SNAP, chunkSizes: chunks(20, 1000) }, rateBytesPerSec: RATE });
    halved.want('n2');
    halved.run(1000); // about 6 chunks at the first rate
    halved.bucket.setRate(RATE / 2);
    const rest = halved.run();
    expect(1000 + rest).toBeGreaterThanOrEqual(1000 + ((20_000 - 6000 - 1000) / (RATE / 2)) * 1000 - 400);
    expect(halved.reports).toEqual(['n2 ok']);
  });

  it('a rate-limited transfer longer than the stall timeout is not mistaken for a stall', () => {
    const sim = new SnapshotSim({ followers: ['n2'], snapshot: { ...SNAP, chunkSizes: chunks(30, 1000) }, rateBytesPerSec: 1000 });
    sim.want('n2');
    expect(sim.run()).toBeGreaterThan(STALL_TIMEOUT_MS);
    expect(grep(sim, /interrupted/)).toEqual([]);
    expect(sim.reports).toEqual(['n2 ok']);
  });

  it('at most K transfers run at once; the others wait their turn in order', () => {
    const sim = new SnapshotSim({ followers: ['n2', 'n3', 'n4'], snapshot: { ...SNAP, chunkSizes: chunks(5, 1000) }, rateBytesPerSec: 10_000, maxConcurrent: 1 });
    sim.want('n2');
    sim.want('n3');
    sim.want('n4');
    sim.want('n3'); // asked again while queued: still one transfer
    sim.run(100);
    expect(sim.sender.status().map((s) => s.peer)).toEqual(['n2']);
    expect(sim.sender.peers()).toEqual(['n2', 'n3', 'n4']);
    sim.run();
    expect(grep(sim, /begin|finished/)).toEqual([
      't=0ms n1→n2 begin index=10 term=2',
      't=400ms n1 finished n2 ok index=10 bytes=5000',
      't=400ms n1→n3 begin index=10 term=2',
      't=900ms n1 finished n3 ok index=10 bytes=5000',
      't=900ms n1→n4 begin index=10 term=2',
      't=1400ms n1 finished n4 ok index=10 bytes=5000',
    ]);
  });

  it('cancel (leadership lost, peer removed) ends a running transfer at once and takes a queued one out of line', () => {
    const sim = new SnapshotSim({ followers: ['n2', 'n3', 'n4'], snapshot: { ...SNAP, chunkSizes: chunks(10, 1000) }, rateBytesPerSec: 5000, maxConcurrent: 1 });
    sim.want('n2');
    sim.want('n3');
    sim.want('n4');
    sim.run(400);
    sim.cancel('n3', 'removed from the cluster'); // queued: never starts
    sim.cancel('n2', 'no longer the leader'); // running: hangs up now
    sim.run();
    expect(grep(sim, /begin|finished|closed/)).toEqual([
      't=0ms n1→n2 begin index=10 term=2',
      't=400ms n1 finished n3 failed index=0 bytes=0',
      't=400ms conn 1 closed (hang-up)',
      't=400ms n1 finished n2 failed index=10 bytes=3000',
      't=400ms n1→n4 begin index=10 term=2',
      // n2's pending token request went with it: n4 waits only for its own 10 000 bytes.
      't=2400ms conn 2 closed (hang-up)',
      't=2400ms n1 finished n4 ok index=10 bytes=10000',
    ]);
    expect(sim.reports).toEqual(['n3 failed', 'n2 failed', 'n4 ok']);
  });

  it('a connection lost while a fresh read opens ends the attempt at once (not after the stall timeout)', () => {
    const sender = new SnapshotSender({ maxConcurrent: 1, random: new Prng(1) });
    const step = (e: Parameters<SnapshotSender['step']>[0]) => sender.step(e, 0).map((a) => (a.type === 'log' ? `log ${a.msg}` : a.type === 'send' ? `send ${a.frame.t}` : a.type));
    expect(step({ type: 'want', msg: snapMessage('n1', 'n2') })).toEqual(['open']);
    expect(step({ type: 'opened', peer: 'n2', info: { index: 10, term: 2 } })).toEqual(['log snapshot transfer started', 'dial']);
    expect(step({ type: 'connected', peer: 'n2' })).toEqual(['send begin', 'setTimer']);
    expect(step({ type: 'frame', peer: 'n2', frame: { t: 'resume', offset: 0 } })).toEqual(['clearTimer', 'read']);
    expect(step({ type: 'chunkRead', peer: 'n2', data: new Uint8Array(100) })).toEqual(['takeTokens']);
    expect(step({ type: 'tokens', peer: 'n2', request: 1 })).toEqual(['send chunk', 'read']);
    expect(step({ type: 'disconnected', peer: 'n2', reason: 'reset' })).toEqual(['log snapshot transfer interrupted', 'hangUp', 'setTimer']);
    expect(step({ type: 'chunkRead', peer: 'n2', data: new Uint8Array(100) })).toEqual([]); // buffered for the next connection
    expect(step({ type: 'timer', peer: 'n2', timer: 'backoff' })).toEqual(['dial']);
    expect(step({ type: 'connected', peer: 'n2' })).toEqual(['send begin', 'setTimer']);
    // The receiver stages more than this read holds: a fresh read is opened before the next begin.
    expect(step({ type: 'frame', peer: 'n2', frame: { t: 'resume', offset: 5000 } })).toEqual(['log snapshot transfer restarts from the beginning', 'clearTimer', 'open']);
    expect(step({ type: 'frame', peer: 'n2', frame: { t: 'ack', offset: 5000 } })).toEqual([]); // nothing was asked
    expect(step({ type: 'disconnected', peer: 'n2', reason: 'reset' })).toEqual(['log snapshot transfer interrupted', 'hangUp', 'setTimer']);
  });

  it('past the queue limit a transfer is refused at once (reported failed to the core)', () => {
    const sender = new SnapshotSender({ maxConcurrent: 2, random: new Prng(1) });
    const peers = Array.from({ length: 2 + MAX_QUEUED_TRANSFERS + 1 }, (_, i) => `p${i}`);
    const actions = peers.flatMap((p) => sender.step({ type: 'want', msg: snapMessage('n1', p) }, 0));
    expect(actions.filter((a) => a.type === 'open').map((a) => a.peer)).toEqual(['p0', 'p1']);
    expect(actions.filter((a) => a.type === 'finished')).toEqual([{ type: 'finished', peer: peers.at(-1), ok: false, index: 0, bytes: 0, elapsedMs: 0 }]);
  });

  it('a peer that vanishes mid-transfer: bounded redials with back-off, then reported failed and its slot freed', () => {
    const sim = new SnapshotSim({ followers: ['n2', 'n3'], snapshot: { ...SNAP, chunkSizes: chunks(10, 1000) }, rateBytesPerSec: 5000, maxConcurrent: 1 });
    sim.want('n2');
    sim.want('n3');
    sim.run(500);
    sim.setUp('n2', false);
    sim.run();
    const dials = grep(sim, /dial n2/);
    expect(dials).toHaveLength(MAX_ATTEMPTS);
    expect(dials.slice(1).every((l) => l.endsWith('refused'))).toBe(true);
    expect(grep(sim, /failed;/)).toEqual([expect.stringContaining(`n1 warn "snapshot transfer failed; the core will ask again later" attempts=${MAX_ATTEMPTS}`)]);
    // Back-off is jittered and capped: the whole retry sequence is bounded in simulated time.
    const gaveUpAt = Number(/^t=(\d+)/.exec(grep(sim, /finished n2 failed/)[0]!)![1]);
    expect(gaveUpAt).toBeLessThan(500 + 200 + 400 + 800 + 1600 + 3200 + 5000 + 5000);
    expect(sim.reports).toEqual(['n2 failed', 'n3 ok']); // the slot went to n3
  });

  it('a peer that restarts mid-transfer (its stage lost) gets the snapshot from a fresh read', () => {
    const sim = new SnapshotSim({ followers: ['n2'], snapshot: { ...SNAP, chunkSizes: chunks(10, 1000) }, rateBytesPerSec: 5000 });
    sim.want('n2');
    sim.run(1000);
    sim.setUp('n2', false);
    sim.setUp('n2', true);
    sim.run();
    // The new process answers begin with offset 0: what the sender still buffers starts later, so
    // it captures a fresh read and announces it again.
    expect(grep(sim, /resume/)).toEqual(['t=0ms n2→n1 resume offset=0', 't=1139ms n2→n1 resume offset=0', 't=1139ms n2→n1 resume offset=0']);
    expect(sim.sendActions.filter((a) => a.type === 'log' && a.msg.startsWith('snapshot transfer restarts')).length).toBe(1);
    expect(sim.sendActions.filter((a) => a.type === 'open').length).toBe(2);
    // The token request the lost connection left behind was withdrawn: the new stream waits only
    // for its own first chunk's tokens (1 000 bytes at 5 000 B/s since t=1000ms), not for both.
    expect(grep(sim, /n1→n2 chunk offset=0 /)[1]).toBe('t=1200ms n1→n2 chunk offset=0 len=1000');
    sim.install('n2');
    sim.run(1000);
    expect(sim.follower('n2').installed).toEqual(sim.snapshotBytes());
  });

  it('a receiver that goes silent is dropped after the stall timeout and the transfer resumes once it answers', () => {
    const sim = new SnapshotSim({ followers: ['n2'], snapshot: { ...SNAP, chunkSizes: chunks(10, 1000) }, rateBytesPerSec: 5000 });
    sim.want('n2');
    sim.run(1000);
    sim.follower('n2').blackholed = true;
    sim.run(STALL_TIMEOUT_MS + 100);
    sim.follower('n2').blackholed = false;
    sim.run();
    const stall = grep(sim, /interrupted/);
    expect(stall).toEqual([expect.stringContaining(`err="no answer within ${STALL_TIMEOUT_MS} ms"`)]);
    expect(grep(sim, /resume offset=[1-9]/)).toHaveLength(1); // resumed, not restarted
    sim.install('n2');
    sim.run(1000);
    expect(sim.follower('n2').installed).toEqual(sim.snapshotBytes());
  });

  it('a new transfer of a snapshot the follower holds part of (an earlier transfer gave up) starts its stage over', () => {
    const sim = new SnapshotSim({ followers: ['n2'], snapshot: { ...SNAP, chunkSizes: chunks(10, 1000) }, rateBytesPerSec: 5000 });
    sim.want('n2');
    sim.run(1000);
    sim.follower('n2').blackholed = true; // connections open, nothing arrives: every attempt stalls
    sim.run(MAX_ATTEMPTS * (STALL_TIMEOUT_MS + 5000));
    expect(sim.reports).toEqual(['n2 failed']);
    expect(sim.follower('n2').machine.status()).toEqual([expect.objectContaining({ state: 'receiving', bytesDone: 6000 })]);
    sim.follower('n2').blackholed = false;
    sim.want('n2'); // the core asks again; the leader's applied state has not moved: same index and term
    sim.run();
    expect(grep(sim, /begin|resume/).slice(-4).map((l) => l.replace(/^t=\d+ms /, ''))).toEqual([
      'n1→n2 begin index=10 term=2',
      'n2→n1 resume offset=6000', // its partial stage: a new read cannot continue it
      'n1→n2 begin index=10 term=2 fresh', // so the sender asks it to start the stage over
      'n2→n1 resume offset=0',
    ]);
    sim.install('n2');
    sim.run(1000);
    expect(sim.reports).toEqual(['n2 failed', 'n2 ok']);
    expect(sim.follower('n2').installed).toEqual(sim.snapshotBytes());
  });

  it('an install that fails drops the staged copy; the next transfer stages afresh and installs', () => {
    const sim = new SnapshotSim({ followers: ['n2'], snapshot: { ...SNAP, chunkSizes: chunks(3) } });
    sim.follower('n2').failInstall = true;
    sim.want('n2');
    sim.run(1000);
    sim.install('n2');
    sim.run(1000);
    expect(sim.lines.slice(-3)).toEqual([
      't=0ms n2 stage dropped',
      't=0ms n2 error "snapshot install failed; the staged copy is dropped" err="disk full"',
      't=0ms n2 install failed: disk full',
    ]);
    sim.install('n2'); // asked again: nothing staged for it any more
    sim.run(1000);
    expect(sim.lines.at(-1)).toBe('t=0ms n2 install failed: no staged snapshot for index 10');
    sim.follower('n2').failInstall = false;
    sim.want('n2');
    sim.run(1000);
    sim.install('n2');
    sim.run(1000);
    expect(grep(sim, /resume/)).toEqual(['t=0ms n2→n1 resume offset=0', 't=0ms n2→n1 resume offset=0']);
    expect(sim.follower('n2').installed).toEqual(sim.snapshotBytes());
  });
});

describe('snapshot receiver machine', () => {
  const begin = (index = 10) => ({ t: 'begin', index, term: 2, msg: { ...snapMessage('n1', 'n2', index) } });
  const step = (r: SnapshotReceiver, e: Parameters<SnapshotReceiver['step']>[0]): string[] => r.step(e, 0).map(describeAction);

  it('answers begin after staging, and refuses garbage with fail + close, dropping the stage', () => {
    const r = new SnapshotReceiver('n2');
    expect(step(r, { type: 'connected', conn: 1, peer: 'n1' })).toEqual([]);
    expect(step(r, { type: 'frame', conn: 1, frame: begin() })).toEqual(['openWriter 10/2']);
    expect(step(r, { type: 'staged', bytesReceived: 0 })).toEqual(['log info receiving snapshot', 'send 1 resume offset=0']);
    expect(step(r, { type: 'frame', conn: 1, frame: { t: 'chunk', offset: 0, data: 'not bytes', crc: 0 } })).toEqual([
      'log warn snapshot stream refused',
      'send 1 fail "bad chunk frame"',
      'abortWriter',
      'closeConn 1 1008 bad chunk frame',
    ]);
    expect(step(r, { type: 'frame', conn: 1, frame: { t: 'chunk' } })).toEqual([]); // the connection is gone
    expect(r.status()).toEqual([]);
  });

  it('refuses a begin frame whose message is not addressed to it', () => {
    const r = new SnapshotReceiver('n3');
    step(r, { type: 'connected', conn: 1, peer: 'n1' });
    expect(step(r, { type: 'frame', conn: 1, frame: begin() })).toEqual([
      'log warn snapshot stream refused',
      'send 1 fail "bad snapshot message in begin frame"',
      'closeConn 1 1008 bad snapshot message in begin frame',
    ]);
  });

  it('asserts its driver contract: an I/O result is the next event', () => {
    const r = new SnapshotReceiver('n2');
    step(r, { type: 'connected', conn: 1, peer: 'n1' });
    step(r, { type: 'frame', conn: 1, frame: begin() });
    expect(() => r.step({ type: 'frame', conn: 1, frame: begin() }, 0)).toThrow(/while awaiting stage/);
  });
});

function snapMessage(from: string, to: string, index = 10): Message {
  return {
    type: MessageType.Snap, from, to, term: 2, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0,
    snapshot: { metadata: { index, term: 2, confState: { voters: [from, to], learners: [] } }, data: new Uint8Array(0) },
  };
}

function describeAction(a: ReceiveAction): string {
  switch (a.type) {
    case 'send':
      return `send ${a.conn} ${a.frame.t}${'offset' in a.frame ? ` offset=${a.frame.offset}` : ''}${'reason' in a.frame ? ` "${a.frame.reason}"` : ''}`;
    case 'closeConn':
      return `closeConn ${a.conn} ${a.code} ${a.reason}`;
    case 'openWriter':
      return `openWriter ${a.index}/${a.term}`;
    case 'log':
      return `log ${a.level} ${a.msg}`;
    default:
      return a.type;
  }
}

describe('snapshot transfer under random faults (seeded)', () => {
  /** Seeds run by default; SNAPSHOT_SIM_SEEDS=N runs more. */
  const SEEDS = Number(process.env.SNAPSHOT_SIM_SEEDS ?? 300);
  /**
   * Faults stop by then; every follower must have installed within LIVENESS_MS after, plus twice
   * the time its bytes take at the rate limit (a resend for each refused chunk at most), followers
   * one after another.
   */
  const FAULTS_UNTIL_MS = 20_000;
  const LIVENESS_MS = 30_000;

  /**
   * One seed: 1-3 followers, 1-2 transfers at once, a random snapshot, rate and fault flags, and
   * a schedule of follower restarts and silent periods during the first 20 s. Returns whether
   * every follower ended up with exactly the leader's bytes, and the transcript.
   */
  function runSeed(seed: number): { ok: boolean; faults: number; simMs: number; lines: string[] } {
    const rng = new Prng(seed);
    const followers = ['n2', 'n3', 'n4'].slice(0, 1 + rng.int(3));
    const chunkSizes = Array.from({ length: 1 + rng.int(30) }, () => 1 + rng.int(2000));
    const rateBytesPerSec = rng.int(2) === 0 ? 0 : 2000 + rng.int(50_000);
    const bytes = chunkSizes.reduce((a, b) => a + b, 0);
    const untilMs = FAULTS_UNTIL_MS + LIVENESS_MS + (rateBytesPerSec > 0 ? (2 * followers.length * bytes * 1000) / rateBytesPerSec : 0);
    const sim = new SnapshotSim({
      followers,
      snapshot: { ...SNAP, chunkSizes },
      rateBytesPerSec,
      maxConcurrent: 1 + rng.int(2),
      faults: { ...(rng.int(2) === 0 ? { corruptEveryNthChunk: 2 + rng.int(4) } : {}), ...(rng.int(2) === 0 ? { cutAfterChunks: 1 + rng.int(10) } : {}) },
      seed,
    });
    const faults = 1 + rng.int(4);
    for (let i = 0; i < faults; i++) {
      const id = followers[rng.int(followers.length)]!;
      const at = rng.int(FAULTS_UNTIL_MS - 5000);
      const forMs = 1 + rng.int(5000);
      const silent = rng.int(2) === 0;
      sim.clock.setTimer(at, () => (silent ? (sim.follower(id).blackholed = true) : sim.setUp(id, false)));
      sim.clock.setTimer(at + forMs, () => (silent ? (sim.follower(id).blackholed = false) : sim.setUp(id, true)));
    }
    for (const id of followers) sim.want(id);
    // Like the cores, every 500 ms: a follower's installs what was delivered; the leader's asks
    // again for a follower still behind once no transfer to it runs (a failed one, or one whose
    // delivered copy the follower lost in a restart before installing it).
    const behind = () => followers.filter((id) => !sim.follower(id).installed);
    const cores = (): void => {
      for (const id of behind()) {
        const f = sim.follower(id);
        if (f.up && f.delivered) sim.install(id);
        else if (!sim.sender.peers().includes(id)) sim.want(id);
      }
      if (behind().length > 0 && sim.clock.nowMs() < untilMs) sim.clock.setTimer(500, cores);
    };
    sim.clock.setTimer(500, cores);
    const simMs = sim.run(untilMs);
    const want = Buffer.from(sim.snapshotBytes());
    const ok = followers.every((id) => sim.follower(id).installed !== undefined && Buffer.from(sim.follower(id).installed!).equals(want));
    return { ok, faults, simMs, lines: sim.lines };
  }

  it(`${SEEDS} seeds: every follower ends with exactly the leader's snapshot once faults heal`, () => {
    const failed: string[] = [];
    const stats = { simMs: 0, faults: 0 };
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = runSeed(seed);
      stats.simMs += r.simMs;
      stats.faults += r.faults;
      if (!r.ok) failed.push(`seed ${seed} (replay: runSeed(${seed})):\n${r.lines.slice(-30).join('\n')}`);
    }
    expect(failed.slice(0, 1)).toEqual([]);
    if (process.env.SNAPSHOT_SIM_STATS) console.log(`${SEEDS} seeds, ${Math.round(stats.simMs / 1000)} simulated s, ${stats.faults} faults`);
  });
});
