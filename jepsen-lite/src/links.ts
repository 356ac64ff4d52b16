// The fault proxies of a whole cluster: one per directed link, and the mapping from "node x
// stops hearing node y" to which proxy blocks which byte direction.
//
// Node a reaches node b only by dialing the proxy `a->b` (a's --peers list names that proxy as
// b's address). Raft traffic between a and b may flow over a connection a dialed (proxy `a->b`)
// or one b dialed (proxy `b->a`), so a one-way cut y→x must block y's bytes on both:
//   on `x->y` (x dialed): the `down` direction (y → x);
//   on `y->x` (y dialed): the `up` direction (y → x).

import type { Cut } from './nemesis.js';
import type { Direction, Shaping } from './proxy.js';
import { FaultProxy } from './proxy.js';

/** Name of the proxy on the link where `from` dials `to`. */
export function linkName(from: string, to: string): string {
  return `${from}->${to}`;
}

/** Which proxy directions carry bytes from `cut[0]` to `cut[1]`. */
export function directionsForCut([from, to]: Cut): { link: string; direction: Direction }[] {
  return [
    { link: linkName(to, from), direction: 'down' },
    { link: linkName(from, to), direction: 'up' },
  ];
}

/** Every directed link between `nodes`. */
export function allLinks(nodes: readonly string[]): [string, string][] {
  return nodes.flatMap((a) => nodes.filter((b) => b !== a).map((b) => [a, b] as [string, string]));
}

/** Options of {@link LinkSet.start}. */
export interface LinkSetOptions {
  nodes: readonly string[];
  /** Each node's real listen address. */
  targets: ReadonlyMap<string, { host: string; port: number }>;
  seed: number;
}

/** The running proxies of a cluster. */
export class LinkSet {
  private constructor(private readonly proxies: Map<string, FaultProxy>) {}

  /** Starts one proxy per directed link on 127.0.0.1 (ports chosen by the OS). */
  static async start(options: LinkSetOptions): Promise<LinkSet> {
    const proxies = new Map<string, FaultProxy>();
    let i = 0;
    try {
      for (const [a, b] of allLinks(options.nodes)) {
        const t = options.targets.get(b);
        if (t === undefined) throw new Error(`no address for node ${b}`);
        const name = linkName(a, b);
        proxies.set(name, await FaultProxy.start({ name, targetHost: t.host, targetPort: t.port, seed: options.seed + i++ }));
      }
    } catch (err) {
      await Promise.all([...proxies.values()].map((p) => p.close()));
      throw err;
    }
    return new LinkSet(proxies);
  }

  /** The address node `from` must use to reach `to`. */
  addressFor(from: string, to: string): string {
    return `127.0.0.1:${this.get(linkName(from, to)).port}`;
  }

  /** Applies directed cuts; `loud` resets both links of each pair instead. */
  cut(cuts: readonly Cut[], mode: 'silent' | 'loud'): void {
    for (const c of cuts) {
      if (mode === 'loud') {
        this.get(linkName(c[0], c[1])).cutLoud();
        this.get(linkName(c[1], c[0])).cutLoud();
      } else for (const { link, direction } of directionsForCut(c)) this.get(link).cutSilent([direction]);
    }
  }

  /** Shapes both links between `a` and `b`, both byte directions. */
  shapePair(a: string, b: string, shaping: Shaping): void {
    this.get(linkName(a, b)).shape(shaping);
    this.get(linkName(b, a)).shape(shaping);
  }

  /** Heals every link: no cuts, no shaping. */
  healAll(): void {
    for (const p of this.proxies.values()) p.heal();
  }

  /** Stops every proxy. */
  async close(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
  }

  private get(name: string): FaultProxy {
    const p = this.proxies.get(name);
    if (p === undefined) throw new Error(`no proxy for link ${name}`);
    return p;
  }
}
