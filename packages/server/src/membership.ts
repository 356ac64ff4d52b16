// Membership records: who is in the cluster, at which address, in which zone. The core knows
// only ids; addresses and zones travel in a conf change's context and are stored with the
// applied membership.
import type { Member, Membership } from '@quorumkv/storage';
import type { PeerSpec } from './config.js';
import { isIncarnation } from './identity.js';

export function membershipFromPeers(peers: PeerSpec[]): Membership {
  return { voters: peers.map((p) => ({ id: p.id, address: p.address })), learners: [] };
}

/**
 * The context string of a conf change that adds `address` (and `zone`), or records the member's
 * `incarnation` (a conf change of the member's current kind, which changes nothing else).
 */
export function memberContext(address: string, zone?: string, incarnation?: string): string {
  return JSON.stringify({ address, ...(zone ? { zone } : {}), ...(incarnation ? { incarnation } : {}) });
}

export function parseMemberContext(ctx: string): { address?: string; zone?: string; incarnation?: string } | undefined {
  try {
    const v = JSON.parse(ctx) as unknown;
    if (typeof v !== 'object' || v === null) return undefined;
    const o = v as Record<string, unknown>;
    return {
      ...(typeof o.address === 'string' ? { address: o.address } : {}),
      ...(typeof o.zone === 'string' ? { zone: o.zone } : {}),
      ...(isIncarnation(o.incarnation) ? { incarnation: o.incarnation } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Operator warnings about failure domains: one zone holding a quorum of voters. */
export function zoneWarnings(voters: Member[], zoneOf: (m: Member) => string | undefined): string[] {
  const quorum = Math.floor(voters.length / 2) + 1;
  const byZone = new Map<string, number>();
  for (const v of voters) {
    const z = zoneOf(v);
    if (z) byZone.set(z, (byZone.get(z) ?? 0) + 1);
  }
  const out: string[] = [];
  for (const [z, n] of byZone) {
    if (n >= quorum && voters.length > 1) out.push(`zone "${z}" holds ${n} of ${voters.length} voters, a quorum: losing that zone stops the cluster`);
  }
  return out;
}
