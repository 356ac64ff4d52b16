// Peer connections before the handshake: the hello header an acceptor checks before it upgrades a
// `/raft`, snapshot or probe connection (transport handshake.ts, the function PeerTransport runs
// on every upgrade). Generated hellos vary every field (sender, target, channel, age, cluster id,
// incarnation, secret — right, wrong, none), then some are raw-mutated (base64url text or the JSON
// inside). Invariants: the check never throws; it accepts only a hello from a known peer to this
// node on a served channel, with the right secret; a refusal carries a close code and a reason
// that fits a WebSocket close frame; the bounded replay cache keeps accepting fresh hellos.
import fc from 'fast-check';
import { CHANNELS, CloseCode, MAX_CLOSE_REASON_BYTES, ReplayCache, fitCloseReason, createHelloHeader, defaultLimits, verifyHelloHeader, type HelloCheck } from '@quorumkv/transport';
import { FuzzViolation, type FuzzTarget, type Outcome, type Surface } from '../runner.js';
import { applyEdits, byteEdit, MUTATIONS_MAX, type ByteEdit } from '../mutate.js';

const SECRET = 'fuzz-peer-hello-secret-0123456789';
const SELF = 'n1';
const PEERS = new Set(['n2', 'n3']);
const CLUSTER_ID = 'c0ffee00c0ffee00c0ffee00c0ffee00';
/** The fuzzer's clock: fixed, so a run replays exactly. */
const NOW_MS = 1_700_000_000_000;
/** A small replay cache, so "full" is reached and must recover as hellos expire. */
const REPLAY_CACHE_ENTRIES = 256;
const CLOSE_CODES = new Set<number>(Object.values(CloseCode));

/** The fields of one hello as a dialler would sign them; `ageMs` is relative to the acceptor's clock. */
export interface HelloRecipe {
  from: string;
  to: string;
  channel: string;
  secret: string | null;
  ageMs: number;
  cluster: string | null;
  incarnation: string;
  nonce: string;
}

/** What is done to the signed header before it is sent. */
export type HelloDamage =
  | { kind: 'none' }
  | { kind: 'json'; field: string; value: unknown }
  | { kind: 'raw'; inner: boolean; edits: ByteEdit[] }
  | { kind: 'replace'; header: string | string[] | undefined };

/** One input: a hello, its damage, and how far the acceptor's clock moves first. */
export interface HelloInput {
  recipe: HelloRecipe;
  damage: HelloDamage;
  advanceMs: number;
}

const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const id = fc.oneof(fc.constantFrom('n1', 'n2', 'n3', 'n4', '', 'N2', 'n2 ', '../n2'), fc.string({ maxLength: 80 }));

/** Mostly the right value, so that accepted hellos (and the replay cache) are exercised too. */
const mostly = <T>(right: fc.Arbitrary<T>, other: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: right }, { weight: 1, arbitrary: other });

const recipe: fc.Arbitrary<HelloRecipe> = fc.record({
  from: mostly(fc.constantFrom('n2', 'n3'), id),
  to: mostly(fc.constant(SELF), id),
  channel: mostly(fc.constantFrom('raft', 'snapshot'), fc.oneof(fc.constantFrom(...CHANNELS), fc.string({ maxLength: 12 }))),
  secret: fc.constantFrom<string | null>(SECRET, SECRET, 'another-cluster-secret-0123456789', null),
  ageMs: mostly(fc.integer({ min: -5_000, max: 5_000 }), fc.integer({ min: -1e13, max: 1e13 })),
  cluster: fc.constantFrom<string | null>(CLUSTER_ID, '', null, 'deadbeefdeadbeefdeadbeefdeadbeef'),
  incarnation: mostly(hex(32), fc.string({ maxLength: 40 })),
  nonce: hex(32),
});

const damage: fc.Arbitrary<HelloDamage> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('json' as const), field: fc.constantFrom('v', 'channel', 'from', 'to', 'ts', 'nonce', 'cluster', 'incarnation', 'mac', 'extra'), value: fc.jsonValue({ maxDepth: 2 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('raw' as const), inner: fc.boolean(), edits: fc.array(byteEdit, { minLength: 1, maxLength: MUTATIONS_MAX }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('replace' as const), header: fc.oneof(fc.constant(undefined), fc.array(fc.string({ maxLength: 40 }), { maxLength: 3 }), fc.string({ maxLength: 3000 })) }) },
);

