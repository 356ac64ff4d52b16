import type { AddressInfo } from 'node:net';
import { MessageType } from '@quorumkv/raft';
import { FrameError, HELLO_HEADER, decodeFrame, defaultLimits } from '@quorumkv/transport';
import { describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { sendForgedFrame } from '../src/forger.js';
import type { FrameContext, HostileEnv } from '../src/hostile-peer.js';
import { buildHostileFrame, describeCampaign, startHostilePeer } from '../src/hostile-peer.js';
import type { HostileFrameKind } from '../src/nemesis.js';
import { HOSTILE_FRAME_KINDS, hostilePeerFault } from '../src/nemesis.js';
import { createRng } from '../src/random.js';

const ctx = (seed = 1): FrameContext => ({ target: 'n2', claimFrom: 'n3', otherMember: 'n1', term: 7, commitIndex: 120, rng: createRng(seed) });
const build = (kind: HostileFrameKind, seed = 1) => buildHostileFrame(kind, ctx(seed));
const only = (bytes: Uint8Array) => {
  const [m, ...rest] = decodeFrame(bytes);
  expect(rest).toEqual([]);
  return m!;
};

describe('hostile frames', () => {
  it('every kind builds, with a description for the frame log', () => {
    for (const k of HOSTILE_FRAME_KINDS) expect(build(k).what).not.toBe('');
  });

  it('garbage and oversized frames are not frames; oversized is one byte over the frame limit', () => {
    for (let seed = 0; seed < 20; seed++) expect(() => decodeFrame(build('garbage', seed).bytes)).toThrow(FrameError);
    expect(build('oversized').bytes.byteLength).toBe(defaultLimits.maxFrameBytes + 1);
  });

  it('malformed frames break the codec or the rules of an append (a gap, an entry term above the message term)', () => {
    for (let seed = 0; seed < 40; seed++) {
      const f = build('malformed', seed);
      let m;
      try {
        m = only(f.bytes);
      } catch (err) {
        expect(err, f.what).toBeInstanceOf(FrameError);
        continue;
      }
      // Codec-valid: then an append that no correct leader sends.
      expect(m.type).toBe(MessageType.App);
      const e = m.entries[0]!;
      expect(e.index !== m.index + 1 || e.term > m.term, f.what).toBe(true);
    }
  });

  it('out-of-authority frames are well-formed and claim what their sender may not', () => {
    const wrongFrom = only(build('wrong-from').bytes);
    expect([wrongFrom.type, wrongFrom.from, wrongFrom.to]).toEqual([MessageType.Heartbeat, 'n1', 'n2']); // the hello says n3
    const tn = only(build('timeout-now').bytes);
    expect([tn.type, tn.from, tn.to, tn.term]).toEqual([MessageType.TimeoutNow, 'n3', 'n2', 7]);
    const app = only(build('conflicting-append').bytes);
    expect([app.type, app.index, app.entries[0]!.index, app.entries[0]!.term]).toEqual([MessageType.App, 0, 1, 7]); // entry 1 is long committed
    const resp = only(build('append-resp-beyond-last').bytes);
    expect([resp.type, resp.reject]).toEqual([MessageType.AppResp, false]);
    expect(resp.index).toBeGreaterThan(120 + 1000);
  });
});

/** A fake cluster for the campaign: n1 leads; `down` nodes do not answer their status. */
function fakeEnv(down: string[] = []): HostileEnv & { sent: { to: string; from: string }[] } {
  const sent: { to: string; from: string }[] = [];
  return {
    sent,
    view: async () => ({ nodes: ['n1', 'n2', 'n3'], leader: 'n1' }),
    state: async (n) => (down.includes(n) ? undefined : { term: 3, commitIndex: 50 }),
    target: (node, from) => ({ port: 1, to: node, from, secret: 's', incarnation: 'a'.repeat(32) }),
    send: async (t) => {
      sent.push({ to: t.to, from: t.from });
      return { result: 'closed', code: 4400, reason: 'bad frame' };
    },
    record: () => undefined,
    sleep: async () => undefined,
  };
}

describe('hostile-peer campaign', () => {
  it('sends the plan, never as the target itself, TimeoutNow never as the leader, and skips nodes that are down', async () => {
    const fault = hostilePeerFault(['n1', 'n2', 'n3'], createRng(11));
    if (fault.kind !== 'hostile-peer') throw new Error('unreachable');
    // stop() right away ends the campaign after the frame in flight.
    expect((await startHostilePeer('e1', fault, fakeEnv()).stop()).length).toBeLessThanOrEqual(1);
    const env2 = fakeEnv(['n3']);
    const campaign = startHostilePeer('e2', fault, env2);
    await new Promise((r) => setTimeout(r, 20));
    const all = await campaign.stop();
    expect(all).toHaveLength(fault.frames.length);
    for (const r of all) {
      if (r.target === 'n3') expect(r.outcome.result).toBe('skipped');
      else expect(r.claimFrom).not.toBe(r.target);
      if (r.kind === 'timeout-now' && r.claimFrom !== null) expect(r.claimFrom).not.toBe('n1');
    }
    expect(env2.sent.length).toBe(all.filter((r) => r.outcome.result !== 'skipped').length);
    expect(describeCampaign(all)).toMatch(/^\d+ hostile frames: \d+ closed, \d+ skipped$/);
  });
});

describe('forger', () => {
  it('opens /raft with a signed hello, sends the frame and reports how the node closed the connection', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/raft' });
    await new Promise((r) => wss.once('listening', r));
    const port = (wss.address() as AddressInfo).port;
    const hellos: Record<string, unknown>[] = [];
    wss.on('connection', (ws, req) => {
      hellos.push(JSON.parse(Buffer.from(String(req.headers[HELLO_HEADER]), 'base64url').toString()) as Record<string, unknown>);
      ws.on('message', (data) => ws.close(4400, `bad frame of ${(data as Buffer).length} bytes`));
    });
    try {
      const out = await sendForgedFrame({ port, to: 'n2', from: 'n3', secret: 'a-secret-of-enough-length', incarnation: 'b'.repeat(32) }, new Uint8Array([1, 2, 3]));
      expect(out).toEqual({ result: 'closed', code: 4400, reason: 'bad frame of 3 bytes' });
      expect(hellos[0]).toMatchObject({ from: 'n3', to: 'n2', channel: 'raft', incarnation: 'b'.repeat(32) });
      expect(hellos[0]!.mac).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await new Promise((r) => wss.close(r));
    }
    // Nobody listening any more: refused, not an exception.
    expect((await sendForgedFrame({ port, to: 'n2', from: 'n3', secret: null, incarnation: 'b'.repeat(32) }, new Uint8Array([1]))).result).toBe('refused');
  });
});
