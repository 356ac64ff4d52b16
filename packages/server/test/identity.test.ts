// Incarnation ids, peer pins and the founding decision (docs/server.md, "Who a node is").
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FoundingRefusedError, decideFounding, type FoundingAnswer } from '../src/founding.js';
import { IdentityFileError, PeerPins, adoptClusterId, foundingPromised, openIncarnation, readClusterId, recordFoundingPromise, writeClusterId } from '../src/identity.js';
import { createLogger } from '../src/logger.js';
import { fsIdentityFiles } from '../src/durable-file.js';
import { randomBytes } from 'node:crypto';
import { createRealClock } from '../src/world.js';

const newInc = () => randomBytes(16).toString('hex');

const fresh = () => mkdtempSync(path.join(tmpdir(), 'qkv-identity-'));
const INC = (c: string) => c.repeat(32);

describe('incarnation file', () => {
  it('is made once, durably, and read back the same', () => {
    const d = fresh();
    const a = openIncarnation(fsIdentityFiles(d), newInc);
    expect(a.created).toBe(true);
    expect(a.incarnation).toMatch(/^[0-9a-f]{32}$/);
    expect(openIncarnation(fsIdentityFiles(d), newInc)).toEqual({ incarnation: a.incarnation, created: false });
    expect(openIncarnation(fsIdentityFiles(fresh()), newInc).incarnation).not.toBe(a.incarnation);
  });

  it('that is damaged is a clear error, never a new incarnation', () => {
    const d = fresh();
    openIncarnation(fsIdentityFiles(d), newInc);
    const f = path.join(d, 'INCARNATION');
    writeFileSync(f, readFileSync(f, 'utf8').replace(/^./, (c) => (c === '0' ? '1' : '0')));
    expect(() => openIncarnation(fsIdentityFiles(d), newInc)).toThrow(IdentityFileError);
    expect(() => openIncarnation(fsIdentityFiles(d), newInc)).toThrow(/checksum mismatch/);
  });
});

describe('founding promise', () => {
  it('is remembered across a restart', () => {
    const d = fresh();
    expect(foundingPromised(fsIdentityFiles(d))).toBe(false);
    recordFoundingPromise(fsIdentityFiles(d));
    expect(foundingPromised(fsIdentityFiles(d))).toBe(true);
  });
});

describe('peer pins', () => {
  it('persist; a removal clears only pins made before it; a damaged file refuses to load', () => {
    const d = fresh();
    const p = PeerPins.open(fsIdentityFiles(d));
    p.pin('n2', INC('a'), 5);
    p.pin('n3', INC('b'), 50);
    const q = PeerPins.open(fsIdentityFiles(d));
    expect([q.get('n2'), q.get('n3')]).toEqual([INC('a'), INC('b')]);
    expect(q.clear('n3', 40)).toBe(false); // replaying an older removal keeps the newer pin
    expect(q.clear('n2', 6)).toBe(true);
    expect(PeerPins.open(fsIdentityFiles(d)).get('n2')).toBeUndefined();
    writeFileSync(path.join(d, 'PEER_INCARNATIONS'), readFileSync(path.join(d, 'PEER_INCARNATIONS'), 'utf8').replace('b', 'c'));
    expect(() => PeerPins.open(fsIdentityFiles(d))).toThrow(IdentityFileError);
  });
});

describe('founding decision', () => {
  const self = { id: 'n1', address: '127.0.0.1:7001' };
  const peers = [self, { id: 'n2', address: '127.0.0.1:7002' }, { id: 'n3', address: '127.0.0.1:7003' }];
  const mine = INC('1');
  const log = createLogger('n1', 'silent');
  const answer = (a: Partial<FoundingAnswer>): FoundingAnswer => ({ founded: 'no', member: false, incarnation: null, self: INC('9'), ...a });
  const decide = (answers: Record<string, FoundingAnswer | Error>, opts: { committed?: boolean; isStopped?: () => boolean } = {}) =>
    decideFounding({
      self,
      incarnation: mine,
      peers,
      log,
      committed: () => opts.committed ?? false,
      isStopped: opts.isStopped ?? (() => false),
      clock: createRealClock(),
      probe: async (p) => {
        const a = answers[p.id];
        if (a instanceof Error || a === undefined) throw a ?? new Error('unreachable');
        return a;
      },
    });
  const founded = (a: Partial<FoundingAnswer> = {}) => answer({ founded: 'yes', member: true, ...a });

  it('founds once a majority (itself included) is not founded, returning the partners that counted', async () => {
    expect(await decide({ n2: answer({ self: INC('2') }), n3: new Error('connect ECONNREFUSED') })).toEqual({ kind: 'found', partners: [{ id: 'n2', incarnation: INC('2') }] });
  });

  it('refuses to start when a founded peer knows this member under another incarnation, naming the peer and the procedure', async () => {
    const e = await decide({ n2: founded({ incarnation: INC('7') }), n3: answer({}) }, { committed: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FoundingRefusedError);
    expect((e as Error).message).toMatch(/n2 belongs to a founded cluster in which n1 is incarnation 77777777/);
    expect((e as Error).message).toMatch(/member remove n1.*member add n1 127\.0\.0\.1:7001 --learner.*member promote n1/);
  });

  it('founds too once committed (it answered "not founded" to a founder); else a founded peer means start empty', async () => {
    const down = new Error('down');
    expect(await decide({ n2: founded(), n3: down }, { committed: true })).toEqual({ kind: 'found', partners: [] });
    expect(await decide({ n2: founded({ incarnation: mine }), n3: down }, { committed: true })).toEqual({ kind: 'found', partners: [] });
    expect(await decide({ n2: founded(), n3: down })).toEqual({ kind: 'join', member: true });
    expect(await decide({ n2: founded({ member: false }), n3: down }, { committed: true })).toEqual({ kind: 'join', member: false });
  });

  it('never founds without a majority: unreachable, malformed and waiting peers mean wait', async () => {
    let rounds = 0;
    const e = await decide({ n2: answer({ founded: 'waiting' }), n3: { nonsense: true } as unknown as FoundingAnswer }, { isStopped: () => ++rounds > 2 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FoundingRefusedError);
    expect((e as Error).message).toMatch(/stopped before/);
  });
});

describe('cluster id adoption', () => {
  const A = 'a'.repeat(32);
  const B = 'b'.repeat(32);

  it('adopts a trusted peer\'s id once, durably, and never overwrites one', () => {
    const files = fsIdentityFiles(fresh());
    expect(adoptClusterId(files, null, A, true)).toBe(A);
    expect(readClusterId(files)).toBe(A);
    // Holding one (adopted or founded), a node never takes another.
    expect(adoptClusterId(files, readClusterId(files), B, true)).toBeNull();
    expect(readClusterId(files)).toBe(A);
    const founded = fsIdentityFiles(fresh());
    writeClusterId(founded, B);
    expect(adoptClusterId(founded, B, A, true)).toBeNull();
    expect(readClusterId(founded)).toBe(B);
  });

  it('adopts nothing from an untrusted peer, an empty id or a malformed one', () => {
    const files = fsIdentityFiles(fresh());
    expect(adoptClusterId(files, null, A, false)).toBeNull();
    expect(adoptClusterId(files, null, '', true)).toBeNull();
    expect(adoptClusterId(files, null, 'xyz', true)).toBeNull();
    expect(readClusterId(files)).toBeNull();
  });
});
