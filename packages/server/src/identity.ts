// Who a node is, on disk: the cluster id, this data directory's incarnation id, and the
// incarnations this node pinned for its peers (known_hosts style). See docs/server.md, "Who a
// node is". Each is a small file written durably (write a temporary file, fsync it, rename it
// over the old one, fsync the directory) and read back strictly: a damaged file is a clear error,
// never a silent reset — forgetting a pin would let another incarnation in.
//
// The files are reached through an injected IdentityFiles (host-world.ts): the data directory in
// production (fsIdentityFiles, node-production.ts), a map in the simulation.
import { createHash } from 'node:crypto';
import { INCARNATION_HEX_LENGTH } from '@quorumkv/transport';
import { crc32 } from './crc32.js';
import type { IdentityFiles } from './host-world.js';

const CLUSTER_ID_FILE = 'CLUSTER_ID';
/** A cluster id: 32 hex digits (clusterIdOf). */
const CLUSTER_ID_PATTERN = /^[0-9a-f]{32}$/;
const INCARNATION_FILE = 'INCARNATION';
const PINS_FILE = 'PEER_INCARNATIONS';
/** Present once this (still empty) data directory answered "not founded" to a founding peer. */
const FOUNDING_PROMISE_FILE = 'FOUNDING_PROMISED';
/** How this data directory came to hold the cluster's log: it founded it, or joined (was replicated to). */
const ORIGIN_FILE = 'ORIGIN';
/** Longest pins file read, bytes: far above any real membership (a pin is ~100 bytes). */
const MAX_PINS_FILE_BYTES = 1024 * 1024;

/** A data-directory identity file is damaged or unreadable. The node refuses to start. */
export class IdentityFileError extends Error {
  readonly code = 'QKV_IDENTITY_FILE';
  constructor(message: string) {
    super(message);
    this.name = 'IdentityFileError';
  }
}

/** True when `s` is an incarnation id (32 lower-case hex digits). */
export function isIncarnation(s: unknown): s is string {
  return typeof s === 'string' && s.length === INCARNATION_HEX_LENGTH && /^[0-9a-f]+$/.test(s);
}

/** The first 8 hex digits of an incarnation id, for logs and close reasons. */
export function shortIncarnation(inc: string): string {
  return inc.slice(0, 8);
}

/** `body` followed by a line `crc32 XXXXXXXX` over it. */
function withChecksum(body: string): string {
  return `${body}\ncrc32 ${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`;
}

/** Reads a file written by withChecksum; null when absent. */
function readChecksummed(files: IdentityFiles, name: string, maxBytes: number): string | null {
  const f = files.describe(name);
  const text = files.read(name);
  if (text === null) return null;
  if (text.length > maxBytes) throw new IdentityFileError(`${f} is larger than ${maxBytes} bytes; refusing to start`);
  const m = /^([\s\S]*)\ncrc32 ([0-9a-f]{8})\n$/.exec(text);
  if (!m || crc32(Buffer.from(m[1]!)).toString(16).padStart(8, '0') !== m[2]) {
    throw new IdentityFileError(`${f} is damaged (checksum mismatch); refusing to start — restore it from a backup or replace this node (docs/server.md)`);
  }
  return m[1]!;
}

/**
 * This data directory's incarnation id, made (random, 16 bytes) and written durably the first
 * time the directory is opened. A node that lost its disk gets a new one.
 */
export function openIncarnation(files: IdentityFiles, newIncarnation: () => string): { incarnation: string; created: boolean } {
  const body = readChecksummed(files, INCARNATION_FILE, 1024);
  if (body !== null) {
    if (!isIncarnation(body)) throw new IdentityFileError(`${files.describe(INCARNATION_FILE)} does not hold an incarnation id; refusing to start`);
    return { incarnation: body, created: false };
  }
  const incarnation = newIncarnation();
  if (!isIncarnation(incarnation)) throw new Error(`newIncarnation() made ${JSON.stringify(incarnation)}, not ${INCARNATION_HEX_LENGTH} hex digits`);
  files.writeDurably(INCARNATION_FILE, withChecksum(incarnation));
  return { incarnation, created: true };
}

