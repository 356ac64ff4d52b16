// The history: every client operation as an invocation and a completion, one JSON object per
// line, in the shape of Jepsen's history maps so external checkers (Knossos, Elle, Porcupine
// adapters) can read it. jepsen-lite records it from real clients, a simulation may record it from
// simulated ones; jepsen-lite/README.md § "History format" describes the file. Pure: the clock is
// passed in, and reading files is the caller's business.

/**
 * Invocation or one of the three completions (Jepsen `:type`): `ok` happened; `fail` certainly
 * did not (for a write: its error code says "not applied"); `info` unknown — a write answered
 * QKV_INDETERMINATE (or never answered) may take effect at any time after its invocation, or never.
 */
export type OpType = 'invoke' | 'ok' | 'fail' | 'info';

/** Every operation type the workloads produce (Jepsen `:f`). */
export type OpF = 'read' | 'write' | 'cas' | 'add' | 'delete' | 'transfer';

/**
 * One line of `history.jsonl`. Field names and meanings follow Jepsen's history maps:
 * `process` (`:process`), `type` (`:type`), `f` (`:f`), `value` (`:value`), `time` (`:time`,
 * nanoseconds on one monotonic clock since the start of the test), `index` (`:index`, the line
 * number from 0). `node` is the endpoint the client used; `term` is the Raft term of the leader
 * that acknowledged a write, when the client learned it; `error` is the error code of a fail/info.
 */
export interface Op {
  index: number;
  process: number;
  type: OpType;
  f: OpF;
  value: unknown;
  time: number;
  node?: string;
  term?: number;
  error?: string;
}

/** An invocation paired with its completion (undefined completion = never completed, like info). */
export interface OpPair {
  invoke: Op;
  complete: Op | undefined;
}

/** A history line that could not be read; `line` counts from 1. */
export class HistoryFormatError extends Error {
  readonly code = 'JL_HISTORY_FORMAT';
  readonly line: number;
  constructor(line: number, message: string) {
    super(`history line ${line}: ${message}`);
    this.name = 'HistoryFormatError';
    this.line = line;
  }
}

const OP_TYPES: ReadonlySet<string> = new Set(['invoke', 'ok', 'fail', 'info']);
const OP_FS: ReadonlySet<string> = new Set(['read', 'write', 'cas', 'add', 'delete', 'transfer']);

/** Longest history line the loader accepts; a longer one is a corrupt file, not a workload. */
export const HISTORY_LINE_BYTES_MAX = 1 << 20;

/** Options of {@link HistoryRecorder}. */
export interface HistoryRecorderOptions {
  /**
   * The monotonic clock, in nanoseconds: `process.hrtime.bigint` for real clients, the simulated
   * clock in a simulation. Op times are nanoseconds since the recorder was created.
   */
  nowNs: () => bigint;
}

/**
 * Records a history in memory with one monotonic clock. Not thread-safe by design: Node runs
 * every workload process on the one event loop, so appends are already ordered.
 *
 * @example
 * const rec = new HistoryRecorder({ nowNs: process.hrtime.bigint });
 * const inv = rec.invoke(0, 'write', ['k1', 3], 'n1');
 * rec.complete(inv, 'ok', ['k1', 3]);
 */
export class HistoryRecorder {
  readonly ops: Op[] = [];
  private readonly open = new Map<number, Op>();
  private readonly startNs: bigint;
  private readonly nowNs: () => bigint;

  constructor(options: HistoryRecorderOptions) {
    this.nowNs = options.nowNs;
    this.startNs = this.nowNs();
  }

  /** Nanoseconds since the recorder was created, on the recorder's monotonic clock. */
  elapsedNs(): number {
    return Number(this.nowNs() - this.startNs);
  }

  /** Records an invocation; a process may have only one open operation (Jepsen's rule). */
  invoke(process: number, f: OpF, value: unknown, node?: string): Op {
    if (this.open.has(process)) throw new Error(`process ${process} already has an open operation`);
    const op: Op = { index: this.ops.length, process, type: 'invoke', f, value, time: this.elapsedNs() };
    if (node !== undefined) op.node = node;
    this.ops.push(op);
    this.open.set(process, op);
    return op;
  }

  /** Records the completion of `invocation`; `extra` carries `term` / `error` when known. */
  complete(invocation: Op, type: Exclude<OpType, 'invoke'>, value: unknown, extra: { term?: number; error?: string } = {}): Op {
    if (this.open.get(invocation.process) !== invocation) throw new Error(`process ${invocation.process} has no such open operation`);
    this.open.delete(invocation.process);
    const op: Op = { index: this.ops.length, process: invocation.process, type, f: invocation.f, value, time: this.elapsedNs() };
    if (invocation.node !== undefined) op.node = invocation.node;
    if (extra.term !== undefined) op.term = extra.term;
    if (extra.error !== undefined) op.error = extra.error;
    this.ops.push(op);
    return op;
  }

  /** The history as JSON lines (one op per line, trailing newline). */
  toJsonLines(): string {
    return serializeHistory(this.ops);
  }
}

