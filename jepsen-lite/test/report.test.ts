import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDir } from '../src/check.js';
import { generateRegisterHistory, mutateReadToUnwritten } from '@quorumkv/checker';
import type { Op } from '../src/history.js';
import { serializeHistory } from '../src/history.js';
import { createRng } from '../src/random.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`jepsen-lite report browser test skipped: ${CHROMIUM} not found (install with: apt-get install -y chromium)`);

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'jl-report-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A saved run directory: ~8 s of register history, two faults, status polls, hashes, a node log. */
function writeRunDir(name: string, ops: Op[]): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'nodes'), { recursive: true });
  writeFileSync(join(dir, 'history.jsonl'), serializeHistory(ops));
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ name, workload: 'register', seed: 5, nodes: ['n1', 'n2', 'n3'], nemeses: ['partition-leader', 'kill-one'] }));
  const s = 1e9;
  writeFileSync(join(dir, 'faults.jsonl'), [
    { id: 'e1', kind: 'isolate', label: 'e1 isolate @leader (n1)', startNs: 1 * s, endNs: 3 * s },
    { id: 'e2', kind: 'kill', label: 'e2 kill n2', startNs: 4.5 * s, endNs: 6 * s },
  ].map((x) => JSON.stringify(x)).join('\n'));
  writeFileSync(join(dir, 'status.jsonl'), [
    { node: 'n1', time: 0.5 * s, role: 'leader', term: 1, leader: 'n1' },
    { node: 'n2', time: 0.5 * s, role: 'follower', term: 1, leader: 'n1' },
    { node: 'n2', time: 2 * s, role: 'leader', term: 2, leader: 'n2' },
  ].map((x) => JSON.stringify(x)).join('\n'));
  writeFileSync(join(dir, 'hashes.jsonl'), ['n1', 'n2', 'n3'].map((node) => JSON.stringify({ final: true, node, appliedIndex: 40, appliedHash: 'h40', stateHash: 'S' })).join('\n'));
  writeFileSync(join(dir, 'nodes', 'n1.log'), '{"msg":"started"}\n');
  return dir;
}

const history = () => generateRegisterHistory({ seed: 11, processes: 6, ops: 300, keys: 4, stepNsMax: 25_000_000 });

describe('check <dir> and the report files', () => {
  it('checks a saved valid run and writes a self-contained report and summary', async () => {
    const dir = writeRunDir('valid-run', history());
    const { check, summary } = await checkDir(dir);
    expect(check.valid).toBe(true);
    expect(Object.keys(check.results).sort()).toEqual(['availability', 'linearizable', 'log-agreement', 'split-brain']);
    const onDisk = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as typeof summary;
    expect(onDisk).toEqual(summary);
    expect(onDisk.ops.total).toBe(300);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).not.toMatch(/<script[^>]+src=/i); // nothing loaded from elsewhere
    expect(html).not.toMatch(/<link[^>]+stylesheet/i);
    expect(html).toContain('Chart.js'); // the library is inlined
    expect(html).toContain('href="history.jsonl"');
    expect(html).toContain('href="nodes/n1.log"');
  });

  it('checks a saved invalid run and says which key failed', async () => {
    const dir = writeRunDir('invalid-run', mutateReadToUnwritten(history(), createRng(3))!);
    const { check, summary } = await checkDir(dir);
    expect(check.valid).toBe(false);
    expect(summary.checkers.linearizable?.valid).toBe(false);
    expect(summary.checkers.linearizable?.summary).toMatch(/1 keys not linearizable/);
  });

  it('skips checkers whose inputs are absent instead of failing them', async () => {
    const dir = join(root, 'bare');
    mkdirSync(dir);
    writeFileSync(join(dir, 'history.jsonl'), serializeHistory(history()));
    const { check } = await checkDir(dir);
    expect(check.valid).toBe(true);
    expect(check.skipped.map((s) => s.checker)).toEqual(['split-brain', 'log-agreement', 'node-exits', 'node-memory']);
  });
});

describe.skipIf(!hasChromium)('report.html in headless Chromium', () => {
  async function open(dir: string) {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    const page = await browser.newPage();
    const errors: string[] = [];
    const external: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      external.push(url);
      return route.abort();
    });
    await page.goto(pathToFileURL(join(dir, 'report.html')).href);
    await page.waitForSelector('body[data-rendered="true"]', { timeout: 15_000 });
    return { browser, page, errors, external };
  }

  it('renders the verdict and all three charts with no console errors, offline', async () => {
    const dir = writeRunDir('browser-valid', history());
    await checkDir(dir);
    const { browser, page, errors, external } = await open(dir);
    try {
      expect(await page.textContent('#verdict')).toBe('VALID');
      const drawn = await page.evaluate(() => {
        const g = globalThis as unknown as { Chart: { getChart(id: string): { data: { datasets: { data: unknown[] }[] } } | undefined } };
        return ['chart-timeline', 'chart-latency', 'chart-throughput'].map((id) => g.Chart.getChart(id)?.data.datasets.reduce((n, d) => n + d.data.length, 0) ?? -1);
      });
      expect(drawn[0]).toBe(300);
      expect(drawn[1]).toBeGreaterThan(0);
      expect(drawn[2]).toBeGreaterThan(0);
      // The canvas really has pixels on it (not just a chart object).
      const inked = await page.evaluate(() => {
        const c = document.getElementById('chart-timeline') as HTMLCanvasElement;
        const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i]! > 0) n++;
        return n;
      });
      expect(inked).toBeGreaterThan(1000);
      expect(await page.textContent('td[data-checker="linearizable"]')).toBe('VALID');
      expect(errors).toEqual([]);
      expect(external).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  it('shows INVALID for an invalid run', async () => {
    const dir = writeRunDir('browser-invalid', mutateReadToUnwritten(history(), createRng(3))!);
    await checkDir(dir);
    const { browser, page, errors } = await open(dir);
    try {
      expect(await page.textContent('#verdict')).toBe('INVALID');
      expect(await page.textContent('td[data-checker="linearizable"]')).toBe('INVALID');
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
