// The operator's switches that stop automatic recovery from making an incident worse
// (docs/runbook.md "The switches"):
//
//  - `snapshotSendsPaused`: this node starts no catch-up snapshot transfer and sends no chunk of a
//    running one (the throttled catch-up stops, its connection stays open and resumes where it
//    stood). A follower that needs a snapshot waits; its Raft progress stays "snapshot".
//  - `maintenance`: this node refuses membership changes (member add / promote / remove / zone,
//    also its own automatic zone record) and the automatic leader transfer a leader's own removal
//    would start. An explicit `leader transfer` stays allowed: it is the operator's act.
//
// Each node keeps its own switches (the CLI sets every endpoint, as it does the snapshot rate) and
// persists them in its data directory, so a node that restarts mid-incident does not forget them.
import { QuorumKvError } from '@quorumkv/protocol';
import type { IdentityFiles } from './host-world.js';

/** The file in the data directory that holds the switches. */
export const OPS_SWITCHES_FILE = 'ops-switches.json';

export interface OpsSwitchState {
  maintenance: boolean;
  snapshotSendsPaused: boolean;
}

/** Where the switches persist: the data directory in production, nothing in tests and simulation. */
export type SwitchFiles = Pick<IdentityFiles, 'read' | 'writeDurably' | 'describe'>;

/** A request the maintenance switch refuses (HTTP 409): retry once `quorumkv maintenance off`. */
export class MaintenanceError extends QuorumKvError {
  constructor(what: string) {
    super('QKV_MAINTENANCE', `${what} refused: maintenance mode is on (quorumkv maintenance off ends it)`);
  }
}

/** One node's switches: read once at start, written durably on every change. */
export class OpsSwitches {
  private state: OpsSwitchState = { maintenance: false, snapshotSendsPaused: false };
  private readonly listeners: ((s: OpsSwitchState) => void)[] = [];

  constructor(private readonly files?: SwitchFiles) {
    const text = files?.read(OPS_SWITCHES_FILE);
    if (text) this.state = parseSwitches(text, files!.describe(OPS_SWITCHES_FILE));
  }

  get maintenance(): boolean {
    return this.state.maintenance;
  }

  get snapshotSendsPaused(): boolean {
    return this.state.snapshotSendsPaused;
  }

  snapshot(): OpsSwitchState {
    return { ...this.state };
  }

  /**
   * Changes switches: persisted first, then applied, then listeners run. When the file cannot be
   * written (a full disk is one reason to reach for a switch) the change still applies, for this
   * run of the node only, and `persistError` says why it was not kept.
   */
  set(change: Partial<OpsSwitchState>): { state: OpsSwitchState; persistError?: string } {
    const next = { ...this.state, ...change };
    let persistError: string | undefined;
    try {
      this.files?.writeDurably(OPS_SWITCHES_FILE, JSON.stringify(next) + '\n');
    } catch (e) {
      persistError = `${this.files?.describe(OPS_SWITCHES_FILE)}: ${(e as Error).message}`;
    }
    this.state = next;
    for (const fn of this.listeners) fn(this.snapshot());
    return { state: this.snapshot(), ...(persistError ? { persistError } : {}) };
  }

  /** Calls `fn` with the state now and after every change. */
  observe(fn: (s: OpsSwitchState) => void): void {
    this.listeners.push(fn);
    fn(this.snapshot());
  }

  /** The lines `/v1/status`, `quorumkv status`/`health` and the status page show as warnings. */
  warnings(nodeId: string): string[] {
    return [
      ...(this.state.maintenance ? [`${nodeId}: maintenance mode is on: membership changes and automatic leader transfers are refused (quorumkv maintenance off)`] : []),
      ...(this.state.snapshotSendsPaused ? [`${nodeId}: catch-up snapshot sends are paused: followers that need a snapshot wait (quorumkv snapshot-rate resume)`] : []),
    ];
  }
}

/** Parses the switch file; a damaged one is a start-up error naming the file, never a silent default. */
export function parseSwitches(text: string, where: string): OpsSwitchState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${where}: not JSON; fix or delete it (it holds the maintenance and snapshot-pause switches)`);
  }
  const r = raw as Record<string, unknown> | null;
  if (typeof r !== 'object' || r === null || typeof r.maintenance !== 'boolean' || typeof r.snapshotSendsPaused !== 'boolean') {
    throw new Error(`${where}: expected {"maintenance": bool, "snapshotSendsPaused": bool}; fix or delete it`);
  }
  return { maintenance: r.maintenance, snapshotSendsPaused: r.snapshotSendsPaused };
}
