// Runs every scenario in test/transcripts/*.txt against real RawNodes and compares the output
// with the transcript checked in. To regenerate the expected output after an intended change:
//   QKV_REWRITE=1 pnpm vitest run packages/raft/test/transcript.test.ts
// (or `node packages/raft/test/rewrite-transcripts.mjs`), then review the diff like code.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TranscriptEnv } from './transcript.js';
import { parseScript, renderScript } from './transcript-format.js';

const dir = new URL('./transcripts/', import.meta.url).pathname;
const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();
const rewrite = process.env['QKV_REWRITE'] === '1';

describe('raft transcripts', () => {
  it('has scenarios', () => expect(files.length).toBeGreaterThan(0));
  for (const file of files) {
    it(file, () => {
      const path = dir + file;
      const script = parseScript(readFileSync(path, 'utf8'));
      const env = new TranscriptEnv();
      const outputs: string[] = [];
      for (const p of script.pieces) {
        if (Array.isArray(p)) continue;
        let actual: string;
        try {
          actual = env.run(p.command);
        } catch (e) {
          throw new Error(`${file}:${p.line}: ${p.command}: ${(e as Error).message}`, { cause: e });
        }
        outputs.push(actual);
        if (!rewrite) expect(actual, `${file}:${p.line}: ${p.command}`).toBe(p.expected);
      }
      if (rewrite) writeFileSync(path, renderScript(script, outputs));
    });
  }
});
