/* KD-Pruning Simulator dashboard, studies section: start a grid of points, follow it live, show its table
 * and its accuracy-vs-latency Pareto frontier (SVG). An ES module beside dashboard.js, whose helpers it imports
 * (the backend's address, requests with the token, DOM and number formatting, the option controls): the same
 * backend, rules and look, no copies. Its form is built from GET /models: the shared options from
 * `option_schema`, one comma-separated input per grid axis from `study_axes`, each value checked against the
 * axis's declared range before the request. */
import {
  $, API, api, el, fmtPrecision, isNum, modelsReady, openWithToken, optionControl, optionField, parseValue, pct,
  readControl, socketOptions, svg, UserError,
} from './dashboard.js';

// The states a study ends in and the axes every study sweeps: GET /models concepts (study_finished_states,
// required_study_axes), read when they are needed (the page loads /models once).
const concept = (name) => (state.models && state.models.concepts && state.models.concepts[name]) || [];
const EXAMPLES = { sparsity: '0.3, 0.5, 0.7', structural_ratio: '0.25, 0.5' };  // a first grid, filled in
const SHARED = ['preset', 'max_samples'];  // options of every point, set once
const state = { study: null, joined: null, timer: null, socket: null, axes: [], shared: [], models: null };

const fmt = fmtPrecision;
const pct2 = (v) => pct(v, 2);

/** The form's fields, once GET /models has answered (dashboard.js asks for it). */
async function buildForm() {
  const body = await modelsReady;
  state.models = body;
  const select = $('study-model');
  select.replaceChildren(...(body.models || []).map((m) => el('option', { value: m.id, text: m.display_name || m.id })));
  if ([...select.options].some((o) => o.value === 'resnet18')) select.value = 'resnet18';
  const byName = Object.fromEntries((body.option_schema || []).map((o) => [o.name, o]));
  state.shared = SHARED.filter((name) => byName[name]).map((name) => {
    const option = byName[name];
    const control = optionControl(option, `study-${name.replace(/_/g, '-')}`);
    $('study-options').append(optionField(option, control));
    return { option, control };
  });
  state.axes = (body.study_axes || []).filter((name) => byName[name]).map((name) => {
    const option = byName[name];
    const required = concept('required_study_axes').includes(name);
    const input = el('input', { id: `study-${name}`, name, type: 'text', spellcheck: 'false', required,
      value: EXAMPLES[name] || null, placeholder: option.choices ? option.choices.join(', ') : (required ? '' : 'not swept') });
    $('study-grid').append(optionField(option, input, required ? 'required' : 'optional'));
    return { option, input, required };
  });
}

/** "0.3, 0.5" -> [0.3, 0.5], each value checked against the axis's declaration; null when left empty. */
function axisValues({ option, input, required }) {
  const items = input.value.split(/[\s,;]+/).filter(Boolean);
  if (!items.length) {
    if (required) throw new UserError(`grid.${option.name} is required: comma-separated values to sweep.`, 400);
    return null;
  }
  return items.map((item) => parseValue(option, item, `grid.${option.name}`));
}

function say(text, kind) {
  const box = $('study-message');
  box.textContent = text || '';
  box.dataset.kind = kind || 'info';
  box.hidden = !text;
}

async function startStudy(event) {
  event.preventDefault();
  say('');
  try {
    const grid = {};
    for (const axis of state.axes) {
      const values = axisValues(axis);
      if (values) grid[axis.option.name] = values;
    }
    const body = { model_name: $('study-model').value, grid };
    for (const { option, control } of state.shared) {
      const value = readControl(option, control);
      if (value !== undefined) body[option.name] = value;
    }
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

/** Follow one study over Socket.IO: leave the previous one's room, join this one's (again after a reconnect). */
function listen(studyId) {
  if (!window.io) return; // the page polls instead (every 2 s)
  if (!state.socket) {
    state.socket = window.io(API, socketOptions());
    state.socket.on('study_progress', (p) => { if (p.study_id === state.study) { render(null, p); refresh(); } });
    state.socket.on('connect', () => { state.joined = null; join(state.study); });  // a new session joined nothing
  }
  if (state.socket.connected) join(studyId);
}

function join(studyId) {
  if (!studyId || state.joined === studyId) return;
  if (state.joined) state.socket.emit('leave', { study_id: state.joined });
  state.socket.emit('join', { study_id: studyId });
  state.joined = studyId;
}

async function refresh() {
  clearTimeout(state.timer);
  if (!state.study) return;
  try {
    const detail = await api(`/studies/${state.study}`);
    render(detail);
    if (!concept('study_finished_states').includes(detail.state)) state.timer = setTimeout(refresh, 2000);
  } catch (err) { say(err.message, 'error'); }
}

function render(detail, progress) {
  const d = detail || progress;
  $('study-state').textContent = d.state;
  $('study-count').textContent = `${d.points_done} / ${d.points_total} points`;
  $('study-progress').value = (100 * d.points_done) / Math.max(1, d.points_total);
  $('study-cancel').disabled = concept('study_finished_states').includes(d.state);
  if (!detail) return;
  renderTable(detail.rows);
  renderFrontier(detail.rows);
}

function renderTable(rows) {
  const head = ['sparsity', 'structural ratio', 'state', 'accuracy', 'F1', 'drop (pts)', 'dense MB', 'deflated MB',
    'parameters', 'FLOPs', 'latency b1 (ms)', 'latency b32 (ms)', 'speedup b1', 'Pareto lat.', 'Pareto size'];
  const body = rows.map((r) => el('tr', { class: r.pareto_latency ? 'pareto' : null },
    [fmt(r.sparsity), fmt(r.structural_ratio), r.state, pct2(r.accuracy), pct2(r.f1_macro), fmt(r.accuracy_drop_points),
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
      svg('title', { text: `${label}: ${pct2(r.accuracy)}, ${fmt(r.latency_batch_1_ms)} ms` })));
    if (on) root.append(svg('text', { x: x + 7, y: y - 6, class: 'point-label', text: label }));
  }
  box.replaceChildren(root);
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
  buildForm();
  listStudies();
}

init();
