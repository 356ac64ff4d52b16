// The transcript file format: parsing keeps every comment and blank line so a rewrite changes
// only outputs; the tokenizer understands groups, key=value and quoted data.
import { describe, expect, it } from 'vitest';
import { parseScript, renderScript, tokenize } from './transcript-format.js';

const script = `# a comment
# more

add-nodes 3 voters=(1, 2,3)
----
old output
line two

campaign n1
----
ok
`;

describe('transcript format', () => {
  it('round-trips a script unchanged', () => {
    const parsed = parseScript(script);
    const outputs = parsed.pieces.filter((p) => !Array.isArray(p)).map((p) => (p as { expected: string }).expected);
    expect(renderScript(parsed, outputs)).toBe(script);
  });

  it('replaces only the outputs on rewrite', () => {
    const out = renderScript(parseScript(script), ['new', 'ok']);
    expect(out).toBe(script.replace('old output\nline two', 'new'));
  });

  it('names the line of a command without a ---- separator', () => {
    expect(() => parseScript('# c\ncampaign n1\nnot a separator\n')).toThrow(/line 2/);
  });

  it('tokenizes groups, key=value, key=(group), quoted data', () => {
    expect(tokenize('partition (n1 n2) (n3)')).toEqual({
      cmd: 'partition',
      args: [
        { value: 'n1 n2', group: ['n1', 'n2'] },
        { value: 'n3', group: ['n3'] },
      ],
    });
    expect(tokenize('add-nodes 2 voters=(1,2) index=5').args).toEqual([
      { value: '2' },
      { key: 'voters', value: '1,2', group: ['1', '2'] },
      { key: 'index', value: '5' },
    ]);
    expect(tokenize('propose n1 "x=1 y"').args).toEqual([{ value: 'n1' }, { value: 'x=1 y' }]);
    expect(tokenize('cut 1>2').args).toEqual([{ value: '1>2' }]);
  });
});
