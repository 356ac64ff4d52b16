// The simulated peer network: each node's PeerLink (the interface node.ts takes from its world)
// hands messages to the scheduler with a random delay (so they reorder), may lose or duplicate
// them, and drops them across partitions (symmetric or one-way). Messages are deep-copied, as the
// real transport's encoding does: no node ever shares an object with another.
import type { Message } from '@quorumkv/raft';
import type { PeerLink, PeerLinkHandlers, SnapshotSocket } from '@quorumkv/server';
import type { Prng } from '@quorumkv/testkit';
import type { Liveness, SimScheduler } from './scheduler.js';

/** How the network misbehaves while faults are on. */
export interface NetFaults {
  minDelayMs: number;
  maxDelayMs: number;
  /** Probability that a message is lost. */
  loss: number;
  /** Probability that a message is delivered twice. */
  duplicate: number;
}

export const CALM_NETWORK: NetFaults = { minDelayMs: 1, maxDelayMs: 5, loss: 0, duplicate: 0 };
export const ROUGH_NETWORK: NetFaults = { minDelayMs: 1, maxDelayMs: 40, loss: 0.05, duplicate: 0.03 };

/** A refused connection is dialled again after this long, ms. */
const REDIAL_MS = 1_000;
/** How long a founding probe to an unreachable peer takes to fail, ms. */
const PROBE_FAIL_MS = 200;

interface Endpoint {
  handlers: PeerLinkHandlers;
  owner: Liveness;
  /**
   * The incarnation rule, as the real transport applies it at each connection's hello: per
   * sender incarnation, accepted, or refused until the given time (the sender redials then).
   */
  hellos: Map<string, { ok: true } | { ok: false; untilMs: number }>;
  /** Takes an incoming snapshot-channel connection (the node's SnapshotManager). */
  acceptSnapshot?: (peer: string, socket: SnapshotSocket) => void;
}

export interface NetStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  blocked: number;
}

