// The status page's rendering in headless Chromium, fed synthetic /v1/cluster answers (no
// processes): snapshot transfers get progress bars at the right fraction, warnings and problems are
// shown, request rates come from the difference of two polls, and text from the cluster is shown as
// text, never run as HTML. The page is served with its real CSP, so a violation would show as a
// console error. Without Chromium: skipped with a message, except under CI=true, where it fails.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from '../src/status-page.js';

const CHROMIUM = '/usr/bin/chromium';
const RUN_BROWSER = existsSync(CHROMIUM) || process.env.CI === 'true';
if (!RUN_BROWSER) console.warn(`skipping the status page rendering test: ${CHROMIUM} not found (apt-get install -y chromium)`);
const ORIGIN = 'http://qkv.invalid';

/** A /v1/cluster answer: n1 leads and sends a snapshot to n3; n2 is unreachable; `requests` ok so far on n1. */
function view(nowMs: number, requests: number) {
  const status = (id: string, role: string, snapshots: unknown[] = []) => ({ id, role, term: 4, leader: 'n1', commitIndex: 900, appliedIndex: 900, zone: 'a', members: [], snapshots });
  const events = (id: string) => ({ id, nowMs, leaderChanges: [{ atMs: nowMs - 60_000, term: 4, leader: 'n1' }], droppedLeaderChanges: 0, requests: { put: { ok: requests, failed: 0 } }, apply: { count: requests, sumSeconds: requests * 0.002 } });
  const transfer = { peer: 'n3', direction: 'send', index: 800, term: 4, state: 'streaming', bytesDone: 250, totalBytes: 1000, rateBytesPerSec: 100, etaSec: 7, attempts: 1, startedAtMs: nowMs - 3000 };
  return {
    from: 'n1',
    nowMs,
    health: {
      healthy: false, leader: 'n1', term: 4, problems: ['n2: unreachable (ECONNREFUSED)'], warnings: ['zone "a" holds 2 of 3 voters, a quorum: losing that zone stops the cluster'],
      members: [
        { id: 'n1', address: '127.0.0.1:1', reachable: true, role: 'leader', term: 4, leader: 'n1', appliedIndex: 900, commitIndex: 900, lagEntries: 0, fsyncP99Seconds: 0.004, zone: 'a', storageShortfall: null, votingSuspended: null, problems: [] },
        { id: 'n2', address: '127.0.0.1:2', reachable: false, role: null, term: null, leader: null, appliedIndex: null, commitIndex: null, lagEntries: null, fsyncP99Seconds: null, zone: null, storageShortfall: null, votingSuspended: null, problems: ['unreachable (ECONNREFUSED)'] },
        { id: '<img src=x>', address: '127.0.0.1:3', reachable: true, role: 'follower', term: 4, leader: 'n1', appliedIndex: 100, commitIndex: 900, lagEntries: 800, fsyncP99Seconds: 0.02, zone: 'b', storageShortfall: null, votingSuspended: null, problems: [] },
      ],
    },
    members: [
      { id: 'n1', address: '127.0.0.1:1', status: status('n1', 'leader', [transfer]), events: events('n1'), error: null },
      { id: 'n2', address: '127.0.0.1:2', status: null, events: null, error: 'ECONNREFUSED' },
      { id: '<img src=x>', address: '127.0.0.1:3', status: status('n3', 'follower'), events: null, error: null },
    ],
  };
}

describe.skipIf(!RUN_BROWSER)('status page rendering', () => {
  it('shows progress bars, warnings, problems and request rates, and cluster text as text', async () => {
    const { chromium } = await import('playwright-core');
    const profile = mkdtempSync(join(tmpdir(), 'qkv-ui-render-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      const errors: string[] = [];
      const elsewhere: string[] = [];
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      page.on('pageerror', (e) => errors.push(String(e)));
      let polls = 0;
      await page.route('**/*', (route) => {
        const url = route.request().url();
        if (url === `${ORIGIN}/ui`) return route.fulfill({ status: 200, headers: { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': STATUS_PAGE_CSP }, body: STATUS_PAGE_HTML });
        if (url === `${ORIGIN}/v1/cluster`) {
          polls++;
          return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(view(1_000_000 + polls * 1000, polls * 50)) });
        }
        elsewhere.push(url);
        return route.abort();
      });
      await page.goto(`${ORIGIN}/ui`);
      await page.waitForSelector('body[data-rendered="true"]', { timeout: 10_000 });
      // The second poll gives a rate: 50 more requests in 1 s on n1, 2 ms per apply batch.
      await page.waitForFunction(() => document.querySelector('tr[data-member="n1"] td[data-field="rps"]')?.textContent === '50.0', undefined, { timeout: 5000 });
      expect(await page.textContent('tr[data-member="n1"] td[data-field="apply"]')).toBe('2.00 ms');
      const bar = page.locator('li[data-transfer="n1>n3"] progress');
      expect(await bar.evaluate((p: HTMLProgressElement) => [p.value, p.max])).toEqual([250, 1000]);
      expect(await page.textContent('li[data-transfer="n1>n3"]')).toContain('n1 sending to n3 (streaming): 250 / 1000 bytes');
      expect(await page.textContent('#warnings')).toContain('zone "a" holds 2 of 3 voters');
      expect(await page.textContent('#verdict')).toBe('UNHEALTHY: n2: unreachable (ECONNREFUSED)');
      expect(await page.getAttribute('tr[data-member="n2"]', 'data-reachable')).toBe('false');
      expect(await page.textContent('tr[data-member="<img src=x>"] td[data-field="lag"]')).toBe('800');
      expect(await page.locator('#members img').count()).toBe(0); // a member id is text, not markup
      expect(await page.textContent('#events')).toContain('term 4: leader n1 (seen by n1)');
      expect(errors).toEqual([]);
      expect(elsewhere).toEqual([]);
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
