// The node's implementation of the client contract (KvService from @quorumkv/protocol): maps
// validated requests to commands through the log, and apply results back to answers and typed
// errors. Both the WebSocket endpoint and the HTTP API call through here.
import {
  BusyError,
  CasFailedError,
  compareBytes,
  rangeInterval,
  InternalError,
  SessionExpiredError,
  type CallContext,
  type CasArgs,
  type CasResult,
  type ClusterStatus,
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
  type WireItem,
} from '@quorumkv/protocol';
import type { ApplyResult, Command, KeyValue, RangeRequest, SessionTag } from '@quorumkv/storage';
import type { QuorumKvNode, WriteResult } from './node.js';
import { zoneWarnings } from './membership.js';

/** The protocol's session reference is the state machine's session tag (both number writes from 1). */
export function toSessionTag(s: SessionRef): SessionTag {
  return { id: s.id, seq: s.seq, ackedBelow: s.ackedBelow };
}

export function toWireItem(kv: KeyValue): WireItem {
  return { key: kv.key, value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version };
}

/** Turns an apply error result into the typed error the client expects. */
export function throwIfApplyError(r: ApplyResult): void {
  if (r.op !== 'error') return;
  switch (r.code) {
    case 'QKV_SESSION_EXPIRED':
      throw new SessionExpiredError(r.message);
    case 'QKV_SESSIONS_FULL':
      throw new BusyError(1000, r.message);
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

function putResult(r: WriteResult): PutResult {
  throwIfApplyError(r);
  if (r.op !== 'put') throw new InternalError(`unexpected apply result ${r.op} for put`);
  return { revision: r.revision, term: r.term };
}

export class NodeKvService implements KvService {
  constructor(private readonly node: QuorumKvNode) {}

  identity(): NodeIdentity {
    return { serverId: this.node.id, leader: this.node.leaderHint() };
  }

  async get(args: GetArgs, ctx: CallContext): Promise<GetResult> {
    if (args.consistency === 'linearizable') await this.node.linearizableBarrier(ctx);
    const kv = await this.node.get(args.key);
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

  async range(args: RangeArgs, ctx: CallContext): Promise<RangeResult> {
    if (args.consistency === 'linearizable') await this.node.linearizableBarrier(ctx);
    const req = pageRange(args);
    if (!req) return { items: [], more: false };
    const rows = await this.node.range(req, args.limit + 1);
    const items: WireItem[] = [];
    let bytes = 0;
    for (const kv of rows.slice(0, args.limit)) {
      const size = kv.key.length + kv.value.length + 64;
      if (items.length > 0 && bytes + size > args.maxResultBytes) return { items, more: true };
      bytes += size;
      items.push(toWireItem(kv));
    }
    return { items, more: rows.length > args.limit };
  }

  async status(_ctx: CallContext): Promise<ClusterStatus> {
    const s = this.node.statusView();
    const m = this.node.membership();
    const zoneOf = (id: string, zone?: string) => zone ?? (id === this.node.id ? this.node.cfg.zone : undefined);
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
      warnings: [
        ...(s.storageShortfall ? [`${s.id}: ${s.storageShortfall.reason}`] : []),
        ...zoneWarnings(m.voters, (v) => zoneOf(v.id, v.zone)),
      ],
    };
  }

  private async write(cmd: Command, ctx: CallContext): Promise<WriteResult> {
    const r = await this.node.write(cmd, ctx);
    throwIfApplyError(r);
    return r;
  }
}
