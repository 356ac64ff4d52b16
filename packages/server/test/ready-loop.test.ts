// The order in which one Ready is handled (ready-loop.ts), against a fake host that records each
// effect: persist before send (except the leader's send-while-persisting, never with a new term or
// vote), a snapshot after everything before it applied, apply only persisted entries, advance last.
import { describe, expect, it } from 'vitest';
import { EntryType, MessageType, type Entry, type HardState, type Message, type Ready, type Role } from '@quorumkv/raft';
import { handleReady, type ReadyEffects } from '../src/ready-loop.js';
import { HostAssertionError } from '../src/host-assert.js';
import type { HostPlant } from '../src/host-world.js';

function entry(index: number, term = 2): Entry {
  return { index, term, type: EntryType.Normal, data: new Uint8Array(0) };
}
const msg: Message = { type: MessageType.App, to: 'n2', from: 'n1', term: 2 } as Message;

function ready(over: Partial<Ready>): Ready {
  return { entries: [], committedEntries: [], messages: [msg], readStates: [], mustSync: false, ...over };
}

/** A host that logs each effect; its role is `role` (after any soft state) and its disk holds `persisted`. */
function host(opts: { role: Role; persisted?: HardState; lastIndex?: number; plant?: HostPlant }) {
  const log: string[] = [];
  let role = opts.role;
  let last = opts.lastIndex ?? 0;
  const fx: ReadyEffects = {
    plant: opts.plant,
    persistedHardState: () => opts.persisted ?? { term: 2, vote: 'n1', commit: 0 },
    onSoftState: (r) => {
      role = r;
      log.push(`role ${r}`);
    },
    role: () => role,
    send: (msgs) => log.push(`send ${msgs.length}`),
    appliedAndWritten: async () => void log.push('drain applies'),
    installSnapshot: async (s) => {
      last = s.metadata.index;
      log.push(`install ${s.metadata.index}`);
    },
    persist: async (rd) => {
      if (rd.entries.length > 0) last = rd.entries[rd.entries.length - 1]!.index;
      log.push(`persist ${rd.entries.length}${rd.hardState ? ' +hs' : ''}`);
    },
    keepCommitInMemory: (hs) => log.push(`commit ${hs.commit} in memory`),
    lastIndex: () => last,
    queueApply: async (es) => void log.push(`apply ${es.map((e) => e.index).join(',')}`),
    onReadStates: () => log.push('read states'),
    advance: () => log.push('advance'),
  };
  return { fx, log };
}

describe('handleReady', () => {
  it('a follower persists before it sends, then applies, then advances', async () => {
    const h = host({ role: 'follower' });
    await handleReady(ready({ entries: [entry(1), entry(2)], committedEntries: [entry(1)], mustSync: true }), h.fx);
    expect(h.log).toEqual(['persist 2', 'send 1', 'apply 1', 'read states', 'advance']);
  });

  it('a leader sends while its own write is in flight when the term and vote are unchanged', async () => {
    const h = host({ role: 'leader' });
    await handleReady(ready({ entries: [entry(3)], hardState: { term: 2, vote: 'n1', commit: 2 }, committedEntries: [entry(2)] }), h.fx);
    expect(h.log).toEqual(['send 1', 'persist 1 +hs', 'apply 2', 'read states', 'advance']);
  });

  it('a leader whose Ready carries a new term persists it before any message leaves', async () => {
    const h = host({ role: 'candidate', persisted: { term: 2, vote: 'n1', commit: 0 } });
    await handleReady(ready({ softState: { role: 'leader', lead: 'n1' }, entries: [entry(1, 3)], hardState: { term: 3, vote: 'n1', commit: 0 } }), h.fx);
    expect(h.log).toEqual(['role leader', 'persist 1 +hs', 'send 1', 'read states', 'advance']);
  });

  it('a vote is durable before the vote response leaves', async () => {
    const h = host({ role: 'follower', persisted: { term: 3, vote: '', commit: 0 } });
    await handleReady(ready({ hardState: { term: 3, vote: 'n2', commit: 0 } }), h.fx);
    expect(h.log).toEqual(['persist 0 +hs', 'send 1', 'read states', 'advance']);
  });

  it('a commit-only hard state is kept in memory, not written', async () => {
    const h = host({ role: 'follower', lastIndex: 5 });
    await handleReady(ready({ hardState: { term: 2, vote: 'n1', commit: 5 }, committedEntries: [entry(5)], messages: [] }), h.fx);
    expect(h.log).toEqual(['commit 5 in memory', 'send 0', 'apply 5', 'read states', 'advance']);
  });

  it('a snapshot is installed after every earlier batch applied, and before the entries after it persist', async () => {
    const h = host({ role: 'follower' });
    const snapshot = { metadata: { index: 10, term: 2, confState: { voters: ['n1'], learners: [] } }, data: new Uint8Array(0) };
    await handleReady(ready({ snapshot, entries: [entry(11)], mustSync: true }), h.fx);
    expect(h.log).toEqual(['drain applies', 'install 10', 'persist 1', 'send 1', 'read states', 'advance']);
  });

  it('refuses to apply a committed entry the log here does not hold (programmer error)', async () => {
    const h = host({ role: 'follower', lastIndex: 3 });
    await expect(handleReady(ready({ committedEntries: [entry(4)] }), h.fx)).rejects.toThrow(HostAssertionError);
    expect(h.log).not.toContain('advance');
  });

  it('the planted send-before-persist-on-term-change sends first even with a new term (the simulation must catch it)', async () => {
    const h = host({ role: 'follower', persisted: { term: 3, vote: '', commit: 0 }, plant: 'send-before-persist-on-term-change' });
    await handleReady(ready({ hardState: { term: 3, vote: 'n2', commit: 0 } }), h.fx);
    expect(h.log.slice(0, 2)).toEqual(['send 1', 'persist 0 +hs']);
  });
});
