// An in-memory fake cluster for client tests: N nodes, each a real HTTP server on 127.0.0.1 with
// the real client endpoint, in front of a fake KvService. All nodes share one FakeStore, which
// stands for the replicated state machine (applies writes once per session seq, like the real
// one must). One node is the leader; the others answer NOT_LEADER with a hint. Faults are
// switched on per test: lost answers, busy answers, hangs, no leader, node restarts.

import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import {
  BusyError,
  CasFailedError,
  ClosedError,
  IndeterminateError,
  NoLeaderError,
  NotLeaderError,
  SessionExpiredError,
  compareBytes,
  inInterval,
  rangeInterval,
  type CallContext,
  type CasArgs,
  type ClusterStatus,
  type DeleteArgs,
  type GetArgs,
  type KvService,
  type LeaderHint,
  type PutArgs,
  type RangeArgs,
  type RangeResult,
  type SessionRef,
  type WireItem,
} from '@quorumkv/protocol';
import { attachClientEndpoint, type ClientEndpoint } from '../../server/src/client-endpoint.js';

type Outcome = { ok: true; result: unknown } | { ok: false; error: Error };
type WriteArgs = { op: 'put'; args: PutArgs } | { op: 'delete'; args: DeleteArgs } | { op: 'cas'; args: CasArgs };

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The replicated state machine, shared by every fake node. */
export class FakeStore {
  revision = 0;
  /** Writes actually applied (a deduplicated retry does not count). */
  applied = 0;
  readonly items = new Map<string, WireItem>();
  readonly sessions = new Map<string, Map<number, Outcome>>();
  /** Sessions the fake pretends have expired. */
  readonly expired = new Set<string>();

  write(w: WriteArgs): Outcome {
    const s = w.args.session;
    const table = this.sessionTable(s);
    if (!table.ok) return table;
    const stored = table.value.get(s.seq);
    if (stored) return stored;
    const outcome = this.apply(w);
    table.value.set(s.seq, outcome);
    for (const seq of table.value.keys()) if (seq < s.ackedBelow) table.value.delete(seq);
    return outcome;
  }

  private sessionTable(s: SessionRef): { ok: true; value: Map<number, Outcome> } | { ok: false; error: Error } {
    if (this.expired.has(s.id)) return { ok: false, error: new SessionExpiredError() };
    let t = this.sessions.get(s.id);
    if (!t) {
      t = new Map();
      this.sessions.set(s.id, t);
    }
    return { ok: true, value: t };
  }

  private apply(w: WriteArgs): Outcome {
    const k = hex(w.args.key);
    const cur = this.items.get(k);
    if (w.op === 'cas') {
      const c = w.args.condition;
      const holds =
        c.kind === 'absent' ? !cur : c.kind === 'value' ? !!cur && compareBytes(cur.value, c.value) === 0 : (cur?.modRevision ?? 0) === c.modRevision;
      if (!holds) return { ok: false, error: new CasFailedError(cur?.modRevision ?? 0) };
    }
    const isDelete = w.op === 'delete' || (w.op === 'cas' && w.args.action.kind === 'delete');
    this.applied++;
    const revision = ++this.revision;
    if (isDelete) {
      this.items.delete(k);
      return { ok: true, result: w.op === 'delete' ? { revision, deleted: !!cur } : { revision } };
    }
    const value = w.op === 'put' ? w.args.value : w.op === 'cas' && w.args.action.kind === 'put' ? w.args.action.value : undefined;
    if (!value) throw new Error('fake: a write that is neither a put nor a delete');
    this.items.set(k, {
      key: w.args.key,
      value,
      createRevision: cur?.createRevision ?? revision,
      modRevision: revision,
      version: (cur?.version ?? 0) + 1,
    });
    return { ok: true, result: { revision } };
  }

  get(key: Uint8Array): WireItem | null {
    return this.items.get(hex(key)) ?? null;
  }

  range(args: RangeArgs): RangeResult {
    const iv = rangeInterval(args);
    const all = [...this.items.values()].filter((it) => inInterval(it.key, iv)).sort((a, b) => compareBytes(a.key, b.key));
    const items: WireItem[] = [];
    let bytes = 0;
    for (const it of all) {
      if (items.length >= args.limit) break;
      bytes += it.key.length + it.value.length;
      if (items.length > 0 && bytes > args.maxResultBytes) break;
      items.push(it);
    }
    return { items, more: all.length > items.length };
  }
}

/** Faults a test switches on; counters count down as they fire. */
export interface Faults {
  /** The next N writes are applied, then their node cuts every client connection (answer lost). */
  dropAfterApply: number;
  /**
   * The next N writes are applied, then answered with `failAfterApplyError()` instead of their
   * result (a node that stopped after proposing answers QKV_INDETERMINATE this way).
   */
  failAfterApply: number;
  failAfterApplyError: () => Error;
  /** Called after each write hit by dropAfterApply or failAfterApply (e.g. to lose the leader). */
  afterFailedApply: (() => void) | undefined;
  /** The next N requests to the leader are answered QKV_BUSY. */
  busy: number;
  busyRetryAfterMs: number;
  /** Requests are never answered (until the connection or the endpoint closes). */
  hang: boolean;
  /** The next N requests to the leader are answered `refuseError()` before anything is applied. */
  refuse: number;
  refuseError: () => Error;
}

/** Counts of what each node served. */
export interface NodeStats {
  requests: number;
  writes: number;
  staleReads: number;
}

