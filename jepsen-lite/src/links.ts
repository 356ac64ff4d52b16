// The fault proxies of a whole cluster: one per directed link, and the mapping from "node x
// stops hearing node y" to which proxy blocks which byte direction.
//
// Node a reaches node b only through b's front door (router.ts), which tells a's connections
// apart from others' by the transport's hello header: that is the link `a->b`. Raft traffic between a and b may flow over a connection a dialed (proxy `a->b`)
// or one b dialed (proxy `b->a`), so a one-way cut y→x must block y's bytes on both:
//   on `x->y` (x dialed): the `down` direction (y → x);
//   on `y->x` (y dialed): the `up` direction (y → x).

import type { Cut } from './nemesis.js';
import type { Direction, Link, Shaping } from './proxy.js';
import { NodeRouter } from './router.js';

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

/** Options of {@link LinkSet.start}. */
export interface LinkSetOptions {
  nodes: readonly string[];
  /** Each node's real listen address. */
  targets: ReadonlyMap<string, { host: string; port: number }>;
  seed: number;
}

/** The front doors of a cluster (one {@link NodeRouter} per node) and their directed links. */
export class LinkSet {
  private constructor(private readonly routers: Map<string, NodeRouter>) {}

  /** Starts one router per node on 127.0.0.1 (ports chosen by the OS). */
  static async start(options: LinkSetOptions): Promise<LinkSet> {
    const routers = new Map<string, NodeRouter>();
    try {
      for (const [i, node] of options.nodes.entries()) {
        const t = options.targets.get(node);
        if (t === undefined) throw new Error(`no address for node ${node}`);
        routers.set(node, await NodeRouter.start({ node, targetHost: t.host, targetPort: t.port, peers: options.nodes, seed: options.seed + 100 * i }));
      }
    } catch (err) {
      await Promise.all([...routers.values()].map((r) => r.close()));
      throw err;
    }
    return new LinkSet(routers);
  }

  /** The address every node (and client) uses to reach `node`: its front door. */
  addressOf(node: string): string {
    const r = this.routers.get(node);
    if (r === undefined) throw new Error(`no router for node ${node}`);
    return `127.0.0.1:${r.port}`;
  }

  /** Applies directed cuts; `loud` resets both links of each pair instead. */
  cut(cuts: readonly Cut[], mode: 'silent' | 'loud'): void {
    for (const c of cuts) {
      if (mode === 'loud') {
        this.get(c[0], c[1]).cutLoud();
        this.get(c[1], c[0]).cutLoud();
      } else for (const { link, direction } of directionsForCut(c)) this.byName(link).cutSilent([direction]);
    }
  }

  /** Shapes both links between `a` and `b`, both byte directions. */
  shapePair(a: string, b: string, shaping: Shaping): void {
    this.get(a, b).shape(shaping);
    this.get(b, a).shape(shaping);
  }

  /** Heals every link: no cuts, no shaping. */
  healAll(): void {
    for (const r of this.routers.values()) for (const l of r.links.values()) l.heal();
  }

  /** Stops every router. */
  async close(): Promise<void> {
    await Promise.all([...this.routers.values()].map((r) => r.close()));
  }

  /** The link on which `from` dials `to`. */
  private get(from: string, to: string): Link {
    const l = this.routers.get(to)?.links.get(from);
    if (l === undefined) throw new Error(`no link ${linkName(from, to)}`);
    return l;
  }

  private byName(name: string): Link {
    const [from, to] = name.split('->') as [string, string];
    return this.get(from, to);
  }
}
