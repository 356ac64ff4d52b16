// Stored bytes are pinned: a fixed workload (puts with and without sessions, deletes, cas that
// succeed and fail, bad commands, no-ops, a membership change, session expiry, values of every
// bin size class, revisions past 2^16) must leave exactly the records it left when every value
// was encoded by msgpackr's generic pack(). The golden digests were taken with msgpackr encoding
// everything (commit 2e95d45); a change of encoder that changes a byte fails here, as would any
// change of the record layout (then the format version must change too).
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { EntryType } from '@quorumkv/raft';
import { type ApplyItem, type Command, type LogEntry, MemoryDisk, encodeCommand, openMemoryNodeStore } from '@quorumkv/storage';
import { unseal } from '../src/checksum.js';
import { pack, unpack } from '../src/codec.js';
import { xorshift32 } from '@quorumkv/testkit';

/**
 * sha256 of every record of the disk, namespace by namespace, in key order. Re-taken for storage
 * format 2 (log and meta records sealed with a CRC-32); the state hash did not move, and every
 * payload is still checked against msgpackr below. Both re-taken for format 3: revisions are the
 * state machine's own counter (no-ops, membership changes, failed cas and deletes of nothing do not
 * take one), so every stored revision moved; the applied record holds the revision fields; the
 * `history` namespace holds every version by revision. Both re-taken for format 4: cas runs as a
 * transaction, and a transaction that changes nothing (a cas deleting an absent key) takes no
 * revision (etcd's rule), so revisions moved again (41,445 → 41,072), and the format record says 4.
 * With that one rule reverted and the format record at 3, the cas-as-transaction build wrote
 * exactly the format-3 golden bytes (checked by hand when the change was made).
 */
const GOLDEN_DISK_SHA256 = 'ac11fadd33761754297f86b3acf4ad05c89f9de2fb4d16a9539fa52b7a56a359';
/** stateHash() after the workload. */
const GOLDEN_STATE_HASH = 'bcb05ad6adbc0efe53a29f09515ccd64dde3370263ad3341cf82c730fd4bc382';

const NAMESPACES = ['log', 'meta', 'kv', 'sessions', 'history'] as const;
/** Entries of the workload (past 2^16, so indexes take every uint size class up to uint32). */
const ENTRIES = 70_000;
/** Entries applied (and appended) per batch. */
const BATCH = 500;

function workload(): { items: ApplyItem[]; entries: LogEntry[] } {
  const rand = xorshift32(42);
  const int = (n: number) => Math.floor(rand() * n);
  const items: ApplyItem[] = [];
  const entries: LogEntry[] = [];
  const seqs = new Map<string, number>();
  const valueSizes = [0, 1, 31, 32, 255, 256, 1000, 65535, 65536];
  let timeMs = 1_763_000_000_000;
  let pauses = 0;
  for (let index = 1; index <= ENTRIES; index++) {
    const term = 1 + Math.floor(index / 20_000);
    const key = new TextEncoder().encode(`k${int(300)}`);
    let data: Uint8Array;
    const r = rand();
    if (index === 1000) {
      const membership = { voters: [{ id: 'n1', address: '127.0.0.1:7001' }, { id: 'n2', address: '127.0.0.1:7002', zone: 'z' }], learners: [] };
      items.push({ kind: 'membership', index, term, data: new Uint8Array([1, 2, 3]), membership });
      entries.push({ index, term, type: EntryType.ConfChange, data: new Uint8Array([1, 2, 3]) });
      continue;
    }
    if (r < 0.01) data = new Uint8Array(0); // leader no-op
    else if (r < 0.02) data = new Uint8Array([0xc1, int(256)]); // not a command
    else {
      if (rand() < 0.0005) {
        // Now and then a pause that expires every session; the clients then open new ones.
        timeMs += 120_000;
        seqs.clear();
        pauses++;
      }
      timeMs += int(50);
      const size = rand() < 0.002 ? (valueSizes[int(valueSizes.length)] as number) : int(100);
      const value = new Uint8Array(size).fill(index & 0xff);
      const c = rand();
      let cmd: Command =
        c < 0.6
          ? { op: 'put', key, value }
          : c < 0.8
            ? { op: 'del', key }
            : { op: 'cas', key, cond: rand() < 0.5 ? { modRevision: int(index) } : { absent: true }, then: rand() < 0.7 ? { op: 'put', value } : { op: 'del' } };
      cmd = { ...cmd, timeMs };
      if (rand() < 0.8) {
        const id = `client-${int(40)}-${pauses}-é`;
        const seq = (seqs.get(id) ?? 0) + (rand() < 0.05 ? 0 : 1); // sometimes a retry
        seqs.set(id, seq);
        cmd = { ...cmd, session: { id, seq, ackedBelow: Math.min(seq, Math.max(1, seq - int(8))) } };
      }
      data = encodeCommand(cmd);
    }
    items.push({ kind: 'entry', index, term, data });
    entries.push({ index, term, type: EntryType.Normal, data });
  }
  return { items, entries };
}