/**
 * Whether this data directory answered "not founded" to a founding peer (founding.ts: it may have
 * been counted, so it founds rather than waits). Durable, so a restart keeps the promise.
 */
export function foundingPromised(files: IdentityFiles): boolean {
  return files.read(FOUNDING_PROMISE_FILE) !== null;
}

export function recordFoundingPromise(files: IdentityFiles): void {
  files.writeDurably(FOUNDING_PROMISE_FILE, 'answered "not founded" to a founding peer\n');
}

/**
 * How a data directory came to hold the cluster's log. `founded`: it wrote the founding entries
 * (or, `legacy`, it held state before ORIGIN files existed: it resumes as it always did). Only a
 * founder may vote as a voter the membership records no incarnation for (membership.ts,
 * votingSuspension); a joiner replays other nodes' memberships and waits for its own record.
 */
export interface Origin {
  foundedHere: boolean;
  /**
   * A member of the founding membership that did not write the founding entries itself: its
   * founding handshake found the cluster already founded, naming it as a member with no
   * incarnation recorded or pinned anywhere it asked, so this is its first incarnation. It may
   * campaign with no incarnation recorded once it has applied the whole founding membership
   * (membership.ts, votingSuspension).
   */
  foundingMember: boolean;
  /** The directory had state but no ORIGIN file: written by a version before ORIGIN; counted as founded. */
  legacy: boolean;
}

const ORIGIN_TEXT = { founded: 'founded', joined: 'joined', foundingMember: 'founding-member', legacy: 'founded-legacy' } as const;

/**
 * Reads this data directory's origin. A `fresh` directory (no log, hard state or high-water
 * mark) has none yet (null): it decides when it founds or joins (recordOrigin). A directory with
 * state and no file predates ORIGIN: it is recorded as a founder now, durably, so the answer
 * never changes.
 */
export function openOrigin(files: IdentityFiles, fresh: boolean): Origin | null {
  if (fresh) return null;
  const body = readChecksummed(files, ORIGIN_FILE, 1024);
  if (body === ORIGIN_TEXT.founded || body === ORIGIN_TEXT.legacy) return { foundedHere: true, foundingMember: false, legacy: body === ORIGIN_TEXT.legacy };
  if (body === ORIGIN_TEXT.joined || body === ORIGIN_TEXT.foundingMember) return { foundedHere: false, foundingMember: body === ORIGIN_TEXT.foundingMember, legacy: false };
  if (body !== null) throw new IdentityFileError(`${files.describe(ORIGIN_FILE)} holds none of "founded", "joined", "founding-member"; refusing to start`);
  files.writeDurably(ORIGIN_FILE, withChecksum(ORIGIN_TEXT.legacy));
  return { foundedHere: true, foundingMember: false, legacy: true };
}

/**
 * Records, durably and BEFORE the directory holds any entry, whether it founds the cluster or
 * joins it. Written again on every decision an empty directory makes (a founder that crashed
 * before its founding entries reached the disk may join on its next start).
 */
export function recordOrigin(files: IdentityFiles, foundedHere: boolean, foundingMember = false): void {
  const text = foundedHere ? ORIGIN_TEXT.founded : foundingMember ? ORIGIN_TEXT.foundingMember : ORIGIN_TEXT.joined;
  files.writeDurably(ORIGIN_FILE, withChecksum(text));
}

/** The cluster id: a hash of the founding voters (ids and contexts), so differently founded clusters refuse each other. */
export function clusterIdOf(voters: { id: string; context: string }[]): string {
  const canon = [...voters].sort((a, b) => (a.id < b.id ? -1 : 1)).map((v) => `${v.id}=${v.context}`).join('\n');
  return createHash('sha256').update(canon).digest('hex').slice(0, 32);
}

