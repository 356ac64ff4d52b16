// The layout of a run directory (`--out <dir>`) and validated loaders for each file in it.
//
//   run.json          RunMeta: workload, seed, nodes, nemeses, durationS, command
//   history.jsonl     the client history (history.ts)
//   schedule.json     the nemesis schedule as generated (nemesis.ts)
//   faults.jsonl      faults as executed: {id, kind, label, startNs, endNs}
//   status.jsonl      /v1/status polls: {node, time, role, term, leader}
//   hashes.jsonl      applied-hash samples {node, time, appliedIndex, appliedHash}
//                     and final states {final: true, node, appliedIndex, appliedHash, stateHash}
//   exits.jsonl       node process exits {node, pid, time, code, signal, expected} (local runs)
//   rss.jsonl         node resident memory samples {node, pid, time, rssBytes} (local runs)
//   hostile-frames.jsonl  the hostile peer's frames and what the nodes did with them
//   nodes/<id>.log    each node's stdout+stderr
//   report.html, summary.json   written by the checker
// Every file except history.jsonl is optional; a checker that lacks its input says `unknown`.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FinalNodeState, AppliedHashSample } from './checkers/log-agreement.js';
import type { StatusSample } from './checkers/split-brain.js';
import type { WatchRecord } from './checkers/watch.js';
import type { Op } from './history.js';
import type { NodeExit, RssSample } from './procwatch.js';
import { loadHistoryFile } from './history.js';
import type { LabelledFault, RunMeta } from './report.js';

/** File names inside a run directory. */
export const RUN_FILES = {
  meta: 'run.json',
  history: 'history.jsonl',
  schedule: 'schedule.json',
  faults: 'faults.jsonl',
  status: 'status.jsonl',
  hashes: 'hashes.jsonl',
  exits: 'exits.jsonl',
  rss: 'rss.jsonl',
  watches: 'watches.json',
  nodeLogs: 'nodes',
} as const;

/** A run-directory file that is missing or malformed. */
export class RunDirError extends Error {
  readonly code = 'JL_RUN_DIR';
}

/** Everything `check <dir>` needs, loaded and validated. */
export interface RunData {
  meta: RunMeta;
  ops: Op[];
  faults: LabelledFault[];
  status: StatusSample[];
  hashSamples: AppliedHashSample[];
  finals: FinalNodeState[];
  exits: NodeExit[];
  rss: RssSample[];
  /** The watch workload's record (watches.json), when the run has one. */
  watches: WatchRecord | undefined;
  /** Which optional files were present (a missing one makes its checker `unknown`, not `invalid`). */
  present: { status: boolean; hashes: boolean; faults: boolean; exits: boolean; rss: boolean };
  nodeLogs: { node: string; href: string }[];
}

type Obj = Record<string, unknown>;

function readJsonLines(path: string, validate: (o: Obj, where: string) => void): Obj[] {
  const out: Obj[] = [];
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      if (raw.trim() === '') return;
      const where = `${path}:${i + 1}`;
      let v: unknown;
      try {
        v = JSON.parse(raw);
      } catch (err) {
        throw new RunDirError(`${where}: not JSON (${(err as Error).message})`);
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RunDirError(`${where}: not a JSON object`);
      validate(v as Obj, where);
      out.push(v as Obj);
    });
  return out;
}

const need = (cond: boolean, where: string, what: string): void => {
  if (!cond) throw new RunDirError(`${where}: ${what}`);
};
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Loads a run directory; throws {@link RunDirError} (or HistoryFormatError) with file:line on bad input. */
export function loadRunDir(dir: string): RunData {
  if (!existsSync(dir)) throw new RunDirError(`${dir}: no such directory`);
  const historyPath = join(dir, RUN_FILES.history);
  if (!existsSync(historyPath)) throw new RunDirError(`${historyPath}: missing (a run directory needs at least the history)`);
  const ops = loadHistoryFile(historyPath);
  const p = (name: string): string => join(dir, name);
  const meta = existsSync(p(RUN_FILES.meta)) ? loadMeta(p(RUN_FILES.meta)) : {};
  const status = existsSync(p(RUN_FILES.status)) ? loadStatus(p(RUN_FILES.status)) : [];
  const hashes = existsSync(p(RUN_FILES.hashes)) ? loadHashes(p(RUN_FILES.hashes)) : { samples: [], finals: [] };
  const faults = existsSync(p(RUN_FILES.faults)) ? loadFaults(p(RUN_FILES.faults)) : [];
  const exits = existsSync(p(RUN_FILES.exits)) ? loadExits(p(RUN_FILES.exits)) : [];
  const rss = existsSync(p(RUN_FILES.rss)) ? loadRss(p(RUN_FILES.rss)) : [];
  const watches = existsSync(p(RUN_FILES.watches)) ? loadWatches(p(RUN_FILES.watches)) : undefined;
  const logsDir = p(RUN_FILES.nodeLogs);
  const nodeLogs = existsSync(logsDir)
    ? readdirSync(logsDir)
        .filter((f) => f.endsWith('.log'))
        .sort()
        .map((f) => ({ node: f.slice(0, -4), href: `${RUN_FILES.nodeLogs}/${f}` }))
    : [];
  return {
    meta,
    ops,
    faults,
    status,
    hashSamples: hashes.samples,
    finals: hashes.finals,
    exits,
    rss,
    watches,
    present: {
      status: existsSync(p(RUN_FILES.status)),
      hashes: existsSync(p(RUN_FILES.hashes)),
      faults: existsSync(p(RUN_FILES.faults)),
      exits: existsSync(p(RUN_FILES.exits)),
      rss: existsSync(p(RUN_FILES.rss)),
    },
    nodeLogs,
  };
}