/** The header a dialler would send at `nowMs`, damaged as the input says. */
function headerOf(i: HelloInput, nowMs: number): string | string[] | undefined {
  const r = i.recipe;
  const h = createHelloHeader({ from: r.from, to: r.to, channel: r.channel as (typeof CHANNELS)[number], clusterSecret: r.secret, nowMs: nowMs + r.ageMs, clusterId: r.cluster, incarnation: r.incarnation, nonce: r.nonce });
  const d = i.damage;
  switch (d.kind) {
    case 'none':
      return h;
    case 'json': {
      const o = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
      o[d.field] = d.value;
      return Buffer.from(JSON.stringify(o)).toString('base64url');
    }
    case 'raw':
      return d.inner ? Buffer.from(applyEdits(Buffer.from(h, 'base64url'), d.edits)).toString('base64url') : Buffer.from(applyEdits(Buffer.from(h, 'latin1'), d.edits)).toString('latin1');
    case 'replace':
      return d.header;
  }
}

export const peerHelloSurface: Surface<HelloInput> = {
  name: 'peer-hello',
  description: 'peer connections before the handshake: the hello header (transport handshake.ts)',
  arbitrary: () => fc.record({ recipe, damage, advanceMs: fc.integer({ min: 0, max: 2_000 }) }),
  open: async () => openHelloTarget(),
  show: (i) => JSON.stringify(i),
};

function openHelloTarget(): FuzzTarget<HelloInput> {
  const maxAgeMs = defaultLimits.helloMaxAgeMs;
  const cache = new ReplayCache(REPLAY_CACHE_ENTRIES, maxAgeMs);
  let now = NOW_MS;
  let controls = 0;
  const check = (): HelloCheck => ({
    selfId: SELF,
    clusterSecret: SECRET,
    isPeer: (p) => PEERS.has(p),
    nowMs: now,
    maxAgeMs,
    clusterId: CLUSTER_ID,
    acceptSnapshots: true,
    acceptProbes: false,
    checkIncarnation: () => null,
    rememberNonce: (nonce, t) => cache.remember(nonce, t),
  });
  const verify = (header: string | string[] | undefined): Outcome => {
    let v;
    try {
      v = verifyHelloHeader(header, check());
    } catch (e) {
      throw new FuzzViolation(`verifyHelloHeader threw: ${(e as Error).stack ?? String(e)}`, { cause: e });
    }
    if (v.ok) {
      const h = v.hello;
      if (!PEERS.has(h.from) || h.to !== SELF || (h.channel !== 'raft' && h.channel !== 'snapshot')) {
        throw new FuzzViolation(`accepted a hello it must refuse: ${JSON.stringify(h)}`);
      }
      return 'accepted';
    }
    if (!CLOSE_CODES.has(v.code)) throw new FuzzViolation(`refused with an unknown close code ${v.code}`);
    // The transport closes with fitCloseReason(reason): it must fit a close frame whatever the hello held.
    if (typeof v.reason !== 'string' || v.reason === '' || Buffer.byteLength(fitCloseReason(v.reason)) > MAX_CLOSE_REASON_BYTES) {
      throw new FuzzViolation(`refusal reason does not fit a close frame: ${JSON.stringify(v.reason)}`);
    }
    return 'refused';
  };
  return {
    feed: (input) => {
      now += input.advanceMs;
      return verify(headerOf(input, now));
    },
    control: () => {
      // A fresh authentic hello is accepted, once the cache has room (at most one window).
      now += 2 * maxAgeMs + 1;
      const nonce = (controls++).toString(16).padStart(32, '0');
      const header = createHelloHeader({ from: 'n2', to: SELF, channel: 'raft', clusterSecret: SECRET, nowMs: now, clusterId: CLUSTER_ID, incarnation: 'a'.repeat(32), nonce });
      if (verify(header) !== 'accepted') throw new FuzzViolation('an authentic hello was refused after the fuzzed ones');
    },
    close: async () => undefined,
  };
}
