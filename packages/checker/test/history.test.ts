import { describe, expect, it } from 'vitest';
import { HistoryFormatError, HistoryRecorder, pairOps, parseHistory } from '../src/index.js';

describe('history recorder and parser', () => {
  it('records invoke/complete pairs with monotonic times and round-trips through JSON lines', () => {
    let now = 100n;
    const rec = new HistoryRecorder({ nowNs: () => (now += 5n) });
    const a = rec.invoke(0, 'write', ['k', 1], 'n1');
    const b = rec.invoke(1, 'read', ['k', null], 'n2');
    rec.complete(a, 'ok', ['k', 1], { term: 3 });
    rec.complete(b, 'info', ['k', null], { error: 'QKV_TIMEOUT' });
    const ops = parseHistory(rec.toJsonLines());
    expect(ops).toEqual(rec.ops);
    expect(ops.map((o) => o.time)).toEqual([5, 10, 15, 20]);
    expect(ops[2]).toMatchObject({ process: 0, type: 'ok', f: 'write', node: 'n1', term: 3, index: 2 });
    expect(pairOps(ops).map((p) => [p.invoke.index, p.complete?.index])).toEqual([[0, 2], [1, 3]]);
  });

  it('refuses a second open op on one process (Jepsen rule)', () => {
    const rec = new HistoryRecorder({ nowNs: () => 0n });
    rec.invoke(0, 'read', ['k', null]);
    expect(() => rec.invoke(0, 'read', ['k', null])).toThrow(/open operation/);
  });

  const bad: [string, string, RegExp][] = [
    ['not JSON', '{"process":0,', /line 1: not JSON/],
    ['not an object', '[1,2]', /not a JSON object/],
    ['bad type', '{"process":0,"type":"done","f":"read","value":null,"time":1}', /`type`/],
    ['bad f', '{"process":0,"type":"invoke","f":"scan","value":null,"time":1}', /`f`/],
    ['missing value', '{"process":0,"type":"invoke","f":"read","time":1}', /`value`/],
    ['negative time', '{"process":0,"type":"invoke","f":"read","value":null,"time":-1}', /`time`/],
    ['wrong index', '{"index":4,"process":0,"type":"invoke","f":"read","value":null,"time":1}', /`index`/],
    ['completion without invoke', '{"process":0,"type":"ok","f":"read","value":null,"time":1}', /no open invocation/],
    [
      'time going backwards',
      '{"process":0,"type":"invoke","f":"read","value":null,"time":5}\n{"process":0,"type":"ok","f":"read","value":null,"time":4}',
      /line 2: time 4 goes backwards/,
    ],
    [
      'mismatched f',
      '{"process":0,"type":"invoke","f":"read","value":null,"time":5}\n{"process":0,"type":"ok","f":"write","value":null,"time":6}',
      /does not match/,
    ],
  ];
  for (const [name, text, pattern] of bad) {
    it(`rejects ${name} with a line-numbered error`, () => {
      expect(() => parseHistory(text)).toThrow(HistoryFormatError);
      expect(() => parseHistory(text)).toThrow(pattern);
    });
  }

  it('accepts blank lines and an unfinished op at the end', () => {
    const ops = parseHistory('\n{"process":0,"type":"invoke","f":"read","value":null,"time":1}\n\n');
    expect(pairOps(ops)[0]?.complete).toBeUndefined();
  });
});
