// The watch streams of one `/client` connection: `watch` opens one (its request id names it),
// `watchAck` gives credit (one frame per entry, to many watches at once), `watchCancel` stops it. Frames for a stream are ordinary answers
// carrying its id; an error answer ends it. How many a connection may hold is the hub's
// per-connection limit (QKV_BUSY), so this map is bounded.
import {
  InvalidArgumentError,
  errorToWire,
  type ClientRequest,
  type ClientResponse,
  type WatchHandle,
  type WatchRequest,
  type WatchResult,
  type WatchService,
} from '@quorumkv/protocol';

/** What the streams need from their connection. */
export interface WatchConnectionPort {
  send(response: ClientResponse): void;
  /** Sends one frame of watch `id`. */
  push(id: number, result: WatchResult): void;
  /** Closes the connection for a protocol violation. */
  fail(reason: string): void;
  /** True when `id` names a request in flight (a watch may not reuse it). */
  inUse(id: number): boolean;
}

type WatchFrame = Extract<ClientRequest, { op: 'watch' | 'watchAck' | 'watchCancel' }>;

/** See the top of the file. */
export class ConnectionWatches {
  private readonly open = new Map<number, WatchHandle>();

  constructor(
    private readonly service: WatchService | undefined,
    /** Whom the hub counts these watches against (the connection). */
    private readonly owner: object,
    private readonly port: WatchConnectionPort,
  ) {}

  /** True when a stream named `id` is open. */
  has(id: number): boolean {
    return this.open.has(id);
  }

  /** Handles a watch, watchAck or watchCancel request. Never throws. */
  onRequest(req: WatchFrame): void {
    if (req.op === 'watchAck') {
      for (const w of req.watches) this.open.get(w)?.ack(1);
      return;
    }
    if (req.op === 'watchCancel') {
      this.open.get(req.id)?.cancel();
      this.open.delete(req.id);
      return;
    }
    this.start(req);
  }

  /** Cancels every stream (the connection is going away). */
  cancelAll(): void {
    for (const h of this.open.values()) h.cancel();
    this.open.clear();
  }

  private start(req: WatchRequest): void {
    const id = req.id;
    if (this.open.has(id) || this.port.inUse(id)) return this.port.fail(`request id ${id} is already in flight`);
    if (!this.service) return this.port.send({ id, ok: false, error: errorToWire(new InvalidArgumentError('this server does not serve watch')) });
    const { id: _id, op: _op, timeoutMs: _t, ...args } = req;
    try {
      const handle = this.service.open(args, this.owner, {
        push: (result) => {
          if (this.open.has(id)) this.port.push(id, result);
        },
        end: (err) => {
          if (this.open.delete(id)) this.port.send({ id, ok: false, error: errorToWire(err) });
        },
      });
      this.open.set(id, handle);
    } catch (e) {
      this.port.send({ id, ok: false, error: errorToWire(e) });
    }
  }
}
