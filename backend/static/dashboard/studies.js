/* KD-Pruning Simulator dashboard, studies section: start a grid of points, follow it live, show its table
 * and its accuracy-vs-latency Pareto frontier (SVG). Separate from dashboard.js; the same backend and rules. */
(function () {
  'use strict';

  const params = new URLSearchParams(location.search);
  const SVGNS = 'http://www.w3.org/2000/svg';
  const FINISHED = ['succeeded', 'partial', 'failed', 'cancelled'];
  const $ = (id) => document.getElementById(id);
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const state = { study: null, timer: null, socket: null };

  const LOOPBACK_ORIGIN = /^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/;
  const TOKEN_KEY = 'kd-api-token'; // the bearer token the main dashboard keeps, when the server asks for one

  /** Whether requests (and the token) may go to this address: this page's origin, loopback, or kd-origins. */
  function apiAllowed(base) {
    let origin, extra = [];
    try { origin = new URL(base, location.href).origin; } catch (err) { return false; }
    const meta = document.querySelector('meta[name="kd-origins"]');
    try { extra = meta ? JSON.parse(meta.content) : []; } catch (err) { extra = []; }
    return origin === location.origin || LOOPBACK_ORIGIN.test(origin) || extra.includes(origin);
  }

  function resolveApi() {
    const meta = document.querySelector('meta[name="kd-api"]');
    let base = params.get('api');
    if (base && !apiAllowed(base)) base = null;
    if (base) base = new URL(base, location.href).href;
    if (!base && meta) base = new URL(meta.content || '/', location.href).href;
    if (!base) base = location.protocol.startsWith('http') ? location.origin : 'http://127.0.0.1:5001';
    return String(base).replace(/\/+$/, '');
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY);
  const API = resolveApi();

  async function api(path, options) {
    let res;
    const opts = { ...(options || {}) };
    if (token()) opts.headers = { ...(opts.headers || {}), Authorization: `Bearer ${token()}` };
    try { res = await fetch(API + path, opts); } catch (err) { throw new Error(`Cannot reach the backend at ${API}.`); }
    const body = (res.headers.get('Content-Type') || '').includes('json') ? await res.json().catch(() => null) : null;
    if (!res.ok) throw new Error((body && body.error && body.error.message) || `The backend answered ${res.status}.`);
    return body;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v; else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) { if (k === 'text') node.textContent = v; else node.setAttribute(k, v); }
    for (const c of children.flat()) if (c) node.append(c);
    return node;
  }

  const fmt = (v, digits = 3) => (isNum(v) ? (+v.toPrecision(digits)).toLocaleString() : 'n/a');
  const pct = (v) => (isNum(v) ? (v * 100).toFixed(2) + '%' : 'n/a');

  /** "0.3, 0.5" -> [0.3, 0.5]; an error names the field. */
  function values(id, label) {
    const text = $(id).value.trim();
    if (!text) return null;
    const out = text.split(/[ ,;]+/).filter(Boolean).map(Number);
    if (out.some((v) => !Number.isFinite(v))) throw new Error(`${label}: comma-separated numbers, please.`);
    return out;
  }

  function say(text, kind) {
    const box = $('study-message');
    box.textContent = text || '';
    box.dataset.kind = kind || 'info';
    box.hidden = !text;
  }

  async function fillModels() {
    try {
      const data = await api('/models');
      const models = data.models || data;
      const select = $('study-model');
      select.replaceChildren(...(Array.isArray(models) ? models : []).map((m) =>
        el('option', { value: m.id, text: m.display_name || m.id })));
      if ([...select.options].some((o) => o.value === 'resnet18')) select.value = 'resnet18';
    } catch (err) { say(err.message, 'error'); }
  }

  async function startStudy(event) {
    event.preventDefault();
    say('');
    try {
      const grid = { sparsity: values('study-sparsity', 'Sparsities'), structural_ratio: values('study-ratio', 'Structural ratios') };
      for (const [key, id] of [['temperature', 'study-temperature'], ['alpha', 'study-alpha']]) {
        const v = values(id, key); if (v) grid[key] = v;
      }
      const body = { model_name: $('study-model').value, preset: $('study-preset').value, grid };
      const maxSamples = $('study-max-samples').value.trim();
      if (maxSamples) body.max_samples = Number(maxSamples);
      const res = await api('/studies', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      say(`Study ${res.study_id} queued: ${res.points_total} points.`, 'info');
      follow(res.study_id);
      listStudies();
    } catch (err) { say(err.message, 'error'); }
  }

  function follow(studyId) {
    state.study = studyId;
    $('study-view').hidden = false;
    $('study-id').textContent = studyId;
    $('study-csv').href = `${API}/studies/${studyId}?format=csv`;
    $('study-bundle').href = `${API}/download?study_id=${studyId}`;
    listen(studyId);
    refresh();
  }

  function listen(studyId) {
    if (!window.io) return; // the page polls instead (every 2 s)
    if (!state.socket) {
      state.socket = window.io(API, { transports: ['polling', 'websocket'],
        auth: (cb) => cb(token() ? { token: token() } : {}) });
      state.socket.on('study_progress', (p) => { if (p.study_id === state.study) render(null, p); refresh(); });
    }
    state.socket.emit('join', { study_id: studyId });
  }

  async function refresh() {
    clearTimeout(state.timer);
    if (!state.study) return;
    try {
      const detail = await api(`/studies/${state.study}`);
      render(detail);
      if (!FINISHED.includes(detail.state)) state.timer = setTimeout(refresh, 2000);
    } catch (err) { say(err.message, 'error'); }
  }

  function render(detail, progress) {
    const d = detail || progress;
    $('study-state').textContent = d.state;
    $('study-count').textContent = `${d.points_done} / ${d.points_total} points`;
    $('study-progress').value = (100 * d.points_done) / Math.max(1, d.points_total);
    $('study-cancel').disabled = FINISHED.includes(d.state);
    if (!detail) return;
    renderTable(detail.rows);
    renderFrontier(detail.rows);
  }

  function renderTable(rows) {
    const head = ['sparsity', 'structural ratio', 'state', 'accuracy', 'F1', 'drop (pts)', 'dense MB', 'deflated MB',
      'parameters', 'FLOPs', 'latency b1 (ms)', 'latency b32 (ms)', 'speedup b1', 'Pareto lat.', 'Pareto size'];
    const body = rows.map((r) => el('tr', { class: r.pareto_latency ? 'pareto' : null },
      [fmt(r.sparsity), fmt(r.structural_ratio), r.state, pct(r.accuracy), pct(r.f1_macro), fmt(r.accuracy_drop_points),
        fmt(r.model_size_mb), fmt(r.compressed_size_mb), fmt(r.parameters, 4), fmt(r.flops_per_sample),
        fmt(r.latency_batch_1_ms), fmt(r.latency_batch_32_ms), fmt(r.speedup_batch_1),
        r.pareto_latency ? 'yes' : '', r.pareto_size ? 'yes' : ''].map((v) => el('td', { text: v }))));
    $('study-table').replaceChildren(el('thead', {}, el('tr', {}, head.map((h) => el('th', { text: h })))),
      el('tbody', {}, body));
  }

  /** Accuracy (%) vs batch-1 latency; every point grey, the frontier joined and labelled. */
  function renderFrontier(rows) {
    const box = $('study-chart');
    const pts = rows.filter((r) => isNum(r.accuracy) && isNum(r.latency_batch_1_ms));
    const W = Math.max(320, Math.min(900, box.clientWidth || 560)), H = 260, L = 52, R = 16, T = 12, B = 38;
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'Pareto frontier' });
    if (!pts.length) {
      root.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty', text: 'No point measured yet.' }));
      box.replaceChildren(root);
      return;
    }
    const xs = pts.map((r) => r.latency_batch_1_ms), ys = pts.map((r) => r.accuracy * 100);
    let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const px = (x1 - x0) * 0.1 || x0 * 0.1 || 1, py = Math.max((y1 - y0) * 0.15, 0.5); // fitted, not from 0
    [x0, x1, y0, y1] = [Math.max(0, x0 - px), x1 + px, Math.max(0, y0 - py), Math.min(100, y1 + py)];
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R), sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
    const ticks = (a, b) => [0, 1, 2, 3, 4].map((i) => a + ((b - a) * i) / 4);
    root.append(svg('g', { class: 'axis' },
      svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B }), svg('line', { x1: L, x2: L, y1: T, y2: H - B }),
      ticks(y0, y1).map((v) => svg('text', { x: L - 5, y: sy(v) + 4, 'text-anchor': 'end', text: v.toFixed(1) })),
      ticks(x0, x1).map((v) => svg('text', { x: sx(v), y: H - B + 14, 'text-anchor': 'middle', text: +v.toPrecision(3) + '' })),
      svg('text', { x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle', text: 'latency, batch 1 (ms)' }),
      svg('text', { x: 12, y: (T + H - B) / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${(T + H - B) / 2})`, text: 'accuracy (%)' })));
    const front = pts.filter((r) => r.pareto_latency).sort((a, b) => a.latency_batch_1_ms - b.latency_batch_1_ms);
    root.append(svg('polyline', { class: 'frontier', fill: 'none', stroke: '#d55e00', 'stroke-width': 2,
      points: front.map((r) => `${sx(r.latency_batch_1_ms).toFixed(1)},${sy(r.accuracy * 100).toFixed(1)}`).join(' ') }));
    for (const r of pts) {
      const on = !!r.pareto_latency, x = sx(r.latency_batch_1_ms), y = sy(r.accuracy * 100);
      const label = `sparsity ${r.sparsity}, ratio ${r.structural_ratio}`;
      root.append(svg('circle', { cx: x, cy: y, r: on ? 5 : 4, fill: on ? '#d55e00' : '#999', 'data-pareto': on ? '1' : '0' },
        svg('title', { text: `${label}: ${pct(r.accuracy)}, ${fmt(r.latency_batch_1_ms)} ms` })));
      if (on) root.append(svg('text', { x: x + 7, y: y - 6, class: 'point-label', text: label }));
    }
    box.replaceChildren(root);
  }

  /** With a token, a link is fetched with it and opened as a blob (a plain link cannot carry the header). */
  async function openWithToken(event) {
    const link = event.currentTarget;
    if (!token()) return;
    event.preventDefault();
    try {
      const res = await fetch(link.href, { headers: { Authorization: `Bearer ${token()}` } });
      if (!res.ok) throw new Error(`${link.textContent.trim()}: the backend answered ${res.status}.`);
      const url = URL.createObjectURL(await res.blob());
      const a = el('a', { href: url, download: link.getAttribute('download') || 'download' });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) { say(err.message, 'error'); }
  }

  async function cancelStudy() {
    if (!state.study) return;
    try { render(await api(`/studies/${state.study}/cancel`, { method: 'POST' })); refresh(); listStudies(); } catch (err) { say(err.message, 'error'); }
  }

  async function listStudies() {
    try {
      const data = await api('/studies');
      $('studies-list').replaceChildren(...data.studies.map((s) => el('li', {},
        el('button', { type: 'button', class: 'link', onclick: () => follow(s.study_id), text: s.study_id }),
        ` ${s.model_name} · ${s.state} · ${s.points_done}/${s.points_total}`)));
    } catch (err) { /* the main dashboard reports an unreachable backend */ }
  }

  function init() {
    if (!$('study-form')) return;
    $('study-form').addEventListener('submit', startStudy);
    $('study-cancel').addEventListener('click', cancelStudy);
    for (const id of ['study-csv', 'study-bundle']) $(id).addEventListener('click', openWithToken);
    fillModels();
    listStudies();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init); else init();
})();