describe('stored bytes do not depend on the encoder', () => {
  test('a fixed workload leaves the golden records and state hash', async () => {
    const disk = new MemoryDisk();
    const store = await openMemoryNodeStore(disk, { kv: { sessionTtlMs: 60_000, maxResultsPerSession: 16, maxSessions: 30 } });
    const { items, entries } = workload();
    for (let i = 0; i < items.length; i += BATCH) {
      const batch = entries.slice(i, i + BATCH);
      await store.log.append({ hardState: { term: (batch.at(-1) as LogEntry).term, vote: 'n1', commit: i }, entries: batch, sync: false });
      await store.kv.apply(items.slice(i, i + BATCH));
    }
    const stateHash = await store.kv.stateHash();
    // Entries pass 2^16 (indexes take the uint32 class); revisions, which only writes take, stop below it.
    expect(store.kv.applied().revision).toBe(41_072);
    await store.close();

    const digest = createHash('sha256');
    for (const ns of NAMESPACES) {
      const records = [...disk.data[ns].entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      for (const [, [key, value]] of records) {
        // Every stored value is exactly msgpackr's encoding of what it decodes to (after the
        // checksum seal of log and meta records, checked here too).
        const sealed = ns === 'log' || (ns === 'meta' && Buffer.from(key).toString() !== 'format');
        const body = sealed ? unseal('golden', ns, key, value) : value;
        const tombstone = ns === 'history' && body.length === 0; // a delete's version: no bytes
        if (!tombstone) expect(Buffer.from(pack(unpack(body))).equals(Buffer.from(body)), `${ns} record ${Buffer.from(key).toString('hex')}`).toBe(true);
        digest.update(`${ns}:${key.length}:${value.length}:`).update(key).update(value);
      }
    }
    // The stored results cover every ApplyResult variant a session keeps (errors are not kept).
    const kinds = new Set<string>();
    const kind = (r: Record<string, unknown>) => kinds.add(r['op'] === 'error' ? `error/${String(r['code'])}` : `${String(r['op'])}/${String(r['succeeded'] ?? '')}/${'current' in r}`);
    for (const [, value] of disk.data.sessions.values()) {
      const raw = unpack(value);
      if (Array.isArray(raw)) for (const r of raw[3] as (Uint8Array | null)[]) r && kind(unpack(r) as Record<string, unknown>);
      else kind(raw as Record<string, unknown>);
    }
    expect([...kinds].sort()).toEqual(['cas/false/false', 'cas/false/true', 'cas/true/false', 'del//false', 'put//false']);
    expect({ disk: digest.digest('hex'), stateHash }).toEqual({ disk: GOLDEN_DISK_SHA256, stateHash: GOLDEN_STATE_HASH });
  });
});
