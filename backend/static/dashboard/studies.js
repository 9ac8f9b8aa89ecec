/* KD-Pruning Simulator dashboard, studies section: start a grid of points (each run once per seed), follow it
 * live, show its table (one row per grid point: means over the seeds with 95% intervals) and its
 * accuracy-vs-latency Pareto frontier (SVG, with error bars and the points within the noise marked). An ES module beside dashboard.js, whose helpers it imports
 * (the backend's address, requests with the token, DOM and number formatting, the option controls): the same
 * backend, rules and look, no copies. Its form is built from GET /models: the shared options from
 * `option_schema`, one comma-separated input per grid axis from `study_axes`, each value checked against the
 * axis's declared range before the request; an optional Seeds input, checked against the `seed` option. */
import {
  $, API, api, el, fmtPrecision, isNum, modelsReady, openWithToken, optionControl, optionField, parseValue, pct,
  readControl, socketOptions, svg, UserError,
} from './dashboard.js';

// The states a study ends in and the axes every study sweeps: GET /models concepts (study_finished_states,
// required_study_axes), read when they are needed (the page loads /models once).
const concept = (name) => (state.models && state.models.concepts && state.models.concepts[name]) || [];
const EXAMPLES = { sparsity: '0.3, 0.5, 0.7', structural_ratio: '0.25, 0.5' };  // a first grid, filled in
const SHARED = ['preset', 'max_samples'];  // options of every point, set once
// How many distinct seeds POST /studies takes: GET /models concepts.max_study_seeds.
const maxSeeds = () => (state.models && state.models.concepts && state.models.concepts.max_study_seeds) || 1;
const state = { study: null, joined: null, timer: null, socket: null, axes: [], shared: [], seeds: null, models: null };

const fmt = fmtPrecision;
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

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
  if (byName.seed) {  // every grid point once per seed: the table then shows means with 95% intervals
    const option = { ...byName.seed, name: 'seeds', label: 'Seeds',
      help: `optional: up to ${maxSeeds()} distinct seeds, comma-separated; every grid point runs once per seed and ` +
        'the table shows the means with 95% intervals' };
    const input = el('input', { id: 'study-seeds', name: 'seeds', type: 'text', spellcheck: 'false',
      placeholder: `one run per point (seed ${byName.seed.default ?? 0})` });
    $('study-options').append(optionField(option, input));
    state.seeds = { option: byName.seed, input };
  }
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

