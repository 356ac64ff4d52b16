// The status page every node serves at GET /ui: one self-contained HTML document (inline script
// and style, nothing loaded from elsewhere, no build step) that polls GET /v1/cluster on the node it
// was loaded from once a second and shows the members (role, term, lag, zone, health), the leader
// changes of the last hour, snapshot transfers in progress with progress bars, and request rates
// and apply latency. The Content-Security-Policy allows exactly the inline script and style below
// (by hash) and same-origin fetches; everything the page writes goes in as text, never as HTML.
import { createHash } from 'node:crypto';

/** How often the page polls /v1/cluster. */
export const STATUS_PAGE_POLL_MS = 1000;

const STYLE = `
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}
.ok{color:#176b2c}.bad{color:#b00020;font-weight:bold}.warn{color:#8a5a00}
#verdict.bad{background:#fde7ea}#verdict{padding:.3em .6em;display:inline-block}
progress{width:14em}.muted{color:#777}
`;

const SCRIPT = `
'use strict';
const POLL_MS = ${STATUS_PAGE_POLL_MS};
const prev = new Map();
const $ = (id) => document.getElementById(id);
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; }
function fmtSec(s) { return s === null || s === undefined ? '-' : s < 1 ? (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms' : s.toFixed(2) + ' s'; }
function rates(m, nowMs) {
  const ev = m.events; if (!ev) return { rps: '-', apply: '-' };
  const ok = Object.values(ev.requests).reduce((n, r) => n + r.ok + r.failed, 0);
  const p = prev.get(m.id); prev.set(m.id, { at: ev.nowMs, ok, count: ev.apply.count, sum: ev.apply.sumSeconds });
  if (!p || ev.nowMs <= p.at) return { rps: '-', apply: '-' };
  const dt = (ev.nowMs - p.at) / 1000, dc = ev.apply.count - p.count;
  return { rps: ((ok - p.ok) / dt).toFixed(1), apply: dc > 0 ? fmtSec((ev.apply.sumSeconds - p.sum) / dc) : '-' };
}
function renderMembers(view) {
  const body = $('members'); body.replaceChildren();
  for (const h of view.health.members) {
    const m = view.members.find((x) => x.id === h.id) || {};
    const r = rates(m, view.nowMs);
    const tr = el('tr'); tr.dataset.member = h.id; tr.dataset.role = h.role || 'unreachable'; tr.dataset.reachable = String(h.reachable);
    const health = !h.reachable ? el('td', 'unreachable: ' + h.problems.join('; '), 'bad') : h.problems.length ? el('td', h.problems.join('; '), 'bad') : el('td', 'healthy', 'ok');
    health.dataset.field = 'health';
    const cells = [el('td', h.id), el('td', h.address, 'muted'), el('td', h.role || '-'), el('td', h.term ?? '-'), el('td', h.lagEntries ?? '-'), el('td', h.zone || '-'), el('td', fmtSec(h.fsyncP99Seconds)), el('td', r.rps), el('td', r.apply), health];
    ['id', 'address', 'role', 'term', 'lag', 'zone', 'fsync', 'rps', 'apply'].forEach((f, i) => (cells[i].dataset.field = f));
    tr.append(...cells); body.append(tr);
  }
}
function renderVerdict(view) {
  const h = view.health, v = $('verdict');
  v.textContent = h.healthy ? 'healthy: leader ' + h.leader + ', term ' + h.term : 'UNHEALTHY: ' + h.problems.join('; ');
  v.className = h.healthy ? 'ok' : 'bad';
  $('leader').textContent = h.leader || 'none';
  const w = $('warnings'); w.replaceChildren(...h.warnings.map((x) => el('li', x, 'warn')));
}
function renderEvents(view) {
  const seen = new Map();
  for (const m of view.members) for (const e of (m.events && m.events.leaderChanges) || []) {
    const k = e.term + '/' + (e.leader || '');
    const o = seen.get(k); if (!o || e.atMs < o.atMs) seen.set(k, { ...e, by: (o ? o.by + ', ' : '') + m.id });
    else o.by += ', ' + m.id;
  }
  const list = [...seen.values()].sort((a, b) => b.atMs - a.atMs);
  $('event-count').textContent = String(list.filter((e) => e.leader).length);
  $('events').replaceChildren(...list.map((e) => { const li = el('li', new Date(e.atMs).toISOString().slice(11, 19) + ' term ' + e.term + ': ' + (e.leader ? 'leader ' + e.leader : 'leader lost') + ' (seen by ' + e.by + ')'); li.dataset.leader = e.leader || ''; return li; }));
}
function renderSnapshots(view) {
  const rows = [];
  for (const m of view.members) for (const s of (m.status && m.status.snapshots) || []) {
    const li = el('li', m.id + (s.direction === 'send' ? ' sending to ' : ' receiving from ') + s.peer + ' (' + s.state + '): ' + s.bytesDone + (s.totalBytes ? ' / ' + s.totalBytes : '') + ' bytes ');
    li.dataset.transfer = m.id + '>' + s.peer;
    const p = document.createElement('progress'); p.max = s.totalBytes || 1; if (s.totalBytes) p.value = s.bytesDone; li.append(p); rows.push(li);
  }
  $('snapshots').replaceChildren(...(rows.length ? rows : [el('li', 'none', 'muted')]));
}
async function poll() {
  try {
    const r = await fetch('/v1/cluster', { cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const view = await r.json();
    renderVerdict(view); renderMembers(view); renderEvents(view); renderSnapshots(view);
    $('updated').textContent = 'from ' + view.from + ' at ' + new Date(view.nowMs).toISOString().slice(11, 19);
    $('error').textContent = '';
    document.body.dataset.rendered = 'true';
  } catch (e) { $('error').textContent = 'cannot read /v1/cluster: ' + e.message; }
  setTimeout(poll, POLL_MS);
}
poll();
`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The page's Content-Security-Policy: its own inline script and style only, fetches to its origin. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The status page's HTML. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>quorumkv status</title>
<style>${STYLE}</style></head>
<body>
<h1>quorumkv cluster status</h1>
<p><span id="verdict">loading…</span> <span id="updated" class="muted"></span> <span id="error" class="bad"></span></p>
<ul id="warnings"></ul>
<h2>Members</h2>
<table><thead><tr><th>member</th><th>address</th><th>role</th><th>term</th><th>lag (entries)</th><th>zone</th><th>fsync p99</th><th>requests/s</th><th>apply (mean)</th><th>health</th></tr></thead>
<tbody id="members"></tbody></table>
<h2>Leader changes in the last hour: <span id="event-count">0</span> (current leader: <span id="leader">?</span>)</h2>
<ul id="events"></ul>
<h2>Snapshot transfers in progress</h2>
<ul id="snapshots"></ul>
<script>${SCRIPT}</script>
</body></html>
`;