/** The stored cluster id, or null (never founded, or joined and not yet told). */
export function readClusterId(files: IdentityFiles): string | null {
  const f = files.describe(CLUSTER_ID_FILE);
  const text = files.read(CLUSTER_ID_FILE);
  if (text === null) return null;
  const v = text.trim();
  if (!CLUSTER_ID_PATTERN.test(v)) throw new IdentityFileError(`${f} is damaged (expected 32 hex digits); refusing to start`);
  return v;
}

export function writeClusterId(files: IdentityFiles, id: string): void {
  files.writeDurably(CLUSTER_ID_FILE, `${id}\n`);
}

/**
 * The cluster id a node without one (replicated into, or added with `member add`) adopts from a
 * peer's authenticated hello: `offered`, written durably first, when the node has none, the peer
 * is `trusted` (see IdentityGuard.adoptClusterIdFrom in identity-guard.ts) and the offer is a well-formed id. Null when
 * nothing is adopted: an id once held is never overwritten. Throws if the write fails.
 */
export function adoptClusterId(files: IdentityFiles, current: string | null, offered: string, trusted: boolean): string | null {
  if (current !== null || !trusted || !CLUSTER_ID_PATTERN.test(offered)) return null;
  writeClusterId(files, offered);
  return offered;
}

/** One pin: the incarnation first seen for a peer, and the applied index when it was pinned. */
interface Pin {
  incarnation: string;
  /** Applied index at pin time: replaying an older removal from the log does not clear a newer pin. */
  sinceIndex: number;
}

/**
 * The incarnations this node pinned for its peers, kept in PEER_INCARNATIONS. A pin is written
 * durably BEFORE the first message of that incarnation is accepted, so a peer that lost its disk
 * can never again be taken for what it was (docs/server.md, "Who a node is").
 */
export class PeerPins {
  private readonly pins = new Map<string, Pin>();

  private constructor(private readonly files: IdentityFiles) {}

  /** Loads the pins of a data directory (none when the file is absent). */
  static open(files: IdentityFiles): PeerPins {
    const p = new PeerPins(files);
    const body = readChecksummed(files, PINS_FILE, MAX_PINS_FILE_BYTES);
    if (body === null) return p;
    let v: unknown;
    try {
      v = JSON.parse(body);
    } catch {
      v = undefined;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new IdentityFileError(`${files.describe(PINS_FILE)} does not hold a JSON object; refusing to start`);
    for (const [id, pin] of Object.entries(v as Record<string, unknown>)) {
      const q = pin as Partial<Pin> | null;
      if (!q || !isIncarnation(q.incarnation) || !Number.isSafeInteger(q.sinceIndex)) {
        throw new IdentityFileError(`${files.describe(PINS_FILE)}: bad pin for ${id}; refusing to start`);
      }
      p.pins.set(id, { incarnation: q.incarnation, sinceIndex: q.sinceIndex! });
    }
    return p;
  }

  /** The pinned incarnation of `id`, if any. */
  get(id: string): string | undefined {
    return this.pins.get(id)?.incarnation;
  }

  /** The ids with a pin. */
  ids(): string[] {
    return [...this.pins.keys()];
  }

  /** Pins (or re-pins) `id` to `incarnation`, durably, before returning. */
  pin(id: string, incarnation: string, sinceIndex: number): void {
    if (this.pins.get(id)?.incarnation === incarnation) return;
    this.pins.set(id, { incarnation, sinceIndex });
    this.save();
  }

  /**
   * Forgets `id`'s pin because its removal was applied at `removedAtIndex`. A pin made after that
   * point (the log being replayed at start-up) stays.
   */
  clear(id: string, removedAtIndex: number): boolean {
    const cur = this.pins.get(id);
    if (!cur || cur.sinceIndex >= removedAtIndex) return false;
    this.pins.delete(id);
    this.save();
    return true;
  }

  private save(): void {
    this.files.writeDurably(PINS_FILE, withChecksum(JSON.stringify(Object.fromEntries(this.pins))));
  }
}
