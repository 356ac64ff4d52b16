// Text formats for transcript tests: parsing scenario files, tokenizing command lines, and
// printing messages, entries and Ready contents in one readable, stable form.
//
// A scenario file is a sequence of directives separated by blank lines; lines starting with `#`
// between directives are comments. A directive is one command line, a `----` line, and the
// expected output (no blank lines inside; an empty output is written as `ok`).
import { decodeRound } from '../src/readonly.js';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  decodeConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type Ready,
  type Snapshot,
} from '../src/index.js';

/** One command of a scenario file with the output the file expects from it. */
export interface Directive {
  /** The command line as written. */
  command: string;
  /** 1-based line number of the command, for error messages. */
  line: number;
  expected: string;
}

/** A scenario file split into directives and the verbatim text around them (for rewriting). */
export interface ParsedScript {
  /** Alternates: text before directive 0, directive 0, text, directive 1, …, trailing text. */
  pieces: Array<string[] | Directive>;
}

/** Parses a scenario file. Throws with the line number on a malformed directive. */
export function parseScript(text: string): ParsedScript {
  const lines = text.split('\n');
  const pieces: Array<string[] | Directive> = [];
  let passthrough: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith('#')) {
      passthrough.push(line);
      i++;
      continue;
    }
    if (lines[i + 1] !== '----') throw new Error(`line ${i + 1}: command "${line}" must be followed by a "----" line`);
    const out: string[] = [];
    let j = i + 2;
    while (j < lines.length && lines[j]!.trim() !== '') out.push(lines[j++]!);
    pieces.push(passthrough);
    passthrough = [];
    pieces.push({ command: line, line: i + 1, expected: out.join('\n') });
    i = j;
  }
  pieces.push(passthrough);
  return { pieces };
}

/** Writes a parsed script back with new outputs (one per directive, in order). */
export function renderScript(script: ParsedScript, outputs: string[]): string {
  let k = 0;
  const lines: string[] = [];
  for (const p of script.pieces) {
    if (Array.isArray(p)) lines.push(...p);
    else lines.push(p.command, '----', outputs[k++] ?? p.expected);
  }
  return lines.join('\n');
}

/** A command argument: a word, a parenthesised group, or key=value (value a word or a group). */
export type Arg = { key?: string; value: string; group?: string[] };

