// What the host loop (node.ts) takes as arguments instead of reaching for the process: time,
// randomness, the peer transport, the stores and the small identity files — hashicorp/raft's
// `NewRaft(conf, fsm, logs, stable, snaps, trans)`. Production wires LevelDB, the WebSocket
// transport and real timers (node-production.ts); the whole-node simulation (packages/sim-node)
// wires the memory backend, a simulated network and a simulated clock. Nothing in the host files
// reads the clock, sets a timer, draws randomness or touches files or sockets on its own
// (scripts/check-raft-purity.mjs checks it).
import type { Message } from '@quorumkv/raft';
import type { NodeStore } from '@quorumkv/storage';
import type { FoundingAnswer } from './founding.js';
import type { Clock, Random } from './world.js';

/** What the host needs of its peer transport (the WebSocket `PeerTransport` is one). */
export interface PeerLink {
  /** Queues `m` for its addressee; false when it cannot be sent now (the core is told the peer is unreachable). */
  send(m: Message): boolean;
  /** The peers to dial and accept (id → address); replaces the previous set. */
  setPeers(peers: Readonly<Record<string, string>>): void;
  /** Asks `peer` the founding question (founding.ts); rejects when it cannot be asked. */
  probe(peer: string, address: string): Promise<unknown>;
  /** Closes the inbound connection of `peer`, if any (its incarnation changed). */
  closeInbound(peer: string, reason: string): void;
  close(): Promise<void>;
}

/** What the transport asks of the host, wired by the node when it makes its link. */
export interface PeerLinkHandlers {
  /** This node's cluster id, or null while it has none. */
  clusterId(): string | null;
  /** This data directory's incarnation id. */
  readonly incarnation: string;
  /**
   * The incarnation rule: null accepts `incarnation` for `peer`, a string is the refusal reason.
   * `clusterId` is the one the peer's hello carries ('' when none; the node may adopt it).
   */
  checkIncarnation(peer: string, incarnation: string, clusterId: string): string | null;
  /** The answer to a founding probe from `peer`. */
  onProbe(peer: string): FoundingAnswer;
  /** A message from an authenticated peer, on a connection whose hello carried `incarnation`. */
  onMessage(m: Message, incarnation: string): void;
  /** Messages sent to `peer` may have been lost (its connection ended). */
  onPeerDown(peer: string): void;
}

/**
 * The node's small identity files (identity.ts): the cluster id, the incarnation, the peer pins
 * and the founding promise. Each write is durable when it returns (a file: temporary file, fsync,
 * rename, fsync of the directory).
 */
export interface IdentityFiles {
  /** The file's text, or null when it does not exist. */
  read(name: string): string | null;
  writeDurably(name: string, text: string): void;
  /** Where the file lives, for error messages. */
  describe(name: string): string;
}

/** Identity files in memory (tests and the simulation): they survive a simulated crash with the map. */
export function memoryIdentityFiles(files: Map<string, string> = new Map()): IdentityFiles {
  return {
    read: (name) => files.get(name) ?? null,
    writeDurably: (name, text) => void files.set(name, text),
    describe: (name) => `memory:${name}`,
  };
}

/** Everything the host loop takes from outside. */
export interface NodeWorld {
  clock: Clock;
  /** The consensus core's randomness (election timeouts) and the host's. */
  random: Random;
  /**
   * Runs `fn` on a later turn of the event loop, after the current inputs (production:
   * setImmediate). The loop coalesces every input of one turn into one Ready through it.
   */
  defer(fn: () => void): void;
  /** A monotonic reading in ms for durations in metrics and logs only (never for decisions). */
  elapsedMs(): number;
  store: NodeStore;
  identity: IdentityFiles;
  /** A fresh incarnation id (32 lower-case hex digits) for a new data directory. */
  newIncarnation(): string;
  /** Makes the node's peer link; called once, by the node's constructor. */
  peers(handlers: PeerLinkHandlers): PeerLink;
  /**
   * The host loop hit an error it cannot continue after (a failed write, a broken invariant).
   * Production stops the node and exits the process with code 70; the simulation records a failure.
   */
  onFatal(err: Error): void;
  /**
   * Test-only: a host bug to plant, so the whole-node simulation can show it catches it
   * (`pnpm sim:node --plant NAME`). Production never sets it.
   */
  plant?: HostPlant | undefined;
}

/** The host bugs the simulation can plant (each a guarded branch: node.ts write, ready-loop.ts, read-index.ts, snapshot-receiver.ts). */
export const HOST_PLANTS = [
  /** A write is answered as soon as it is proposed, before its entry is committed. */
  'answer-before-commit',
  /** The send-while-persisting shortcut is used for every Ready, also one with a new term or vote. */
  'send-before-persist-on-term-change',
  /** Committed entries are applied before the Ready's entries are persisted. */
  'apply-before-persist',
  /** A ReadIndex read is served before the state machine applied up to its read index. */
  'read-before-applied',
  /** Writes are proposed without their session, so a retried write is applied again. */
  'session-dedup-off',
  /** The snapshot receiver delivers a stream as complete after its first chunk (snapshot-receiver.ts). */
  'partial-snapshot-install',
] as const;
export type HostPlant = (typeof HOST_PLANTS)[number];

/** Resolves after `ms` of `clock` time. */
export function sleepOn(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(ms, resolve));
}