/** Serializes ops as JSON lines. */
export function serializeHistory(ops: readonly Op[]): string {
  return ops.map((op) => JSON.stringify(op)).join('\n') + (ops.length > 0 ? '\n' : '');
}

/**
 * Parses and validates JSON-lines history text: every line an object with the fields of
 * {@link Op}, `index` equal to the line's position, times non-decreasing, every completion
 * matching the open invocation of its process (same `f`). Blank lines are ignored.
 */
export function parseHistory(text: string): Op[] {
  const ops: Op[] = [];
  const open = new Map<number, Op>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue;
    const lineNo = i + 1;
    if (raw.length > HISTORY_LINE_BYTES_MAX) throw new HistoryFormatError(lineNo, `line longer than ${HISTORY_LINE_BYTES_MAX} bytes`);
    const op = validateOp(parseJson(raw, lineNo), lineNo, ops.length);
    const prev = ops[ops.length - 1];
    if (prev !== undefined && op.time < prev.time) throw new HistoryFormatError(lineNo, `time ${op.time} goes backwards (previous ${prev.time})`);
    checkPairing(op, open, lineNo);
    ops.push(op);
  }
  return ops;
}

function parseJson(raw: string, lineNo: number): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    throw new HistoryFormatError(lineNo, `not JSON (${(err as Error).message})`);
  }
}

function validateOp(v: unknown, lineNo: number, expectedIndex: number): Op {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HistoryFormatError(lineNo, 'not a JSON object');
  const o = v as Record<string, unknown>;
  const fail = (msg: string): never => {
    throw new HistoryFormatError(lineNo, msg);
  };
  if (!Number.isSafeInteger(o.process) || (o.process as number) < 0) fail('`process` must be a non-negative integer');
  if (typeof o.type !== 'string' || !OP_TYPES.has(o.type)) fail('`type` must be one of invoke, ok, fail, info');
  if (typeof o.f !== 'string' || !OP_FS.has(o.f)) fail('`f` must be one of read, write, cas, add, delete');
  if (!('value' in o)) fail('`value` is missing (use null)');
  if (!Number.isSafeInteger(o.time) || (o.time as number) < 0) fail('`time` must be a non-negative integer (ns)');
  if (o.index !== undefined && o.index !== expectedIndex) fail(`\`index\` is ${String(o.index)}, expected ${expectedIndex}`);
  if (o.node !== undefined && typeof o.node !== 'string') fail('`node` must be a string');
  if (o.term !== undefined && !Number.isSafeInteger(o.term)) fail('`term` must be an integer');
  if (o.error !== undefined && typeof o.error !== 'string') fail('`error` must be a string');
  const op: Op = { index: expectedIndex, process: o.process as number, type: o.type as OpType, f: o.f as OpF, value: o.value, time: o.time as number };
  if (o.node !== undefined) op.node = o.node as string;
  if (o.term !== undefined) op.term = o.term as number;
  if (o.error !== undefined) op.error = o.error as string;
  return op;
}

function checkPairing(op: Op, open: Map<number, Op>, lineNo: number): void {
  const pending = open.get(op.process);
  if (op.type === 'invoke') {
    if (pending !== undefined) throw new HistoryFormatError(lineNo, `process ${op.process} invokes while op ${pending.index} is still open`);
    open.set(op.process, op);
    return;
  }
  if (pending === undefined) throw new HistoryFormatError(lineNo, `process ${op.process} completes with no open invocation`);
  if (pending.f !== op.f) throw new HistoryFormatError(lineNo, `completion f=${op.f} does not match invocation f=${pending.f} (op ${pending.index})`);
  open.delete(op.process);
}

/**
 * Pairs each invocation with its completion, in invocation order. An invocation with no
 * completion (the run ended first) gets `complete: undefined` and is treated like `info`.
 */
export function pairOps(ops: readonly Op[]): OpPair[] {
  const pairs: OpPair[] = [];
  const open = new Map<number, OpPair>();
  for (const op of ops) {
    if (op.type === 'invoke') {
      const pair: OpPair = { invoke: op, complete: undefined };
      pairs.push(pair);
      open.set(op.process, pair);
    } else {
      const pair = open.get(op.process);
      if (pair === undefined) throw new Error(`op ${op.index}: completion without invocation`);
      pair.complete = op;
      open.delete(op.process);
    }
  }
  return pairs;
}

/** The effective outcome of a pair: a missing completion counts as `info`. */
export function outcomeOf(pair: OpPair): Exclude<OpType, 'invoke'> {
  const t = pair.complete?.type;
  return t === undefined || t === 'invoke' ? 'info' : t;
}

/** One line of a hand-written history: `[process, type, f, value]`. */
export type HistoryLine = [number, OpType, OpF, unknown];

/**
 * Builds a valid history from hand-written lines, 10 ns apart: for tests and examples.
 *
 * @example
 * historyOf([[0, 'invoke', 'write', ['x', 1]], [0, 'ok', 'write', ['x', 1]]]);
 */
export function historyOf(lines: readonly HistoryLine[]): Op[] {
  return lines.map(([process, type, f, value], index) => ({ index, process, type, f, value, time: (index + 1) * 10 }));
}
