// The node's implementation of the client contract (KvService from @quorumkv/protocol): maps
// validated requests to commands through the log, and apply results back to answers and typed
// errors. Both the WebSocket endpoint and the HTTP API call through here.
import {
  BusyError,
  CasFailedError,
  CompactedError,
  InvalidArgumentError,
  LimitExceededError,
  QuorumKvError,
  compareBytes,
  rangeInterval,
  InternalError,
  SessionExpiredError,
  type CallContext,
  type CasArgs,
  type CasResult,
  type ClusterStatus,
  type CompactArgs,
  type CompactResult,
  type DeleteArgs,
  type DeleteResult,
  type GetArgs,
  type GetResult,
  type KvService,
  type NodeIdentity,
  type PutArgs,
  type PutResult,
  type RangeArgs,
  type RangeResult,
  type SessionRef,
  type TxnArgs,
  type TxnResult,
  type WireItem,
} from '@quorumkv/protocol';
import { FutureRevisionError, RANGE_ROW_OVERHEAD_BYTES, RevisionCompactedError, type ApplyResult, type Command, type KeyValue, type RangeRequest, type SessionTag } from '@quorumkv/storage';
import type { ByteBudget } from './admission.js';
import type { QuorumKvNode, WriteResult } from './node.js';
import { failureDomainWarnings, zoneOfMember } from './membership.js';
import { prepareTxn, toTxnResult } from './txn-command.js';

/** The protocol's session reference is the state machine's session tag (both number writes from 1). */
export function toSessionTag(s: SessionRef): SessionTag {
  return { id: s.id, seq: s.seq, ackedBelow: s.ackedBelow };
}

export function toWireItem(kv: KeyValue): WireItem {
  return { key: kv.key, value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version };
}

/** `retryAfterMs` of a write refused because the idempotency table is full (its keys expire by TTL). */
export const IDEMPOTENCY_FULL_RETRY_AFTER_MS = 5000;

/** Turns an apply error result into the typed error the client expects. */
export function throwIfApplyError(r: ApplyResult): void {
  if (r.op !== 'error') return;
  switch (r.code) {
    case 'QKV_SESSION_EXPIRED':
      throw new SessionExpiredError(r.message);
    case 'QKV_SESSIONS_FULL':
      throw new BusyError(1000, r.message);
    case 'QKV_FUTURE_REVISION':
      throw new InvalidArgumentError(r.message);
    case 'QKV_LIMIT_EXCEEDED':
      throw new LimitExceededError(r.message);
    case 'QKV_IDEMPOTENCY_KEY_REUSED':
      throw new QuorumKvError(r.code, r.message);
    case 'QKV_IDEMPOTENCY_FULL':
      throw new BusyError(IDEMPOTENCY_FULL_RETRY_AFTER_MS, r.message);
    default:
      throw new InternalError(r.message);
  }
}

/**
 * The storage range for a page: prefix or [start, end), resumed strictly after `after`, or null
 * when the page is empty. The interval itself is the protocol's (rangeInterval), so the server and
 * the client's fakes agree on it.
 */
export function pageRange(args: { prefix?: Uint8Array | undefined; start?: Uint8Array | undefined; end?: Uint8Array | undefined; after?: Uint8Array | undefined }): RangeRequest | null {
  const iv = rangeInterval({
    ...(args.prefix ? { prefix: args.prefix } : {}),
    ...(args.start ? { start: args.start } : {}),
    ...(args.end ? { end: args.end } : {}),
    ...(args.after ? { after: args.after } : {}),
  });
  if (iv.endExclusive && compareBytes(iv.startInclusive, iv.endExclusive) >= 0) return null;
  return iv.endExclusive ? { start: iv.startInclusive, end: iv.endExclusive } : { start: iv.startInclusive };
}

/** A read's storage error as the client contract has it: compacted → QKV_COMPACTED, future revision → QKV_INVALID_ARGUMENT. */
function throwReadError(e: unknown): never {
  if (e instanceof RevisionCompactedError) throw new CompactedError(e.compactedRevision, e.message, { cause: e });
  if (e instanceof FutureRevisionError) throw new InvalidArgumentError(e.message, { cause: e });
  throw e;
}

function putResult(r: WriteResult): PutResult {
  throwIfApplyError(r);
  if (r.op !== 'put') throw new InternalError(`unexpected apply result ${r.op} for put`);
  return { revision: r.revision, term: r.term };
}

/** How long a range waits for room in the node's range budget before it is answered QKV_BUSY. */
export const RANGE_BUDGET_WAIT_MS = 500;
/** `retryAfterMs` of a range refused for lack of range budget. */
export const RANGE_BUSY_RETRY_AFTER_MS = 100;

export class NodeKvService implements KvService {
  constructor(
    private readonly node: QuorumKvNode,
    /** The node's budget of range bytes in flight, shared by every range on the node (HTTP and WebSocket). */
    private readonly rangeBudget: ByteBudget,
  ) {}

  identity(): NodeIdentity {
    return { serverId: this.node.id, leader: this.node.leaderHint() };
  }

  async get(args: GetArgs, ctx: CallContext): Promise<GetResult> {
    if (args.consistency === 'linearizable') await this.node.linearizableBarrier(ctx);
    const kv = await this.node.get(args.key, args.revision === undefined ? undefined : { revision: args.revision }).catch(throwReadError);
    return { item: kv ? toWireItem(kv) : null };
  }

