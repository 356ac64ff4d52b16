// Incarnation ids, peer pins and the founding decision (docs/server.md, "Who a node is").
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FoundingRefusedError, decideFounding, type FoundingAnswer } from '../src/founding.js';
import { IdentityFileError, PeerPins, openIncarnation } from '../src/identity.js';
import { createLogger } from '../src/logger.js';

const fresh = () => mkdtempSync(path.join(tmpdir(), 'qkv-identity-'));
const INC = (c: string) => c.repeat(32);

describe('incarnation file', () => {
  it('is made once, durably, and read back the same', () => {
    const d = fresh();
    const a = openIncarnation(d);
    expect(a.created).toBe(true);
    expect(a.incarnation).toMatch(/^[0-9a-f]{32}$/);
    expect(openIncarnation(d)).toEqual({ incarnation: a.incarnation, created: false });
    expect(openIncarnation(fresh()).incarnation).not.toBe(a.incarnation);
  });

  it('that is damaged is a clear error, never a new incarnation', () => {
    const d = fresh();
    openIncarnation(d);
    const f = path.join(d, 'INCARNATION');
    writeFileSync(f, readFileSync(f, 'utf8').replace(/^./, (c) => (c === '0' ? '1' : '0')));
    expect(() => openIncarnation(d)).toThrow(IdentityFileError);
    expect(() => openIncarnation(d)).toThrow(/checksum mismatch/);
  });
});

describe('peer pins', () => {
  it('persist; a removal clears only pins made before it; a damaged file refuses to load', () => {
    const d = fresh();
    const p = PeerPins.open(d);
    p.pin('n2', INC('a'), 5);
    p.pin('n3', INC('b'), 50, true);
    const q = PeerPins.open(d);
    expect([q.get('n2'), q.get('n3'), q.isFoundingPartner('n3'), q.isFoundingPartner('n2')]).toEqual([INC('a'), INC('b'), true, false]);
    expect(q.clear('n3', 40)).toBe(false); // replaying an older removal keeps the newer pin
    expect(q.clear('n2', 6)).toBe(true);
    expect(PeerPins.open(d).get('n2')).toBeUndefined();
    writeFileSync(path.join(d, 'PEER_INCARNATIONS'), readFileSync(path.join(d, 'PEER_INCARNATIONS'), 'utf8').replace('b', 'c'));
    expect(() => PeerPins.open(d)).toThrow(IdentityFileError);
  });
});

describe('founding decision', () => {
  const self = { id: 'n1', address: '127.0.0.1:7001' };
  const peers = [self, { id: 'n2', address: '127.0.0.1:7002' }, { id: 'n3', address: '127.0.0.1:7003' }];
  const mine = INC('1');
  const log = createLogger('n1', 'silent');
  const answer = (a: Partial<FoundingAnswer>): FoundingAnswer => ({ founded: false, member: false, incarnation: null, foundingPartner: false, self: INC('9'), ...a });
  const decide = (answers: Record<string, FoundingAnswer | Error>, isStopped = () => false) =>
    decideFounding({
      self,
      incarnation: mine,
      peers,
      log,
      isStopped,
      probe: async (p) => {
        const a = answers[p.id];
        if (a instanceof Error || a === undefined) throw a ?? new Error('unreachable');
        return a;
      },
    });

  it('founds once a majority (itself included) is not founded, pinning the partners that counted', async () => {
    expect(await decide({ n2: answer({ self: INC('2') }), n3: new Error('connect ECONNREFUSED') })).toEqual({ kind: 'found', partners: [{ id: 'n2', incarnation: INC('2') }] });
  });

  it('refuses to start when a founded peer knows this member under another incarnation, naming the peer and the procedure', async () => {
    const e = await decide({ n2: answer({ founded: true, member: true, incarnation: INC('7') }), n3: answer({}) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FoundingRefusedError);
    expect((e as Error).message).toMatch(/n2 belongs to a founded cluster in which n1 is incarnation 77777777/);
    expect((e as Error).message).toMatch(/member remove n1.*member add n1 127\.0\.0\.1:7001 --learner.*member promote n1/);
  });

  it('founds too as a founding partner; otherwise a founded peer means start empty', async () => {
    expect(await decide({ n2: answer({ founded: true, member: true, incarnation: mine, foundingPartner: true }), n3: new Error('down') })).toEqual({ kind: 'found', partners: [] });
    expect(await decide({ n2: answer({ founded: true, member: true }), n3: new Error('down') })).toEqual({ kind: 'join' });
    expect(await decide({ n2: answer({ founded: true, member: true, incarnation: mine }), n3: new Error('down') })).toEqual({ kind: 'join' });
    expect(await decide({ n2: answer({ founded: true, member: false }), n3: new Error('down') })).toEqual({ kind: 'join' });
  });

  it('never founds without a majority: unreachable peers mean wait', async () => {
    let rounds = 0;
    const e = await decide({ n2: new Error('down'), n3: { nonsense: true } as unknown as FoundingAnswer }, () => ++rounds > 2).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FoundingRefusedError);
    expect((e as Error).message).toMatch(/stopped before/);
  });
});
