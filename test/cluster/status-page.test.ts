// The status page (/ui) of a real three-node cluster in headless Chromium: it renders the three
// members with one leader, under its strict Content-Security-Policy (no violation, nothing loaded
// from elsewhere); after the leader is killed, the page (loaded from a follower) shows the new
// leader and the dead member as unreachable within a few seconds, and lists the leader change.
// Without Chromium the browser case is skipped with a message, except under CI=true (CI installs
// it in .ci/system-deps.sh), where it fails.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster, httpRequest, jsonOf } from '../harness/cluster.js';

const CHROMIUM = '/usr/bin/chromium';
const RUN_BROWSER = existsSync(CHROMIUM) || process.env.CI === 'true';
if (!RUN_BROWSER) console.warn(`skipping the status page browser test: ${CHROMIUM} not found (apt-get install -y chromium)`);
/** How long the page may take to show a leader change (it polls once a second; an election takes < 1 s here). */
const PAGE_REACTS_MS = 8000;

describe('status page', () => {
  let cluster: ProcessCluster;
  let profile: string;
  beforeAll(async () => {
    cluster = await ProcessCluster.start({ name: 'qkv-ui', tickMs: 20, electionTicks: 10, nodeArgs: { n1: ['--zone', 'a'], n2: ['--zone', 'b'], n3: ['--zone', 'c'] } });
    profile = mkdtempSync(join(tmpdir(), 'qkv-ui-chromium-'));
  });
  afterAll(async () => {
    await cluster?.teardown();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });
  const guard = (fn: () => Promise<void>) => () => cluster.guard(fn)();

  it('/ redirects to /ui, which is served with a strict CSP; /v1/cluster and /v1/events answer', guard(async () => {
    await cluster.waitForLeader();
    const port = cluster.node('n1').port;
    const root = await httpRequest(port, 'GET', '/');
    expect(root.status).toBe(302);
    expect(root.headers.location).toBe('/ui');
    const ui = await httpRequest(port, 'GET', '/ui');
    expect(ui.status).toBe(200);
    const csp = String(ui.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[^']+'(;|$)/); // no 'unsafe-inline'
    expect(csp).not.toContain('unsafe');
    expect(ui.body.toString()).not.toMatch(/<(script|link)[^>]+(src|href)=/i);
    const view = jsonOf<{ health: { healthy: boolean; members: { id: string; reachable: boolean }[] } }>(await httpRequest(port, 'GET', '/v1/cluster'));
    expect(view.health.members.map((m) => [m.id, m.reachable])).toEqual([['n1', true], ['n2', true], ['n3', true]]);
    const events = jsonOf<{ leaderChanges: { term: number; leader: string | null }[] }>(await httpRequest(port, 'GET', '/v1/events'));
    expect(events.leaderChanges.at(-1)?.leader).toMatch(/^n\d$/);
  }));

  it.skipIf(!RUN_BROWSER)('renders one leader, then shows the new leader and the killed one unreachable', guard(async () => {
    const leader = await cluster.waitForLeader();
    const viewFrom = cluster.nodes.find((n) => n.id !== leader.id)!;
    const { chromium } = await import('playwright-core');
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
      page.on('request', (r) => !r.url().startsWith(`http://127.0.0.1:${viewFrom.port}/`) && elsewhere.push(r.url()));
      await page.goto(`http://127.0.0.1:${viewFrom.port}/`);
      expect(page.url()).toMatch(/\/ui$/);
      await page.waitForSelector('body[data-rendered="true"]', { timeout: 10_000 });
      await page.waitForFunction(() => document.querySelectorAll('tr[data-role="leader"]').length === 1, undefined, { timeout: PAGE_REACTS_MS });
      expect(await page.locator('#members tr').count()).toBe(3);
      expect(await page.locator('tr[data-role="leader"]').getAttribute('data-member')).toBe(leader.id);
      expect(await page.locator('tr[data-role="follower"]').count()).toBe(2);
      expect(await page.textContent(`tr[data-member="${leader.id}"] td[data-field="health"]`)).toBe('healthy');
      expect(await page.textContent('#leader')).toBe(leader.id);
      expect(await page.locator(`#events li[data-leader="${leader.id}"]`).count()).toBeGreaterThan(0);

      await cluster.kill9(leader.id);
      const killedAt = Date.now();
      await page.waitForFunction(
        (dead) => {
          const lead = document.querySelector('tr[data-role="leader"]');
          const gone = document.querySelector(`tr[data-member="${dead}"]`);
          return lead !== null && lead.getAttribute('data-member') !== dead && gone?.getAttribute('data-reachable') === 'false';
        },
        leader.id,
        { timeout: PAGE_REACTS_MS },
      );
      const reactedMs = Date.now() - killedAt;
      const next = await page.locator('tr[data-role="leader"]').getAttribute('data-member');
      console.log(`status page showed the new leader ${next} and ${leader.id} unreachable ${reactedMs} ms after the kill`);
      expect(await page.textContent(`tr[data-member="${leader.id}"] td[data-field="health"]`)).toMatch(/^unreachable/);
      expect(await page.textContent('#verdict')).toMatch(/^UNHEALTHY/);
      await page.waitForSelector(`#events li[data-leader="${next}"]`, { timeout: PAGE_REACTS_MS });
      expect(errors).toEqual([]); // a CSP violation is a console error
      expect(elsewhere).toEqual([]);
    } finally {
      await browser.close();
    }
  }), 60_000);
});