function loadWatches(path: string): WatchRecord {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new RunDirError(`${path}: not JSON (${(err as Error).message})`);
  }
  const o = v as Partial<WatchRecord> | null;
  need(typeof o === 'object' && o !== null && Array.isArray(o.reference) && Array.isArray(o.watchers) && isNum(o.startRevision) && isNum(o.finalRevision), path, 'not a watch record (startRevision, finalRevision, reference, watchers)');
  return o as WatchRecord;
}

function loadMeta(path: string): RunMeta {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new RunDirError(`${path}: not JSON (${(err as Error).message})`);
  }
  need(typeof v === 'object' && v !== null && !Array.isArray(v), path, 'not a JSON object');
  return v as RunMeta;
}

function loadStatus(path: string): StatusSample[] {
  return readJsonLines(path, (o, w) => {
    need(isStr(o.node), w, '`node` must be a string');
    need(isNum(o.time), w, '`time` must be a number (ns)');
    need(isStr(o.role), w, '`role` must be a string');
    need(isNum(o.term), w, '`term` must be a number');
    need(o.leader === null || isStr(o.leader), w, '`leader` must be a string or null');
  }) as unknown as StatusSample[];
}

function loadHashes(path: string): { samples: AppliedHashSample[]; finals: FinalNodeState[] } {
  const rows = readJsonLines(path, (o, w) => {
    need(isStr(o.node), w, '`node` must be a string');
    need(isNum(o.appliedIndex), w, '`appliedIndex` must be a number');
    need(isStr(o.appliedHash), w, '`appliedHash` must be a string');
    if (o.final === true) need(isStr(o.stateHash) || o.stateHash === null, w, 'a final row needs `stateHash` (a string, or null)');
    else need(isNum(o.time), w, '`time` must be a number (ns)');
  });
  return {
    samples: rows.filter((r) => r.final !== true) as unknown as AppliedHashSample[],
    finals: rows.filter((r) => r.final === true) as unknown as FinalNodeState[],
  };
}

function loadExits(path: string): NodeExit[] {
  return readJsonLines(path, (o, w) => {
    need(isStr(o.node), w, '`node` must be a string');
    need(isNum(o.pid), w, '`pid` must be a number');
    need(isNum(o.time), w, '`time` must be a number (ns)');
    need(o.code === null || isNum(o.code), w, '`code` must be a number or null');
    need(o.signal === null || isStr(o.signal), w, '`signal` must be a string or null');
    need(o.expected === null || isStr(o.expected), w, '`expected` must be a string (the reason) or null');
  }) as unknown as NodeExit[];
}

function loadRss(path: string): RssSample[] {
  return readJsonLines(path, (o, w) => {
    need(isStr(o.node), w, '`node` must be a string');
    need(isNum(o.pid), w, '`pid` must be a number');
    need(isNum(o.time), w, '`time` must be a number (ns)');
    need(isNum(o.rssBytes), w, '`rssBytes` must be a number');
  }) as unknown as RssSample[];
}

function loadFaults(path: string): LabelledFault[] {
  return readJsonLines(path, (o, w) => {
    need(isStr(o.id), w, '`id` must be a string');
    need(isStr(o.kind), w, '`kind` must be a string');
    need(isNum(o.startNs), w, '`startNs` must be a number');
    need(o.endNs === null || isNum(o.endNs), w, '`endNs` must be a number or null');
  }).map((o) => ({ ...(o as unknown as LabelledFault), label: isStr(o.label) ? o.label : `${String(o.id)} ${String(o.kind)}` }));
}
