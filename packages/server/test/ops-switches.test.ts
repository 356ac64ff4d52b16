// The operator switches (src/ops-switches.ts): persisted on every change and read back at start;
// a damaged switch file is a start-up error naming the file; the warnings name the way out.
import { describe, expect, it } from 'vitest';
import { OPS_SWITCHES_FILE, OpsSwitches } from '../src/ops-switches.js';

/** An in-memory directory of small files. */
function memoryFiles(): { files: Map<string, string>; read(n: string): string | null; writeDurably(n: string, t: string): void; describe(n: string): string } {
  const files = new Map<string, string>();
  return { files, read: (n) => files.get(n) ?? null, writeDurably: (n, t) => void files.set(n, t), describe: (n) => `/data/${n}` };
}

describe('operator switches', () => {
  it('survive a restart: a new instance over the same files reads them back', () => {
    const dir = memoryFiles();
    const a = new OpsSwitches(dir);
    expect(a.snapshot()).toEqual({ maintenance: false, snapshotSendsPaused: false });
    a.set({ maintenance: true });
    a.set({ snapshotSendsPaused: true });
    expect(new OpsSwitches(dir).snapshot()).toEqual({ maintenance: true, snapshotSendsPaused: true });
    a.set({ maintenance: false });
    expect(new OpsSwitches(dir).snapshot()).toEqual({ maintenance: false, snapshotSendsPaused: true });
  });

  it('a change that cannot be written still applies, and says why it was not kept', () => {
    const dir = memoryFiles();
    dir.writeDurably = () => {
      throw new Error('ENOSPC: no space left on device');
    };
    const s = new OpsSwitches(dir);
    const r = s.set({ snapshotSendsPaused: true });
    expect(r.state.snapshotSendsPaused).toBe(true);
    expect(s.snapshotSendsPaused).toBe(true);
    expect(r.persistError).toBe(`/data/${OPS_SWITCHES_FILE}: ENOSPC: no space left on device`);
  });

  it('observers hear the state at once and after each change', () => {
    const s = new OpsSwitches();
    const seen: boolean[] = [];
    s.observe((x) => seen.push(x.snapshotSendsPaused));
    s.set({ snapshotSendsPaused: true });
    s.set({ snapshotSendsPaused: false });
    expect(seen).toEqual([false, true, false]);
  });

  it('a damaged file is refused with its path, never read as "all off"', () => {
    for (const text of ['{not json', '{"maintenance":"yes","snapshotSendsPaused":false}', '[]']) {
      const dir = memoryFiles();
      dir.files.set(OPS_SWITCHES_FILE, text);
      expect(() => new OpsSwitches(dir), text).toThrow(`/data/${OPS_SWITCHES_FILE}`);
    }
  });

  it('warnings say what is frozen and how to undo it', () => {
    const s = new OpsSwitches();
    expect(s.warnings('n1')).toEqual([]);
    s.set({ maintenance: true, snapshotSendsPaused: true });
    const w = s.warnings('n1');
    expect(w).toHaveLength(2);
    expect(w[0]).toMatch(/^n1: maintenance mode is on.*quorumkv maintenance off/);
    expect(w[1]).toMatch(/^n1: catch-up snapshot sends are paused.*quorumkv snapshot-rate resume/);
  });
});
