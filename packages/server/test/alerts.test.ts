// deploy/prometheus/alerts.yml: `promtool check rules` accepts it, and `promtool test rules` runs
// its unit tests (alerts.test.yml: no leader, a member down, a storage shortfall, leader flapping,
// slow fsync, a high failover time, unavailability errors, a restart loop, a nearly full disk and
// paused snapshot sends fire on synthetic series; one leader, a single leader change, a zone at
// risk or maintenance mode for less than its `for:`, CAS failures and a half-free disk stay quiet). Every alert links a runbook section that exists.
// Without promtool the promtool cases are skipped with a message, except under CI=true (CI
// installs it in .ci/system-deps.sh), where they fail.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DIR = fileURLToPath(new URL('../../../deploy/prometheus/', import.meta.url));
const RUNBOOK = fileURLToPath(new URL('../../../docs/runbook.md', import.meta.url));
const PROMTOOL = spawnSync('promtool', ['--version']).status === 0;
const RUN_PROMTOOL = PROMTOOL || process.env.CI === 'true';
if (!RUN_PROMTOOL) console.warn('skipping promtool check/test rules: promtool is not on PATH (apt-get install -y prometheus)');

function promtool(...args: string[]): { code: number | null; output: string } {
  const r = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** GitHub's anchor of a markdown heading. */
const anchor = (heading: string) => heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-');

describe('deploy/prometheus/alerts.yml', () => {
  it.skipIf(!RUN_PROMTOOL)('passes promtool check rules', () => {
    const r = promtool('check', 'rules', 'alerts.yml');
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/SUCCESS: 15 rules found/);
  });

  it.skipIf(!RUN_PROMTOOL)('passes its promtool unit tests', () => {
    const r = promtool('test', 'rules', 'alerts.test.yml');
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/SUCCESS/);
  });

  it('every alert has for:, a summary, and a runbook link to a section of docs/runbook.md', () => {
    const rules = readFileSync(`${DIR}alerts.yml`, 'utf8');
    const anchors = new Set([...readFileSync(RUNBOOK, 'utf8').matchAll(/^#{2,3} (.+)$/gm)].map((m) => anchor(m[1]!)));
    const alerts = rules.split(/^ {6}- alert: /m).slice(1);
    expect(alerts.length).toBe(15);
    for (const a of alerts) {
      const name = a.split('\n')[0];
      expect(a, name).toMatch(/^ {8}for: \d+[smh]$/m);
      expect(a, name).toMatch(/^ {10}summary: \S/m);
      const links = [...a.matchAll(/docs\/runbook\.md#([\w-]+)/g)].map((m) => m[1]!);
      expect(links.length, name).toBeGreaterThan(0);
      for (const l of links) expect(anchors, `${name} links #${l}`).toContain(l);
    }
  });
});
