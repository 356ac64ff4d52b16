// The corruption tools: they damage exactly what they say (one bit, or a cut), only the files
// of the kinds asked for, and the same seed damages the same way.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptionError, classifyDataFile, corruptDataDir, damageableFiles, flipBit, truncateTo } from '../src/corrupt.js';
import { createRng } from '../src/random.js';

describe('corruption tools', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'jl-corrupt-'));
    for (const [name, text] of Object.entries({ '000012.log': 'wal bytes', '000011.ldb': 'table', 'MANIFEST-000010': 'manifest', CURRENT: 'MANIFEST-000010\n', CLUSTER_ID: 'c1', HIGH_WATER: 'mark', LOG: 'info', LOCK: '' })) {
      writeFileSync(join(dir, name), text);
    }
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('classifies what a node depends on, and nothing else', () => {
    expect(['000012.log', '000011.ldb', 'MANIFEST-000010', 'CURRENT', 'CLUSTER_ID', 'HIGH_WATER', 'LOG', 'LOCK', 'LOG.old'].map(classifyDataFile)).toEqual(['wal', 'table', 'manifest', 'current', 'identity', 'high-water', null, null, null]);
    expect(damageableFiles(dir, ['wal', 'identity']).map((f) => f.kind)).toEqual(['wal', 'identity']);
  });

  it('flips exactly one bit and truncates to exactly the length asked', () => {
    const f = join(dir, 'CURRENT');
    const before = readFileSync(f);
    flipBit(f, 3, 5);
    const after = readFileSync(f);
    expect(after.length).toBe(before.length);
    expect([...after].map((b, i) => b ^ before[i]!)).toEqual([0, 0, 0, 32, ...new Array<number>(before.length - 4).fill(0)]);
    truncateTo(f, 4);
    expect(readFileSync(f).length).toBe(4);
    expect(() => flipBit(f, 4, 0)).toThrow(CorruptionError);
    expect(() => truncateTo(f, 4)).toThrow(CorruptionError);
  });

  it('damages one file of the kinds asked, the same way for the same seed', () => {
    const snapshot = () => Object.fromEntries(damageableFiles(dir).map(({ file }) => [file, readFileSync(file).toString('hex')]));
    const before = snapshot();
    const d = corruptDataDir(dir, createRng(7), { kinds: ['wal', 'table'] });
    const after = snapshot();
    const changed = Object.keys(before).filter((f) => before[f] !== after[f]);
    expect(changed).toEqual([d.file]);
    expect(['wal', 'table']).toContain(d.kind);
    // Undo and replay with the same seed: the same damage.
    writeFileSync(d.file, Buffer.from(before[d.file]!, 'hex'));
    expect(corruptDataDir(dir, createRng(7), { kinds: ['wal', 'table'] })).toEqual(d);
    expect(() => corruptDataDir(dir, createRng(1), { kinds: ['wal'], action: 'truncate' })).not.toThrow();
    rmSync(join(dir, '000012.log'));
    expect(() => corruptDataDir(dir, createRng(1), { kinds: ['wal'] })).toThrow(/no file of kinds wal/);
  });
});