/** Splits `cmd a key=v key=(x, y) (p q) "quoted text"` into the command and its arguments. */
export function tokenize(line: string): { cmd: string; args: Arg[] } {
  const re = /([\w-]+)=\(([^)]*)\)|\(([^)]*)\)|([\w-]+)="([^"]*)"|"([^"]*)"|(\S+)/g;
  const args: Arg[] = [];
  for (const m of line.matchAll(re)) {
    if (m[1] !== undefined) args.push({ key: m[1], value: m[2]!, group: splitGroup(m[2]!) });
    else if (m[3] !== undefined) args.push({ value: m[3], group: splitGroup(m[3]) });
    else if (m[4] !== undefined) args.push({ key: m[4], value: m[5]! });
    else if (m[6] !== undefined) args.push({ value: m[6] });
    else {
      const w = m[7]!;
      const eq = w.indexOf('=');
      if (eq > 0) args.push({ key: w.slice(0, eq), value: w.slice(eq + 1) });
      else args.push({ value: w });
    }
  }
  const first = args.shift();
  if (!first || first.key !== undefined) throw new Error(`bad command line: ${line}`);
  return { cmd: first.value, args };
}

function splitGroup(s: string): string[] {
  return s.split(/[\s,]+/).filter((x) => x !== '');
}

const TYPE_NAMES = new Map<number, string>(Object.entries(MessageType).map(([k, v]) => [v, `Msg${k}`]));
const CC_NAMES = new Map<number, string>(Object.entries(ConfChangeType).map(([k, v]) => [v, k]));
const decoder = new TextDecoder();

/** Bytes as a short quoted string: printable ASCII verbatim, long values elided with their size. */
export function quoteBytes(b: Uint8Array): string {
  const printable = b.every((c) => c >= 0x20 && c < 0x7f);
  const shown = printable ? decoder.decode(b.subarray(0, 16)) : [...b.subarray(0, 8)].map((c) => c.toString(16).padStart(2, '0')).join('');
  const q = printable ? JSON.stringify(shown) : `0x${shown}`;
  return b.length > (printable ? 16 : 8) ? `${q}…(${b.length}B)` : q;
}

/** `term/index EntryNormal "data"` or `term/index EntryConfChange AddNode n4`. */
export function describeEntry(e: Entry): string {
  const head = `${e.term}/${e.index}`;
  if (e.type === EntryType.ConfChange) {
    try {
      const cc = decodeConfChange(e.data);
      return `${head} EntryConfChange ${CC_NAMES.get(cc.type) ?? cc.type} ${cc.nodeId}`;
    } catch {
      return `${head} EntryConfChange <malformed ${quoteBytes(e.data)}>`;
    }
  }
  return `${head} EntryNormal ${quoteBytes(e.data)}`;
}

/** `Voters:[n1 n2] Learners:[n3]`. */
export function describeConfState(cs: ConfState): string {
  return `Voters:[${cs.voters.join(' ')}] Learners:[${cs.learners.join(' ')}]`;
}

/** `HardState Term:2 Vote:n1 Commit:5` (`-` for no vote). */
export function describeHardState(hs: HardState): string {
  return `HardState Term:${hs.term} Vote:${hs.vote ?? '-'} Commit:${hs.commit}`;
}

/** `Index:7 Term:2 ConfState:…` (the data is not printed). */
export function describeSnapshot(s: Snapshot): string {
  return `Index:${s.metadata.index} Term:${s.metadata.term} ConfState:${describeConfState(s.metadata.confState)}`;
}

/** One message on one line, e.g. `n1->n2 MsgApp Term:1 Log:1/2 Commit:2 Entries:[1/3 EntryNormal "x"]`. */
export function describeMessage(m: Message): string {
  let s = `${m.from}->${m.to} ${TYPE_NAMES.get(m.type) ?? `Msg${m.type}`} Term:${m.term}`;
  switch (m.type) {
    case MessageType.App:
      s += ` Log:${m.logTerm}/${m.index} Commit:${m.commit}`;
      if (m.entries.length > 0) s += ` Entries:[${m.entries.map(describeEntry).join(', ')}]`;
      break;
    case MessageType.AppResp:
      s += ` Index:${m.index}`;
      if (m.reject) s += ` Rejected (Hint: ${m.rejectHintTerm ?? 0}/${m.rejectHint})`;
      break;
    case MessageType.Vote:
    case MessageType.PreVote:
      s += ` Log:${m.logTerm}/${m.index}`;
      if (m.context && m.context.length > 0) s += ' (leadership transfer)';
      return s;
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      if (m.reject) s += ' Rejected';
      break;
    case MessageType.Heartbeat:
      s += ` Commit:${m.commit}`;
      break;
    case MessageType.Snap:
      if (m.snapshot) s += ` Snapshot: ${describeSnapshot(m.snapshot)}`;
      break;
    case MessageType.ReadIndexResp:
      s += ` Index:${m.index}`;
      break;
  }
  const round = decodeRound(m.context);
  if (round !== undefined) s += ` ReadRound:${round}`;
  else if (m.context && m.context.length > 0) s += ` Context:${quoteBytes(m.context)}`;
  return s;
}

/** The lines printed for one Ready (etcd's rafttest layout). */
export function describeReady(rd: Ready): string[] {
  const out = [`Ready MustSync=${rd.mustSync}:`];
  if (rd.softState) out.push(`State:${rd.softState.role} Lead:${rd.softState.lead ?? '-'}`);
  if (rd.hardState) out.push(describeHardState(rd.hardState));
  if (rd.snapshot) out.push(`Snapshot ${describeSnapshot(rd.snapshot)}`);
  const section = (title: string, items: string[]): void => {
    if (items.length === 0) return;
    out.push(`${title}:`);
    for (const it of items) out.push(`  ${it}`);
  };
  section('Entries', rd.entries.map(describeEntry));
  section('CommittedEntries', rd.committedEntries.map(describeEntry));
  section('Messages', rd.messages.map(describeMessage));
  section(
    'ReadStates',
    rd.readStates.map((r) => `Index:${r.index} Context:${quoteBytes(r.requestCtx)}`),
  );
  return out;
}