/** "0, 1, 2" -> [0, 1, 2]: integers in the seed option's range, at most concepts.max_study_seeds, distinct; null when empty. */
function seedValues({ option, input }) {
  const items = input.value.split(/[\s,;]+/).filter(Boolean);
  if (!items.length) return null;
  const seeds = items.map((item) => parseValue(option, item, 'seeds'));
  if (seeds.length > maxSeeds()) {
    throw new UserError(`seeds must be a list of 1 to ${maxSeeds()} seeds, got ${seeds.length}.`, 400, { field: 'seeds' });
  }
  const twice = seeds.filter((s, i) => seeds.indexOf(s) !== i);
  if (twice.length) throw new UserError(`seeds lists a seed twice: ${twice[0]}.`, 400, { field: 'seeds' });
  return seeds;
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
  if (state.seeds) state.seeds.input.removeAttribute('aria-invalid');
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
    let seeds = null;
    try {
      seeds = state.seeds && seedValues(state.seeds);
    } catch (err) {
      state.seeds.input.setAttribute('aria-invalid', 'true');
      throw err;
    }
    if (seeds) body.seeds = seeds;
    const res = await api('/studies', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const runs = seeds ? seeds.length : 1;  // POST /studies answers the jobs (points_total), not the grid points
    say(`Study ${res.study_id} queued: ${plural(res.points_total, 'job')} ` +
      `(${plural(res.points_total / runs, 'grid point')} × ${plural(runs, 'seed')}).`, 'info');
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

/** "3 / 8 jobs done (4 grid points × 2 seeds)": progress counts jobs (points_total), a job being one grid point
 * at one seed; the grid points and seeds when the answer has them (GET /studies/<id>, study_progress). */
function countText(d) {
  const seeds = Array.isArray(d.seeds) ? d.seeds.length : null;
  const shape = isNum(d.grid_points) && seeds ? ` (${plural(d.grid_points, 'grid point')} × ${plural(seeds, 'seed')})` : '';
  return `${d.points_done} / ${plural(d.points_total, 'job')} done${shape}`;
}

function render(detail, progress) {
  const d = detail || progress;
  $('study-state').textContent = d.state;
  $('study-state').dataset.state = d.state;
  $('study-count').textContent = countText(d);
  $('study-progress').value = (100 * d.points_done) / Math.max(1, d.points_total);
  $('study-cancel').disabled = concept('study_finished_states').includes(d.state);
  if (!detail) return;
  const axes = Object.keys(detail.grid || {}).length ? Object.keys(detail.grid) : concept('required_study_axes');
  const several = (detail.seeds || []).length > 1;
  renderTable(detail.rows, axes);
  renderFrontier(detail.rows, axes);
  $('study-note').textContent = [
    several ? 'Each row is a grid point: the mean over its succeeded seeds, with its 95% t-interval in brackets ' +
      '(the standard deviation on hover).' : '',
    detail.pareto_note ? `${detail.pareto_note.replace(/^./, (c) => c.toUpperCase())}.` : ''].filter(Boolean).join(' ');
}

// ---- one row per grid point: means over the seeds, 95% intervals, the frontier marks ----------------------
const isInterval = (ci) => Array.isArray(ci) && ci.length === 2 && isNum(ci[0]) && isNum(ci[1]);
const AXIS_LABELS = { structural_ratio: 'ratio' };
const axisText = (v) => (isNum(v) ? fmt(v) : v === null || v === undefined ? '—' : String(v));
const pointLabel = (r, axes) => axes.map((a) => `${AXIS_LABELS[a] || a.replace(/_/g, ' ')} ${axisText(r[a])}`).join(', ');

/** '91.0% [86.7, 95.3]' (a fraction, its interval in percent) or '12.3 [10.1, 14.5]': a row's mean with its 95%
 * interval over the seeds when it has one (a figure every seed gives alike, such as FLOPs, without); the text and,
 * for the title, its standard deviation. */
function withInterval(r, name, digits) {
  const v = r[name], ci = r[`${name}_ci`], std = r[`${name}_std`];
  const fraction = digits === 'fraction';
  const show = fraction ? (x) => pct(x) : (x) => fmt(x, digits);
  const end = fraction ? (x) => (x * 100).toFixed(1) : (x) => fmt(x, digits);
  if (isNum(v) && std === 0) return [show(v), `the same for all ${plural(r.n_succeeded, 'seed')} (no spread)`];
  const text = isNum(v) && isInterval(ci) ? `${show(v)} [${end(ci[0])}, ${end(ci[1])}]` : show(v);
  const title = isNum(std) ? `standard deviation ${fraction ? `${(std * 100).toFixed(2)} pts` : fmt(std, digits)}` +
    ` over ${plural(r.n_succeeded, 'seed')}; 95% t-interval of the mean in brackets` : null;
  return [text, title];
}

/** "within noise": a frontier point (by its means) whose accuracy and cost intervals both overlap those of a point
 * it dominates, so that its seeds cannot tell the two apart (separable_latency / separable_size false). */
function noiseMark(cost) {
  return el('span', { class: 'noise', 'data-within-noise': 'true', text: 'within noise',
    title: `on the frontier by its means, but its accuracy and ${cost} intervals both overlap those of a point it ` +
      'dominates: the seeds cannot tell the two apart' });
}

const frontierCell = (on, separable, cost) => el('td', { 'data-separable': on ? String(separable) : null },
  on ? 'yes' : '', on && separable === false ? [' ', noiseMark(cost)] : null);

// [header, metric, digits or 'fraction']
const COLUMNS = [['accuracy', 'accuracy', 'fraction'], ['F1', 'f1_macro', 'fraction'], ['drop (pts)', 'accuracy_drop_points'],
  ['dense MB', 'model_size_mb'], ['deflated MB', 'compressed_size_mb'], ['parameters', 'parameters', 4],
  ['FLOPs', 'flops_per_sample'], ['latency b1 (ms)', 'latency_batch_1_ms'], ['latency b32 (ms)', 'latency_batch_32_ms'],
  ['speedup b1', 'speedup_batch_1']];

function renderTable(rows, axes) {
  const head = [...axes.map((a) => a.replace(/_/g, ' ')), 'state', 'seeds (ok / run)', ...COLUMNS.map((c) => c[0]),
    'Pareto lat.', 'Pareto size'];
  const body = rows.map((r) => {
    const loose = r.separable_latency === false || r.separable_size === false;
    const seeds = (r.seeds || []).filter((s) => s !== null && s !== undefined);
    return el('tr', { class: [r.pareto_latency ? 'pareto' : '', loose ? 'within-noise' : ''].join(' ').trim() || null,
      'data-point': r.index, 'data-state': r.state, 'data-within-noise': loose ? 'true' : null },
    axes.map((a) => el('td', { text: axisText(r[a]) })),
    el('td', { title: r.error || null }, el('span', { class: 'badge', 'data-state': r.state, text: r.state })),
    el('td', { class: 'num seeds', text: isNum(r.n_seeds) ? `${r.n_succeeded ?? 0} / ${r.n_seeds}` : '—',
      title: seeds.length ? `seeds ${seeds.join(', ')}: ${r.n_succeeded ?? 0} succeeded of ${r.n_seeds}` : null }),
    COLUMNS.map(([, name, digits]) => {
      const [text, title] = withInterval(r, name, digits);
      return el('td', { class: 'num', 'data-metric': name, text, title });
    }),
    frontierCell(r.pareto_latency, r.separable_latency, 'latency'),
    frontierCell(r.pareto_size, r.separable_size, 'size'));
  });
  $('study-table').replaceChildren(el('thead', {}, el('tr', {}, head.map((h) => el('th', { text: h })))),
    el('tbody', {}, body));
}

/** Accuracy (%) vs batch-1 latency: every point grey, the frontier joined and labelled, a frontier point within the
 * noise of one it dominates hollow and dashed; error bars where the rows carry 95% intervals (over seeds). */
function renderFrontier(rows, axes) {
  const box = $('study-chart');
  const pts = rows.filter((r) => isNum(r.accuracy) && isNum(r.latency_batch_1_ms));
  const W = Math.max(320, Math.min(900, box.clientWidth || 560)), H = 260, L = 52, R = 16, T = 12, B = 38;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'Pareto frontier' });
  if (!pts.length) {
    root.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty', text: 'No point measured yet.' }));
    box.replaceChildren(root);
    return;
  }
  const xCi = (r) => (isInterval(r.latency_batch_1_ms_ci) ? r.latency_batch_1_ms_ci : null);
  const yCi = (r) => (isInterval(r.accuracy_ci) ? r.accuracy_ci.map((v) => v * 100) : null);
  // The means fix the axes; the intervals widen them, by at most one span of the means (two seeds can give an
  // interval many times wider: its bar is cut at the plot's edge instead of squashing the points).
  const widen = (values, ends, floor, ceil) => {
    const lo = Math.min(...values), hi = Math.max(...values), span = Math.max(hi - lo, Math.abs(hi) * 0.25);
    return [Math.max(floor, lo - span, Math.min(lo, ...ends)), Math.min(ceil, hi + span, Math.max(hi, ...ends))];
  };
  let [x0, x1] = widen(pts.map((r) => r.latency_batch_1_ms), pts.flatMap((r) => xCi(r) || []), 0, Infinity);
  let [y0, y1] = widen(pts.map((r) => r.accuracy * 100), pts.flatMap((r) => yCi(r) || []), 0, 100);
  const px = (x1 - x0) * 0.1 || x0 * 0.1 || 1, py = Math.max((y1 - y0) * 0.15, 0.5); // fitted, not from 0
  [x0, x1, y0, y1] = [Math.max(0, x0 - px), x1 + px, Math.max(0, y0 - py), Math.min(100, y1 + py)];
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R), sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const cx = (x) => Math.min(W - R, Math.max(L, sx(x))), cy = (y) => Math.min(H - B, Math.max(T, sy(y)));
  const ticks = (a, b) => [0, 1, 2, 3, 4].map((i) => a + ((b - a) * i) / 4);
  root.append(svg('g', { class: 'axis' },
    svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B }), svg('line', { x1: L, x2: L, y1: T, y2: H - B }),
    ticks(y0, y1).map((v) => svg('text', { x: L - 5, y: sy(v) + 4, 'text-anchor': 'end', text: v.toFixed(1) })),
    ticks(x0, x1).map((v) => svg('text', { x: sx(v), y: H - B + 14, 'text-anchor': 'middle', text: +v.toPrecision(3) + '' })),
    svg('text', { x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle', text: 'latency, batch 1 (ms)' }),
    svg('text', { x: 12, y: (T + H - B) / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${(T + H - B) / 2})`, text: 'accuracy (%)' })));
  // Error bars first, under the points: a line between the interval's ends, a cap at each end inside the plot.
  for (const r of pts) {
    const x = sx(r.latency_batch_1_ms), y = sy(r.accuracy * 100), lat = xCi(r), acc = yCi(r);
    if (!lat && !acc) continue;
    const g = svg('g', { class: 'errorbar', 'data-point': r.index, stroke: r.pareto_latency ? '#d55e00' : '#999', 'stroke-width': 1.2 });
    if (acc) {
      const [a, b] = [cy(acc[0]), cy(acc[1])];
      g.append(svg('line', { x1: x, x2: x, y1: a, y2: b }),
        ...[[acc[0], a], [acc[1], b]].filter(([v, p]) => p === sy(v)).map(([, p]) => svg('line', { x1: x - 4, x2: x + 4, y1: p, y2: p })));
    }
    if (lat) {
      const [a, b] = [cx(lat[0]), cx(lat[1])];
      g.append(svg('line', { x1: a, x2: b, y1: y, y2: y }),
        ...[[lat[0], a], [lat[1], b]].filter(([v, p]) => p === sx(v)).map(([, p]) => svg('line', { x1: p, x2: p, y1: y - 4, y2: y + 4 })));
    }
    root.append(g);
  }
  const front = pts.filter((r) => r.pareto_latency).sort((a, b) => a.latency_batch_1_ms - b.latency_batch_1_ms);
  root.append(svg('polyline', { class: 'frontier', fill: 'none', stroke: '#d55e00', 'stroke-width': 2,
    points: front.map((r) => `${sx(r.latency_batch_1_ms).toFixed(1)},${sy(r.accuracy * 100).toFixed(1)}`).join(' ') }));
  for (const r of pts) {
    const on = !!r.pareto_latency, loose = on && r.separable_latency === false;
    const x = sx(r.latency_batch_1_ms), y = sy(r.accuracy * 100), label = pointLabel(r, axes);
    const [accText] = withInterval(r, 'accuracy', 'fraction'), [latText] = withInterval(r, 'latency_batch_1_ms');
    const seeds = isNum(r.n_seeds) && r.n_seeds > 1 ? `; mean of ${r.n_succeeded} of ${r.n_seeds} seeds` : '';
    const style = loose ? { r: 5.5, fill: '#fff', stroke: '#d55e00', 'stroke-width': 2, 'stroke-dasharray': '2 1.5' }
      : { r: on ? 5 : 4, fill: on ? '#d55e00' : '#999' };
    root.append(svg('circle', { cx: x, cy: y, ...style, 'data-pareto': on ? '1' : '0', 'data-point': r.index,
      'data-within-noise': loose ? '1' : '0' },
    svg('title', { text: `${label}: accuracy ${accText}, latency ${latText} ms${seeds}` +
      (loose ? '; within the noise of a point it dominates' : '') })));
    if (on) root.append(svg('text', { x: x + 7, y: y - 6, class: 'point-label', text: loose ? `${label} (within noise)` : label }));
  }
  const legend = el('div', { class: 'chart-legend' },
    el('span', {}, el('i', { class: 'dot frontier' }), 'Pareto frontier'),
    front.some((r) => r.separable_latency === false)
      ? el('span', {}, el('i', { class: 'dot within-noise' }), 'on the frontier, within the noise of a point it dominates') : null,
    pts.some((r) => !r.pareto_latency) ? el('span', {}, el('i', { class: 'dot other' }), 'other points') : null,
    pts.some((r) => xCi(r) || yCi(r)) ? el('span', {}, el('i', { class: 'errorbar' }), 'error bars: 95% intervals over the seeds') : null);
  box.replaceChildren(root, legend);
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
      ` ${s.model_name} · ${s.state} · ${countText(s)}`)));
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
