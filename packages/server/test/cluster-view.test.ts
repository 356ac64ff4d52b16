// The status page's pieces without processes: the leader-change ring stays bounded and windowed,
// the fan-out never has more than its limit of member requests in flight, and the page's CSP names
// exactly the hashes of its inline script and style (else the browser would refuse to run them).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LeaderHistory, LEADER_HISTORY_MAX, LEADER_HISTORY_WINDOW_MS } from '../src/leader-history.js';
import { mapBounded } from '../src/cluster-view.js';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from '../src/status-page.js';

describe('LeaderHistory', () => {
  it('keeps at most LEADER_HISTORY_MAX events, dropping the oldest, and counts the dropped', () => {
    const h = new LeaderHistory();
    for (let i = 0; i < LEADER_HISTORY_MAX + 100; i++) h.record({ atMs: 1_000_000 + i, term: i + 1, leader: `n${i % 3}` });
    const all = h.since(1_000_000 + LEADER_HISTORY_MAX + 100, Number.MAX_SAFE_INTEGER);
    expect(all.length).toBe(LEADER_HISTORY_MAX);
    expect(all[0]!.term).toBe(101);
    expect(all.at(-1)!.term).toBe(LEADER_HISTORY_MAX + 100);
    expect(h.dropped).toBe(100);
  });

  it('since() returns only the window, oldest first', () => {
    const h = new LeaderHistory();
    const now = 10 * LEADER_HISTORY_WINDOW_MS;
    h.record({ atMs: now - LEADER_HISTORY_WINDOW_MS - 1, term: 1, leader: 'n1' });
    h.record({ atMs: now - 5000, term: 2, leader: null });
    h.record({ atMs: now - 1000, term: 3, leader: 'n2' });
    expect(h.since(now).map((e) => e.term)).toEqual([2, 3]);
  });
});

describe('mapBounded', () => {
  it('never runs more than the limit at once and keeps the input order', async () => {
    let running = 0;
    let peak = 0;
    const out = await mapBounded([5, 1, 4, 2, 3, 0, 6, 7, 8, 9], 3, async (ms) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, ms));
      running--;
      return ms * 10;
    });
    expect(peak).toBe(3);
    expect(out).toEqual([50, 10, 40, 20, 30, 0, 60, 70, 80, 90]);
  });
});

describe('status page CSP', () => {
  const hash = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;
  it('allows exactly the inline script and style of the page, and nothing inline else', () => {
    const scripts = [...STATUS_PAGE_HTML.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
    const styles = [...STATUS_PAGE_HTML.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1]!);
    expect(scripts.length).toBe(1);
    expect(styles.length).toBe(1);
    expect(STATUS_PAGE_CSP).toContain(`script-src ${hash(scripts[0]!)};`);
    expect(STATUS_PAGE_CSP).toContain(`style-src ${hash(styles[0]!)};`);
    expect(STATUS_PAGE_CSP).not.toMatch(/unsafe|\*/);
    expect(STATUS_PAGE_HTML).not.toMatch(/\sstyle=|\son\w+=|innerHTML/); // no inline attributes, text only
  });
});
