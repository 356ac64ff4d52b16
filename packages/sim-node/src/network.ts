// The simulated peer network: each node's PeerLink (the interface node.ts takes from its world)
// hands messages to the scheduler with a random delay (so they reorder), may lose or duplicate
// them, and drops them across partitions (symmetric or one-way). Messages are deep-copied, as the
// real transport's encoding does: no node ever shares an object with another.
import type { Message } from '@quorumkv/raft';
import type { PeerLink, PeerLinkHandlers } from '@quorumkv/server';
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

/** How long a founding probe to an unreachable peer takes to fail, ms. */
const PROBE_FAIL_MS = 200;

interface Endpoint {
  handlers: PeerLinkHandlers;
  owner: Liveness;
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

  constructor(
    private readonly sched: SimScheduler,
    private readonly rng: Prng,
    private readonly note: (line: string) => void,
  ) {}

  /** The link of one booted node (a restart attaches a new one; the old owner is dead). */
  attach(id: string, owner: Liveness, handlers: PeerLinkHandlers): PeerLink {
    this.endpoints.set(id, { handlers, owner });
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

  /** Cuts `from` → `to` (one way). */
  block(from: string, to: string): void {
    this.blocked.add(`${from}>${to}`);
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
    for (let i = 0; i < copies; i++) {
      const copy = copyMessage(m);
      this.sched.after(this.delay(), () => this.deliver(from, copy));
    }
  }

  private deliver(from: string, m: Message): void {
    const ep = this.endpoints.get(m.to);
    if (!ep || !ep.owner.alive()) return;
    if (!this.reachable(from, m.to)) {
      this.stats.blocked++;
      return;
    }
    this.stats.delivered++;
    try {
      ep.handlers.onMessage(m);
    } catch (e) {
      // The host refuses a bad message by throwing (the transport closes that connection).
      this.note(`${m.to} refused a message from ${from}: ${(e as Error).message}`);
    }
  }

  private probe(from: string, to: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const there = this.endpoints.get(to);
      if (!there || !there.owner.alive() || !this.reachable(from, to) || !this.reachable(to, from)) {
        this.sched.after(PROBE_FAIL_MS, () => reject(new Error(`${to} unreachable`)));
        return;
      }
      this.sched.after(this.delay(), () => {
        if (!there.owner.alive()) return void reject(new Error(`${to} crashed`));
        const answer = there.handlers.onProbe(from);
        this.sched.after(this.delay(), () => resolve(structuredClone(answer)));
      });
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
