// ConfChange entries travel in the log; a malformed one (a corrupt disk, a bad peer) must give a
// typed error with a stable code, never a crash with a TypeError.
import { describe, expect, it } from 'vitest';
import { ConfChangeType, RaftError, decodeConfChange, encodeConfChange, type ConfChange } from '../src/index.js';

const enc = (s: string) => new TextEncoder().encode(s);

function decodeError(data: Uint8Array): RaftError {
  try {
    decodeConfChange(data);
  } catch (e) {
    expect(e).toBeInstanceOf(RaftError);
    return e as RaftError;
  }
  throw new Error('expected decodeConfChange to throw');
}

describe('confchange encode/decode', () => {
  const changes: ConfChange[] = [
    { type: ConfChangeType.AddNode, nodeId: 'n4' },
    { type: ConfChangeType.AddLearner, nodeId: 'n5', context: 'ws://10.0.0.5:7400' },
    { type: ConfChangeType.RemoveNode, nodeId: 'n2', context: '' },
  ];
  for (const cc of changes) {
    it(`round-trips ${JSON.stringify(cc)}`, () => {
      expect(decodeConfChange(encodeConfChange(cc))).toEqual(cc);
    });
  }

  const malformed: Array<[string, Uint8Array]> = [
    ['empty input', new Uint8Array(0)],
    ['invalid UTF-8', new Uint8Array([0xff, 0xfe, 0x7b])],
    ['not JSON', enc('{t:0')],
    ['JSON null', enc('null')],
    ['a JSON array', enc('[0,"n1"]')],
    ['a JSON string', enc('"n1"')],
    ['missing type', enc('{"n":"n1"}')],
    ['unknown type', enc('{"t":9,"n":"n1"}')],
    ['type as string', enc('{"t":"0","n":"n1"}')],
    ['missing node id', enc('{"t":0}')],
    ['empty node id', enc('{"t":0,"n":""}')],
    ['numeric node id', enc('{"t":0,"n":4}')],
    ['non-string context', enc('{"t":0,"n":"n1","c":42}')],
  ];
  for (const [name, data] of malformed) {
    it(`rejects ${name} with QKV_BAD_CONF_CHANGE`, () => {
      expect(decodeError(data).code).toBe('QKV_BAD_CONF_CHANGE');
    });
  }

  it('keeps the parse error as the cause', () => {
    expect(decodeError(enc('{')).cause).toBeInstanceOf(SyntaxError);
  });
});