/** One fake node: an HTTP server with the real client endpoint and a fake service. */
export class FakeNode {
  port = 0;
  readonly stats: NodeStats = { requests: 0, writes: 0, staleReads: 0 };
  private server: Server | undefined;
  private endpoint: ClientEndpoint | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly id: string,
    private readonly cluster: FakeCluster,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  async start(): Promise<void> {
    const endpoint = attachClientEndpoint({ service: this.service(), maxInflightPerConnection: 256, pingIntervalMs: 60_000 });
    const server = createServer((_req, res) => res.writeHead(404).end());
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    server.on('upgrade', (req, socket, head) => endpoint.handleUpgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') this.port = addr.port;
    this.server = server;
    this.endpoint = endpoint;
  }

  /** Crash-like stop: every connection is cut at once, no goodbye. */
  async stop(): Promise<void> {
    const server = this.server;
    const endpoint = this.endpoint;
    this.server = undefined;
    this.endpoint = undefined;
    this.cutConnections();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (endpoint) await endpoint.close();
  }

  /** Cuts every TCP connection (the node stays up). */
  cutConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private check(leaderOnly: boolean): void {
    this.stats.requests++;
    const c = this.cluster;
    if (c.faults.hang) throw new HangSignal();
    if (!leaderOnly) return;
    if (c.leaderId === null) throw new NoLeaderError();
    if (c.leaderId !== this.id) throw new NotLeaderError(c.leaderHint() ?? undefined);
    if (c.faults.busy > 0) {
      c.faults.busy--;
      throw new BusyError(c.faults.busyRetryAfterMs);
    }
    if (c.faults.refuse > 0) {
      c.faults.refuse--;
      throw c.faults.refuseError();
    }
  }

  private async write(w: WriteArgs, ctx: CallContext): Promise<unknown> {
    await this.guard(true, ctx);
    this.stats.writes++;
    const outcome = this.cluster.store.write(w);
    const f = this.cluster.faults;
    if (f.dropAfterApply > 0) {
      f.dropAfterApply--;
      f.afterFailedApply?.();
      this.cutConnections();
      throw new ClosedError('connection cut after apply (fault)');
    }
    if (f.failAfterApply > 0) {
      f.failAfterApply--;
      f.afterFailedApply?.();
      throw f.failAfterApplyError();
    }
    if (!outcome.ok) throw outcome.error;
    return outcome.result;
  }

  /** Runs the leader/busy/hang checks; a hang waits until the request is aborted. */
  private async guard(leaderOnly: boolean, ctx: CallContext): Promise<void> {
    try {
      this.check(leaderOnly);
    } catch (e) {
      if (!(e instanceof HangSignal)) throw e;
      await new Promise<never>((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
      });
    }
  }

  private service(): KvService {
    const c = this.cluster;
    return {
      identity: () => ({ serverId: this.id, leader: c.leaderHint() }),
      get: async (args: GetArgs, ctx) => {
        await this.guard(args.consistency === 'linearizable', ctx);
        if (args.consistency === 'stale') this.stats.staleReads++;
        return { item: c.store.get(args.key) };
      },
      put: async (args, ctx) => (await this.write({ op: 'put', args }, ctx)) as { revision: number },
      delete: async (args, ctx) => (await this.write({ op: 'delete', args }, ctx)) as { revision: number; deleted: boolean },
      cas: async (args, ctx) => (await this.write({ op: 'cas', args }, ctx)) as { revision: number },
      range: async (args, ctx) => {
        await this.guard(args.consistency === 'linearizable', ctx);
        return c.store.range(args);
      },
      status: async (ctx): Promise<ClusterStatus> => {
        await this.guard(false, ctx);
        return {
          nodeId: this.id,
          role: c.leaderId === this.id ? 'leader' : 'follower',
          term: c.term,
          leader: c.leaderHint(),
          commitIndex: c.store.revision,
          appliedIndex: c.store.revision,
          members: c.nodes.map((n) => ({ id: n.id, address: n.address, kind: 'voter' as const })),
          warnings: [],
        };
      },
    };
  }
}

class HangSignal extends Error {}

/** N fake nodes over one FakeStore. */
export class FakeCluster {
  readonly store = new FakeStore();
  readonly nodes: FakeNode[];
  leaderId: string | null;
  term = 1;
  readonly faults: Faults = {
    dropAfterApply: 0,
    failAfterApply: 0,
    failAfterApplyError: () => new IndeterminateError('the node shut down after the write was proposed (fault)'),
    afterFailedApply: undefined,
    busy: 0,
    busyRetryAfterMs: 20,
    hang: false,
    refuse: 0,
    refuseError: () => new Error('refuseError not set'),
  };

  private constructor(size: number) {
    this.nodes = Array.from({ length: size }, (_, i) => new FakeNode(`n${i + 1}`, this));
    this.leaderId = 'n1';
  }

  /** Starts a cluster of `size` nodes on free ports with `n1` as leader. */
  static async start(size = 3): Promise<FakeCluster> {
    const c = new FakeCluster(size);
    for (const n of c.nodes) await n.start();
    return c;
  }

  node(id: string): FakeNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  get endpoints(): string[] {
    return this.nodes.map((n) => n.address);
  }

  /** Addresses nodes advertise in hints, when they differ from the reachable ones (Docker). */
  advertised: ((n: FakeNode) => string) | undefined;

  leaderHint(): LeaderHint | null {
    if (this.leaderId === null) return null;
    const n = this.node(this.leaderId);
    return { id: n.id, address: this.advertised ? this.advertised(n) : n.address };
  }

  /** A new leader (or none) in a new term. */
  elect(id: string | null): void {
    this.leaderId = id;
    this.term++;
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) await n.stop();
  }
}
