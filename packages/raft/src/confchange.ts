// Membership changes travel in the log as entries of type ConfChange. The encoding is a small
// JSON document: the core has no dependencies and conf changes are rare.
import { RaftError } from './errors.js';
import { ConfChangeType, type ConfChange } from './types.js';

// Both exist globally in Node and browsers; the core compiles without DOM or Node typings.
declare class TextEncoder {
  encode(s: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(b: Uint8Array): string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const TYPES = new Set<number>(Object.values(ConfChangeType));

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return encoder.encode(JSON.stringify({ t: cc.type, n: cc.nodeId, ...(cc.context !== undefined ? { c: cc.context } : {}) }));
}

/** Decodes a ConfChange entry's data; throws RaftError (QKV_BAD_CONF_CHANGE) on malformed input. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(data));
  } catch (e) {
    throw new RaftError('QKV_BAD_CONF_CHANGE', 'conf change entry is not valid JSON', { cause: e });
  }
  const o = v as { t?: unknown; n?: unknown; c?: unknown };
  if (typeof o !== 'object' || o === null || typeof o.t !== 'number' || !TYPES.has(o.t) || typeof o.n !== 'string' || o.n === '') {
    throw new RaftError('QKV_BAD_CONF_CHANGE', 'conf change entry has a bad shape');
  }
  if (o.c !== undefined && typeof o.c !== 'string') throw new RaftError('QKV_BAD_CONF_CHANGE', 'conf change context must be a string');
  return { type: o.t as ConfChange['type'], nodeId: o.n, ...(o.c !== undefined ? { context: o.c as string } : {}) };
}