export class SimNet {
  faults: NetFaults = CALM_NETWORK;
  private readonly endpoints = new Map<string, Endpoint>();
  /** Directed pairs "from>to" that cannot talk. */
  private readonly blocked = new Set<string>();
  readonly stats: NetStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, blocked: 0 };
  /** Open snapshot connections, by the two node ids they join. */
  private readonly pairs = new Set<{ from: string; to: string; pair: SimSocketPair }>();

  constructor(
    private readonly sched: SimScheduler,
    private readonly rng: Prng,
    private readonly note: (line: string) => void,
  ) {}

  /** The link of one booted node (a restart attaches a new one; the old owner is dead). */
  attach(id: string, owner: Liveness, handlers: PeerLinkHandlers): PeerLink {
    this.endpoints.set(id, { handlers, owner, hellos: new Map() });
    return {
      send: (m) => {
        if (owner.alive()) this.send(id, m);
        return true;
      },
      setPeers: () => undefined,
      probe: (peer) => this.probe(id, peer),
      closeInbound: () => undefined,
      close: async () => undefined,
    };
  }

  /** Where `id`'s incoming snapshot connections go (set once its SnapshotManager exists). */
  acceptSnapshots(id: string, accept: (peer: string, socket: SnapshotSocket) => void): void {
    const ep = this.endpoints.get(id);
    if (ep) ep.acceptSnapshot = accept;
  }

  /**
   * A snapshot-channel connection from `from` to `to`: an ordered stream of frames, each after
   * the network's delay. It breaks (both ends see 'close') when either end crashes or a partition
   * cuts it; a dial to an unreachable node fails.
   */
  dialSnapshot(from: string, owner: Liveness, to: string): Promise<SnapshotSocket> {
    return new Promise((resolve, reject) => {
      const there = this.endpoints.get(to);
      const up = () => owner.alive() && there !== undefined && there.owner.alive() && there.acceptSnapshot !== undefined && this.reachable(from, to) && this.reachable(to, from);
      if (!up()) {
        this.sched.after(PROBE_FAIL_MS, () => reject(new Error(`${to} unreachable for a snapshot connection`)));
        return;
      }
      const thereOwner = there!.owner;
      const pair = new SimSocketPair(this.sched, () => this.delay(), () => owner.alive() && thereOwner.alive() && this.reachable(from, to) && this.reachable(to, from), { a: owner, b: thereOwner });
      const entry = { from, to, pair };
      this.pairs.add(entry);
      pair.onClosed = () => this.pairs.delete(entry);
      this.sched.after(this.delay(), () => {
        if (!up()) return void reject(new Error(`${to} unreachable for a snapshot connection`));
        there!.acceptSnapshot!(from, pair.b);
        resolve(pair.a);
      });
    });
  }

  /** Cuts `from` → `to` (one way); a snapshot connection between them breaks. */
  block(from: string, to: string): void {
    this.blocked.add(`${from}>${to}`);
    for (const p of [...this.pairs]) if ((p.from === from && p.to === to) || (p.from === to && p.to === from)) p.pair.close(false);
  }

  /** `id` crashed: its snapshot connections break (the other end sees them close). */
  nodeDown(id: string): void {
    for (const p of [...this.pairs]) if (p.from === id || p.to === id) p.pair.close(false);
  }

  /** Heals every partition. */
  healAll(): void {
    this.blocked.clear();
  }

  describePartitions(): string {
    return [...this.blocked].sort().join(' ') || 'none';
  }

  private reachable(from: string, to: string): boolean {
    return !this.blocked.has(`${from}>${to}`);
  }

  private delay(): number {
    const f = this.faults;
    return f.minDelayMs + this.rng.int(f.maxDelayMs - f.minDelayMs + 1);
  }

  private send(from: string, m: Message): void {
    this.stats.sent++;
    if (this.rng.chance(this.faults.loss)) {
      this.stats.lost++;
      return;
    }
    const copies = this.rng.chance(this.faults.duplicate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    const incarnation = this.endpoints.get(from)?.handlers.incarnation ?? '';
    for (let i = 0; i < copies; i++) {
      const copy = copyMessage(m);
      this.sched.after(this.delay(), () => this.deliver(from, incarnation, copy));
    }
  }

  private deliver(from: string, incarnation: string, m: Message): void {
    const ep = this.endpoints.get(m.to);
    if (!ep || !ep.owner.alive()) return;
    if (!this.reachable(from, m.to)) {
      this.stats.blocked++;
      return;
    }
    // It arrived; a paused node reads it when it resumes.
    this.sched.whenRunning(ep.owner, () => {
      if (!ep.owner.alive() || !this.hello(ep, from, m.to, incarnation)) return;
      this.stats.delivered++;
      try {
        ep.handlers.onMessage(m, incarnation);
      } catch (e) {
        // The host refuses a bad message by throwing (the transport closes that connection).
        this.note(`${m.to} refused a message from ${from}: ${(e as Error).message}`);
      }
    });
  }

  /** Whether `to` accepts a connection from `from`'s `incarnation` (asked once per connection). */
  private hello(ep: Endpoint, from: string, to: string, incarnation: string): boolean {
    const key = `${from}/${incarnation}`;
    const known = ep.hellos.get(key);
    if (known?.ok) return true;
    if (known && this.sched.nowMs() < known.untilMs) return false;
    // The simulated network models no cluster ids: no hello here carries one to compare or adopt.
    const refusal = ep.handlers.checkIncarnation(from, incarnation, '');
    if (refusal === null) {
      ep.hellos.set(key, { ok: true });
      return true;
    }
    ep.hellos.set(key, { ok: false, untilMs: this.sched.nowMs() + REDIAL_MS });
    this.note(`${to} refused a connection from ${from}: ${refusal}`);
    return false;
  }

  private probe(from: string, to: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const there = this.endpoints.get(to);
      if (!there || !there.owner.alive() || !this.reachable(from, to) || !this.reachable(to, from)) {
        this.sched.after(PROBE_FAIL_MS, () => reject(new Error(`${to} unreachable`)));
        return;
      }
      this.sched.after(this.delay(), () =>
        this.sched.whenRunning(there.owner, () => {
          if (!there.owner.alive()) return void reject(new Error(`${to} crashed`));
          const answer = there.handlers.onProbe(from);
          this.sched.after(this.delay(), () => resolve(structuredClone(answer)));
        }),
      );
    });
  }
}

