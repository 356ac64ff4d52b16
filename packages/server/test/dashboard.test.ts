// deploy/grafana/quorumkv.json: it parses as a Grafana dashboard (panels with Prometheus targets)
// and graphs every quorumkv metric the alerts in deploy/prometheus/alerts.yml use. That each
// metric it names exists on a live node's /metrics is checked in test/cluster/operations.test.ts.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { dashboardMetrics } from './dashboard-metrics.js';

const DASHBOARD = fileURLToPath(new URL('../../../deploy/grafana/quorumkv.json', import.meta.url));
const ALERTS = fileURLToPath(new URL('../../../deploy/prometheus/alerts.yml', import.meta.url));

describe('deploy/grafana/quorumkv.json', () => {
  it('parses: titled panels, each with a Prometheus query', () => {
    const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { title: string; uid: string; panels: { title: string; targets: { expr: string }[] }[] };
    expect(d.title).toBe('quorumkv');
    expect(d.panels.length).toBeGreaterThan(10);
    for (const p of d.panels) {
      expect(p.title).not.toBe('');
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.expr, p.title).toMatch(/\w+\{job="quorumkv"\}/);
    }
  });

  it('graphs every metric an alert uses', () => {
    const graphed = new Set(dashboardMetrics(readFileSync(DASHBOARD, 'utf8')));
    const alerted = [...readFileSync(ALERTS, 'utf8').matchAll(/^\s+expr: ([\s\S]*?)\n\s+for:/gm)].flatMap((m) => [...m[1]!.matchAll(/\b((?:qkv|process)_[a-z0-9_]+)\b/g)].map((x) => x[1]!));
    expect(alerted.length).toBeGreaterThan(10);
    for (const name of alerted) expect(graphed, name).toContain(name);
  });
});
