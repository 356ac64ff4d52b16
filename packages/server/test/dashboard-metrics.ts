// The metric names a Grafana dashboard's queries use (quorumkv's and the process ones), shared by
// the dashboard's unit test and the live check in test/cluster/operations.test.ts.

/** Every `qkv_*` / `process_*` name in the dashboard's `expr` fields, without duplicates. */
export function dashboardMetrics(json: string): string[] {
  const d = JSON.parse(json) as { panels: { targets?: { expr?: string }[] }[] };
  const names = new Set<string>();
  for (const p of d.panels) for (const t of p.targets ?? []) for (const m of (t.expr ?? '').matchAll(/\b((?:qkv|process)_[a-z0-9_]+)\b/g)) names.add(m[1]!);
  return [...names];
}
