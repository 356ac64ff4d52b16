// A tiny synchronous network for unit tests (etcd's raft_test.go `network`): deliver every
// message at once unless dropped/cut. The seeded, faulty network lives in @quorumkv/testkit.
import { MemoryStorage, RawNode, defaultConfig, EntryType, decodeConfChange, type Config, type Message, type NodeId, type Ready } from '../src/index.js';

export function lcg(seed: number) {
  let s = seed >>> 0 || 1;
  return { int: (n: number) => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % n) };
}

export interface TestNode {
  id: NodeId;
  node: RawNode;
  storage: MemoryStorage;
  applied: Uint8Array[];
  readStates: { index: number; ctx: string }[];
}

export class TestNet {
  nodes = new Map<NodeId, TestNode>();
  cut = new Set<string>(); // "a>b"
  dropAll = false;
  log: Message[] = [];

  constructor(ids: NodeId[], opts: Partial<Config> = {}, seed = 1) {
    // Founding members bootstrap: the initial membership is written into the log (entries
    // 1..N), so that nodes added later learn it by replication.
    for (const id of ids) {
      const tn = this.add(id, new MemoryStorage(), opts, seed);
      tn.node.bootstrap(ids.map((v) => ({ id: v })));
    }
    this.stabilize(); // apply the bootstrap entries (a node does not campaign with conf changes unapplied)
  }

  add(id: NodeId, storage: MemoryStorage, opts: Partial<Config> = {}, seed = 1): TestNode {
    const node = new RawNode({ ...defaultConfig, id, storage, random: lcg(seed + id.charCodeAt(id.length - 1)), ...opts });
    const tn = { id, node, storage, applied: [], readStates: [] };
    this.nodes.set(id, tn);
    return tn;
  }

  get(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  isolate(id: NodeId): void {
    for (const o of this.nodes.keys()) if (o !== id) (this.cut.add(`${id}>${o}`), this.cut.add(`${o}>${id}`));
  }

  heal(): void {
    this.cut.clear();
  }

  /** Runs every node's Ready, persisting and applying, and returns the messages produced. */
  private drain(): Message[] {
    const out: Message[] = [];
    for (const tn of this.nodes.values()) {
      while (tn.node.hasReady()) {
        const rd: Ready = tn.node.ready();
        if (rd.snapshot) tn.storage.applySnapshot(rd.snapshot);
        tn.storage.append(rd.entries);
        if (rd.hardState) tn.storage.setHardState(rd.hardState);
        out.push(...rd.messages);
        for (const e of rd.committedEntries) {
          if (e.type === EntryType.ConfChange) tn.node.applyConfChange(decodeConfChange(e.data));
          else if (e.data.length > 0) tn.applied.push(e.data);
        }
        for (const r of rd.readStates) tn.readStates.push({ index: r.index, ctx: new TextDecoder().decode(r.requestCtx) });
        tn.node.advance(rd);
      }
    }
    return out;
  }

  /** Delivers messages until the network is quiet. */
  stabilize(maxRounds = 1000): void {
    for (let i = 0; i < maxRounds; i++) {
      const msgs = this.drain();
      if (msgs.length === 0) return;
      for (const m of msgs) {
        this.log.push(m);
        if (this.dropAll || this.cut.has(`${m.from}>${m.to}`)) continue;
        this.nodes.get(m.to)?.node.step(m);
      }
    }
    throw new Error('network did not stabilize');
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.get(id).node.tick();
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const tn of this.nodes.values()) tn.node.tick();
      this.stabilize();
    }
  }

  leader(): NodeId | null {
    const leaders = [...this.nodes.values()].filter((t) => t.node.status().softState.role === 'leader');
    return leaders.length === 1 ? leaders[0]!.id : null;
  }
}

export const text = (s: string) => new TextEncoder().encode(s);
