// Bootstrap: what a node is made of when it starts, read back from its world — the log and hard
// state from the store, the core rebuilt over them, and the identity files (incarnation, pins,
// cluster id, origin). QuorumKvNode.open (node.ts) builds the node from these parts; the founding
// handshake that follows for an empty data directory is founding.ts's (QuorumKvNode.found).
import { MemoryStorage, RawNode, defaultConfig, type ConfState, type Entry, type HardState } from '@quorumkv/raft';
import type { LoadedLog, Membership, NodeStore } from '@quorumkv/storage';
import type { ServeConfig } from './config.js';
import { coreLogger, type Logger } from './logger.js';
import { PeerPins, openIncarnation, openOrigin, readClusterId, recordOrigin, type Origin } from './identity.js';
import type { NodeWorld } from './host-world.js';
import { hostAssert } from './host-assert.js';

/** A node's state as restored from its world, before the node object exists. */
export interface RestoredNode {
  store: NodeStore;
  mem: MemoryStorage;
  raw: RawNode;
  /** The applied membership (empty before one was applied). */
  members: Membership;
  /** The hard state the core starts from (its commit at least the applied index). */
  persisted: HardState;
  clusterId: string | null;
  incarnation: string;
  pins: PeerPins;
  /** An empty data directory with the founding flag: found() decides before start(). */
  foundingPending: boolean;
  origin: Origin | null;
}

/**
 * Restores the core and the identity from the world's store and identity files. Throws when the
 * data directory is inconsistent or an identity file is damaged; the caller closes the store.
 */
export async function restoreNode(cfg: ServeConfig, log: Logger, world: NodeWorld): Promise<RestoredNode> {
  const store = world.store;
  const loaded = await store.log.load();
  reportStorageRepairs(store, loaded, log);
  // Membership lives in the replicated state: the applied membership, or (before anything was
  // applied) what the log's conf-change entries will build when replayed.
  const members = store.kv.membership() ?? { voters: [], learners: [] };
  const confState: ConfState = { voters: members.voters.map((m) => m.id), learners: members.learners.map((m) => m.id) };
  const applied = store.kv.appliedIndex();
  // Commit-only hard-state changes are not written (keepCommitInMemory): the stored commit
  // index may be behind what was applied, and everything applied was committed.
  const hardState = { ...loaded.hardState, commit: Math.max(loaded.hardState.commit, applied) };
  const mem = new MemoryStorage({ hardState, confState });
  if (loaded.snapshotMeta && loaded.snapshotMeta.index > 0) {
    mem.applySnapshot({ metadata: { ...loaded.snapshotMeta, confState }, data: new Uint8Array(0) });
  }
  mem.append(loaded.entries as Entry[]);
  if (applied < mem.firstIndex() - 1) {
    throw new Error(`data directory ${store.location} is inconsistent: applied index ${applied} is behind the log start ${mem.firstIndex() - 1}`);
  }
  const raw = new RawNode({
    ...defaultConfig,
    id: cfg.id,
    storage: mem,
    applied,
    electionTicks: cfg.electionTicks,
    heartbeatTicks: cfg.heartbeatTicks,
    random: world.random,
    logger: coreLogger(log.child({ component: 'raft' })),
  });
  // The applied index story starts here: the core's applied is the stored one (docs/server.md).
  hostAssert(raw.raft.log.applied === applied, () => `the core starts at applied ${raw.raft.log.applied}, the store at ${applied}`);
  // A high-water mark above 0 means this store held entries once: LevelDB lost them, it is not new.
  const fresh = mem.lastIndex() === 0 && loaded.hardState.term === 0 && applied === 0 && store.log.highWaterMark().index === 0;
  const { incarnation, created } = openIncarnation(world.identity, world.newIncarnation);
  if (created) log.info({ incarnation }, 'new data directory: made its incarnation id');
  const pins = PeerPins.open(world.identity);
  const clusterId = readClusterId(world.identity);
  const foundingPending = fresh && cfg.initialClusterState === 'new';
  const origin = openOrigin(world.identity, fresh);
  if (origin?.legacy) log.info({}, 'the data directory predates its ORIGIN file: counted as a founder (it votes on its own log, as before)');
  if (fresh && !foundingPending) recordOrigin(world.identity, false); // joins: before any entry arrives
  if (fresh && !foundingPending) log.info({ incarnation }, 'starting empty; waiting to be added to a cluster (member add); never founding without --initial-cluster-state new');
  if (!fresh) {
    if (cfg.initialClusterState === 'new') log.info({}, '--initial-cluster-state new ignored: the data directory has state; resuming');
    if (cfg.peers.length > 0) log.debug({}, '--peers ignored: membership is stored in the data directory');
    log.info(
      { applied, firstIndex: mem.firstIndex(), lastIndex: mem.lastIndex(), term: loaded.hardState.term, voters: confState.voters, incarnation },
      'node restored from disk',
    );
  }
  return { store, mem, raw, members, persisted: hardState, clusterId, incarnation, pins, foundingPending, origin };
}

/** Logs what opening the store set right from its own records (each is a lost LevelDB batch). */
function reportStorageRepairs(store: NodeStore, loaded: LoadedLog, log: Logger): void {
  const rebased = store.openReport.logRebasedOnApplied;
  if (rebased) {
    log.warn(rebased, 'the log ended before the applied index (its tail was lost from the LevelDB journal); it now starts after the applied state');
  }
  if (loaded.hardStateFromMark) {
    log.warn(
      { stored: loaded.hardStateFromMark.stored, restored: loaded.hardState },
      'the stored hard state was behind the high-water mark (its batch was lost); using the term and vote of the mark',
    );
  }
}
