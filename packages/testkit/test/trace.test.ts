import { describe, expect, it } from 'vitest';
import { Trace } from '@quorumkv/testkit';

describe('Trace', () => {
  it('keeps only the last events, oldest first, and builds lazy text on demand', () => {
    const trace = new Trace(3);
    let built = 0;
    for (let i = 1; i <= 5; i++) {
      trace.add(i, 'n1', () => {
        built++;
        return `event ${i}`;
      });
    }
    expect(built).toBe(0);
    expect(trace.size).toBe(5);
    const text = trace.format();
    expect(text.split('\n')).toEqual(['t=    3 n1  event 3', 't=    4 n1  event 4', 't=    5 n1  event 5']);
    expect(built).toBe(3);
    expect(trace.last(2).map((e) => e.tick)).toEqual([4, 5]);
  });

  it('passes every event to onEvent in verbose mode', () => {
    const trace = new Trace(2);
    const lines: string[] = [];
    trace.onEvent = (l) => lines.push(l);
    trace.add(1, '-', 'a');
    trace.add(2, 'n2', 'b');
    trace.add(3, 'n3', 'c');
    expect(lines).toHaveLength(3);
    expect(() => new Trace(0)).toThrow(RangeError);
  });
});