  put(args: PutArgs, ctx: CallContext): Promise<PutResult> {
    // Not async (the hot path): one promise reaction instead of two suspended async frames.
    try {
      return this.node.write({ op: 'put', key: args.key, value: args.value, session: toSessionTag(args.session) }, ctx).then(putResult);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async delete(args: DeleteArgs, ctx: CallContext): Promise<DeleteResult> {
    const r = await this.write({ op: 'del', key: args.key, session: toSessionTag(args.session) }, ctx);
    if (r.op !== 'del') throw new InternalError(`unexpected apply result ${r.op} for delete`);
    return { revision: r.revision, deleted: r.deleted, term: r.term };
  }

  async cas(args: CasArgs, ctx: CallContext): Promise<CasResult> {
    const c = args.condition;
    const cond = c.kind === 'modRevision' ? { modRevision: c.modRevision } : c.kind === 'value' ? { value: c.value } : { absent: true as const };
    const then = args.action.kind === 'put' ? { op: 'put' as const, value: args.action.value } : { op: 'del' as const };
    const r = await this.write({ op: 'cas', key: args.key, cond, then, session: toSessionTag(args.session) }, ctx);
    if (r.op !== 'cas') throw new InternalError(`unexpected apply result ${r.op} for cas`);
    if (!r.succeeded) throw new CasFailedError(r.current?.modRevision ?? 0);
    return { revision: r.revision, term: r.term };
  }

  /**
   * One page of a range. The page first takes an allowance of two rows of the largest size (the
   * first row, which every page returns, and the row that shows there is more) from the node's
   * range budget, waiting up to RANGE_BUDGET_WAIT_MS; every further row is charged as it is read,
   * and a row the budget cannot take ends the page early (`more: true`). So the rows that ranges
   * hold at any time stay within the budget, however many run at once.
   */
  async range(args: RangeArgs, ctx: CallContext): Promise<RangeResult> {
    if (args.consistency === 'linearizable') await this.node.linearizableBarrier(ctx);
    const req = pageRange(args);
    if (!req) return { items: [], more: false, ...(args.revision === undefined ? {} : { revision: args.revision }) };
    const budget = this.rangeBudget;
    const allowance = 2 * (this.node.cfg.maxKeyBytes + this.node.cfg.maxValueBytes + RANGE_ROW_OVERHEAD_BYTES);
    const waitMs = Math.min(RANGE_BUDGET_WAIT_MS, ctx.deadlineMs - this.node.clock.nowMs());
    await budget.take(allowance, waitMs, RANGE_BUSY_RETRY_AFTER_MS).catch((e: unknown) => {
      this.node.metrics.busyRejections.inc({ kind: 'range-budget' });
      throw e;
    });
    let grown = 0;
    const admitBytes = (n: number) => budget.tryTakeMore(n) && ((grown += n), true);
    try {
      const at = args.revision === undefined ? {} : { revision: args.revision };
      const page = await this.node.rangePage(req, { limit: args.limit, maxBytes: args.maxResultBytes, admitBytes, ...at }).catch(throwReadError);
      return { items: page.items.map(toWireItem), more: page.more, revision: page.revision };
    } finally {
      budget.give(allowance + grown);
    }
  }

  /** Proposes a compact through the log; every node compacts at the same revision when it applies it. */
  async compact(args: CompactArgs, ctx: CallContext): Promise<CompactResult> {
    const r = await this.write({ op: 'compact', revision: args.revision }, ctx);
    if (r.op !== 'compact') throw new InternalError(`unexpected apply result ${r.op} for compact`);
    return { compactedRevision: r.compactedRevision, revision: r.revision };
  }

  /** A transaction through the log (txn-command.ts maps it to one `txn` command and back). */
  async txn(args: TxnArgs, ctx: CallContext): Promise<TxnResult> {
    const p = prepareTxn(args, toSessionTag(args.session));
    return toTxnResult(p, await this.node.write(p.cmd, ctx));
  }

  async status(_ctx: CallContext): Promise<ClusterStatus> {
    const s = this.node.statusView();
    const m = this.node.membership();
    const self = { id: this.node.id, zone: this.node.cfg.zone };
    const zoneOf = (id: string, zone?: string) => zoneOfMember({ id, zone }, self);
    return {
      nodeId: s.id,
      role: s.role === 'learner' ? 'follower' : s.role,
      term: s.term,
      leader: this.node.leaderHint(),
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      members: [
        ...m.voters.map((v) => ({ id: v.id, address: v.address, kind: 'voter' as const, ...(zoneOf(v.id, v.zone) ? { zone: zoneOf(v.id, v.zone)! } : {}) })),
        ...m.learners.map((v) => ({ id: v.id, address: v.address, kind: 'learner' as const, ...(zoneOf(v.id, v.zone) ? { zone: zoneOf(v.id, v.zone)! } : {}) })),
      ],
      warnings: operatorWarnings(this.node),
    };
  }

  private async write(cmd: Command, ctx: CallContext): Promise<WriteResult> {
    const r = await this.node.write(cmd, ctx);
    throwIfApplyError(r);
    return r;
  }
}

/**
 * What an operator should know about this node and its cluster's layout: a storage shortfall,
 * any zone holding a quorum of the voters, and the operator switches that are on (ops-switches.ts).
 * The client's status and `/v1/status` both show it.
 */
export function operatorWarnings(node: Pick<QuorumKvNode, 'id' | 'cfg' | 'statusView' | 'membership' | 'opsSwitches'>): string[] {
  const s = node.statusView();
  return [
    ...(s.storageShortfall ? [`${s.id}: ${s.storageShortfall.reason}`] : []),
    ...failureDomainWarnings(node.membership(), { id: node.id, zone: node.cfg.zone }),
    ...node.opsSwitches.warnings(node.id),
  ];
}