/**
 * A copy of `m` that shares nothing mutable with it: the message, its entries and its snapshot
 * metadata are new objects (entry bytes are shared: no node writes into a received buffer, and
 * the stores copy what they keep).
 */
function copyMessage(m: Message): Message {
  const c: Message = { ...m };
  if (m.entries) c.entries = m.entries.map((e) => ({ ...e }));
  if (m.snapshot) c.snapshot = structuredClone(m.snapshot);
  return c;
}

type Listener = (data?: unknown) => void;

/** One end of a simulated snapshot connection (the subset of a WebSocket SnapshotManager uses). */
class SimSocket implements SnapshotSocket {
  readonly listeners = { message: new Set<Listener>(), close: new Set<Listener>(), error: new Set<Listener>() };
  constructor(
    private readonly pair: SimSocketPair,
    private readonly side: 'a' | 'b',
  ) {}
  send(data: Uint8Array): void {
    this.pair.send(this.side, data.slice());
  }
  close(): void {
    this.pair.close(true);
  }
  terminate(): void {
    this.pair.close(false);
  }
  on(event: 'message' | 'close' | 'error', fn: Listener): unknown {
    this.listeners[event].add(fn);
    return this;
  }
  off(event: 'message' | 'close' | 'error', fn: Listener): unknown {
    this.listeners[event].delete(fn);
    return this;
  }
}

class SimSocketPair {
  readonly a = new SimSocket(this, 'a');
  readonly b = new SimSocket(this, 'b');
  /** No more frames are sent (closing or broken). */
  private closed = false;
  /** Frames in flight are lost too (terminated or broken, not a graceful close). */
  private broken = false;
  onClosed: () => void = () => undefined;
  /** Frames arrive in order: each no earlier than the one before. */
  private lastArrival = { a: 0, b: 0 };

  constructor(
    private readonly sched: SimScheduler,
    private readonly delay: () => number,
    private readonly connected: () => boolean,
    /** The node at each end: a paused one reads its frames when it resumes. */
    private readonly owners: { a: Liveness; b: Liveness },
  ) {}

  send(from: 'a' | 'b', data: Uint8Array): void {
    if (this.closed) return;
    const to = from === 'a' ? 'b' : 'a';
    const at = Math.max(this.lastArrival[to], this.sched.nowMs() + this.delay());
    this.lastArrival[to] = at;
    this.sched.after(at - this.sched.nowMs(), () => {
      if (this.broken) return;
      if (!this.connected()) return this.close(false);
      this.sched.whenRunning(this.owners[to], () => {
        if (this.broken) return;
        for (const fn of [...this[to].listeners.message]) fn(data);
      });
    });
  }

  /**
   * Ends the connection. A graceful close (WebSocket close) lets the frames already sent arrive
   * first; a terminate, a crash or a partition loses them.
   */
  close(graceful = false): void {
    if (!graceful) this.broken = true;
    if (this.closed) return;
    this.closed = true;
    this.onClosed();
    const after = graceful ? Math.max(this.lastArrival.a, this.lastArrival.b, this.sched.nowMs()) - this.sched.nowMs() : 0;
    this.sched.after(after + this.delay(), () => {
      for (const side of [this.a, this.b]) for (const fn of [...side.listeners.close]) fn();
    });
  }
}
