/* KD-Pruning Simulator dashboard: one page over the REST API and the Socket.IO events. No build step,
 * no external scripts: the Socket.IO client comes from this page's own origin (../vendor/, installed by
 * `npm ci`), never from the API's address, and the charts are drawn here as SVG and HTML bars.
 * ?api= is honoured only for this page's origin, a loopback origin or one the server allowlists.
 *
 * An ES module (<script type="module">, same origin: allowed by the page's CSP, script-src 'self'). It exports
 * the helpers studies.js shares (the backend's address, authenticated requests, DOM and number formatting,
 * the option controls), so that neither keeps its own copy.
 *
 * The job form's options are not written in index.html: they are built from GET /models `option_schema` (one
 * declaration per option on the server), grouped by each option's `group`; phases, labels and job states come
 * from its `concepts`. Only the model, dataset and teacher-upload pickers are hand-built (they depend on the
 * model and the uploads). */
// ---- where the backend is -------------------------------------------------------------------------
const params = new URLSearchParams(location.search);

const LOOPBACK_ORIGIN = /^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/;
let ignoredApi = null;  // an ?api= that was not allowed, reported once the page is up

/** Origins the server allows besides loopback ones (<meta name="kd-origins">, a JSON list). */
function allowedOrigins() {
  const meta = document.querySelector('meta[name="kd-origins"]');
  try { return meta ? JSON.parse(meta.content) : []; } catch (err) { return []; }
}

/** Whether the page may send its requests (and the token) to this address. */
function apiAllowed(base) {
  let origin;
  try { origin = new URL(base, location.href).origin; } catch (err) { return false; }
  return origin === location.origin || LOOPBACK_ORIGIN.test(origin) || allowedOrigins().includes(origin);
}

/** The backend's base URL: ?api= (when allowed), the serving backend, or the default port. */
function resolveApi() {
  const meta = document.querySelector('meta[name="kd-api"]');
  let base = params.get('api');
  if (base && !apiAllowed(base)) { ignoredApi = base; base = null; }
  if (base) base = new URL(base, location.href).href;
  if (!base && meta) base = new URL(meta.content || '/', location.href).href;
  if (!base) base = location.protocol.startsWith('http') ? location.origin : 'http://127.0.0.1:5001';
  return String(base).replace(/\/+$/, '');
}

export const API = resolveApi();
const TOKEN_KEY = 'kd-api-token';
const SERIES_COLORS = { teacher: '#d55e00', distill: '#0072b2', prune: '#009e73', finetune: '#009e73',
  loss: '#0072b2', kd_loss: '#cc79a7', ce_loss: '#e69f00', validation: '#0072b2' };

const state = {
  models: [], modelById: {}, uploads: [],
  concepts: null, schema: [], controls: {},  // from GET /models: the vocabulary and the job form's options
  watched: null, watchedState: null, finishedSeen: new Set(),
  socket: null, live: 'starting', pollTimer: null, jobsTimer: null, token: sessionStorage.getItem(TOKEN_KEY),
  tokenPrompt: null,
  loss: [], lossKeys: new Set(), drawPending: false, lastProgressAt: 0, liveEvents: 0, early: new Map(),
};

export const $ = (id) => document.getElementById(id);

// ---- the service's vocabulary (GET /models `concepts`; read once /models has answered) ---------------------
/** Whether a job state is final (concepts.finished_states). */
export const isFinished = (jobState) => ((state.concepts && state.concepts.finished_states) || []).includes(jobState);
/** What a phase is called on the page (concepts.phase_labels); the phase itself when unknown. */
export const phaseLabel = (phase) => ((state.concepts && state.concepts.phase_labels) || {})[phase] || phase;

// ---- small helpers ----------------------------------------------------------------------------------
export class UserError extends Error {
  constructor(message, status, detail) { super(message); this.status = status; this.detail = detail || {}; }
}

/** Options with the API token, when there is one. */
function withToken(options) {
  const opts = { ...(options || {}) };
  if (state.token) opts.headers = { ...(opts.headers || {}), Authorization: `Bearer ${state.token}` };
  return opts;
}

/** Ask for the token once (however many requests were refused meanwhile); kept for this tab only. */
function askToken() {
  if (!state.tokenPrompt) {
    state.tokenPrompt = Promise.resolve().then(() => {
      const given = window.prompt('This server requires its API token (the --api-token it was started with):');
      if (given && given.trim()) {
        state.token = given.trim();
        sessionStorage.setItem(TOKEN_KEY, state.token);
        if (state.socket && !state.socket.connected) state.socket.connect();
      }
      return Boolean(given && given.trim());
    }).finally(() => { setTimeout(() => { state.tokenPrompt = null; }, 0); });
  }
  return state.tokenPrompt;
}

/** fetch() with the token; on a 401 asks for the token once and tries again. A request refused without the
 * token that was given meanwhile (the page and studies.js ask at once) is just sent again with it. */
export async function authedFetch(url, options) {
  const sentWith = state.token;
  let res = await fetch(url, withToken(options));
  if (res.status === 401 && state.token && state.token !== sentWith) return fetch(url, withToken(options));
  if (res.status === 401) {
    if (state.token) { state.token = null; sessionStorage.removeItem(TOKEN_KEY); }  // a wrong or old one
    if (await askToken()) res = await fetch(url, withToken(options));
  }
  return res;
}

/** fetch() against the backend; JSON answers; errors become UserError with the backend's own words. */
export async function api(path, options) {
  let res;
  try {
    res = await authedFetch(API + path, options);
  } catch (err) {
    throw new UserError(`Cannot reach the backend at ${API}. Is it running (python backend/app.py)? ` +
      'If this page is served from another address, the backend must allow it (KD_CORS_ORIGINS).', 0);
  }
  const type = res.headers.get('Content-Type') || '';
  const body = type.includes('json') ? await res.json().catch(() => null) : null;
  if (!res.ok) {
    const err = body && body.error;
    const text = (err && err.message) || `The backend answered ${res.status} ${res.statusText || ''}`.trim() + '.';
    throw new UserError(text, res.status, err);
  }
  return body;
}

export function postJson(path, data) {
  return api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(data) });
}

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'style') node.style.cssText = value;  // CSSOM: allowed by the page's CSP (style-src 'self')
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVGNS = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === 'text') node.textContent = value; else node.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

export const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

export function fmtNumber(v, digits) {
  if (!isNum(v)) return '—';
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return v.toLocaleString('en-US');
  const d = digits === undefined ? (Math.abs(v) >= 100 ? 1 : Math.abs(v) >= 1 ? 2 : 4) : digits;
  return v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: 0 });
}

export function fmtSI(v) {
  if (!isNum(v)) return '—';
  const abs = Math.abs(v);
  for (const [div, suffix] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (abs >= div) return `${(v / div).toFixed(abs / div >= 100 ? 0 : 2)} ${suffix}`;
  }
  return fmtNumber(v);
}

export const pct = (fraction, digits = 1) => (isNum(fraction) ? `${(fraction * 100).toFixed(digits)}%` : '—');

export function fmtDuration(seconds) {
  if (!isNum(seconds)) return '';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A value in its unit, as a person reads it. */
export function fmtUnit(value, unit) {
  if (!isNum(value)) return '—';
  switch (unit) {
    case 'fraction': return pct(value);
    case 'count': return fmtNumber(value);
    case 'FLOPs': case 'MACs': return `${fmtSI(value)}${unit === 'FLOPs' ? 'FLOPs' : 'MACs'}`;
    case 'MB': return `${fmtNumber(value, 2)} MB`;
    case 'ms': return `${fmtNumber(value, 2)} ms`;
    case 's': return `${fmtNumber(value, 3)} s`;
    case 'samples/s': return `${fmtNumber(value, 1)}/s`;
    default: return `${fmtNumber(value)}${unit ? ' ' + unit : ''}`;
  }
}

export function prettyName(key) {
  return String(key).replace(/_per_s(?=_|$)/g, '_per_second').replace(/_(mb|ms|s)(?=_|$)/g, '')
    .replace(/_batch_(\d+)$/, ', batch $1').replace(/_/g, ' ').replace(/\bmb\b/g, 'MB').replace(/\bms\b/g, 'ms')
    .replace(/\bpct\b/g, '%').replace(/\bflops\b/gi, 'FLOPs').replace(/\bmacs\b/gi, 'MACs')
    .replace(/\bgflops\b/gi, 'GFLOPs').replace(/\brss\b/g, 'RSS');
}

/** A number to a few significant digits (tables): 0.123456 -> '0.123'. */
export const fmtPrecision = (v, digits = 3) => (isNum(v) ? (+v.toPrecision(digits)).toLocaleString('en-US') : '—');

const localTime = (iso) => (iso ? new Date(iso).toLocaleString() : '');

// ---- option controls, from an option's declaration (GET /models `option_schema`); studies.js uses them too ----
export const isNumeric = (option) => option.type === 'integer' || option.type === 'number';
const hasBounds = (o) => [o.minimum, o.maximum, o.exclusiveMinimum, o.exclusiveMaximum].some(isNum);

/** '[0, 1]', '(0, 100]', '[0, 1)': the option's range, written as the server writes it in its errors. */
export function rangeText(option) {
  const lo = isNum(option.exclusiveMinimum) ? `(${option.exclusiveMinimum}` : isNum(option.minimum) ? `[${option.minimum}` : '(-∞';
  const hi = isNum(option.exclusiveMaximum) ? `${option.exclusiveMaximum})` : isNum(option.maximum) ? `${option.maximum}]` : '∞)';
  return `${lo}, ${hi}`;
}

function inRange(option, v) {
  return !(isNum(option.minimum) && v < option.minimum) && !(isNum(option.maximum) && v > option.maximum) &&
    !(isNum(option.exclusiveMinimum) && v <= option.exclusiveMinimum) &&
    !(isNum(option.exclusiveMaximum) && v >= option.exclusiveMaximum);
}

/** One value typed for an option (text), checked as the server checks it (type, range, choices); a UserError
 * naming `field` otherwise. The exclusive bounds, which no HTML min/max can express, are enforced here. */
export function parseValue(option, text, field = option.name) {
  const given = String(text).trim();
  if (isNumeric(option)) {
    const integer = option.type === 'integer';
    const value = given === '' ? NaN : Number(given);
    if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || !inRange(option, value)) {
      throw new UserError(`${field} must be ${integer ? 'an integer' : 'a number'} in ${rangeText(option)}, got ${given || 'nothing'}.`,
        400, { field });
    }
    return value;
  }
  if (option.type === 'boolean') {
    if (given === 'true' || given === 'false') return given === 'true';
    throw new UserError(`${field} must be true or false, got ${given}.`, 400, { field });
  }
  if (option.choices && !option.choices.includes(given)) {
    throw new UserError(`${field} must be one of ${option.choices.join(', ')}, got '${given}'.`, 400, { field });
  }
  return given;
}

/** What an empty input of the option stands for: its default, or what its help says null means. */
function emptyMeans(option) {
  if (option.default !== null && option.default !== undefined) return [].concat(option.default).join(', ');
  const nullMeans = /null: ([^;]+)$/.exec(option.help || '');
  return nullMeans ? nullMeans[1].trim() : 'default';
}

/** The control of one option: a number input with the declared range (min/max for inclusive bounds; an
 * exclusive bound is checked by parseValue, and for integers becomes the next integer inside), a select for
 * choices and booleans (with "default" first when the option may be null), a multiple select or a
 * comma-separated text input for arrays, a text input otherwise. */
export function optionControl(option, id = option.name) {
  const base = { id, name: option.name, title: option.help || null, 'data-type': option.type };
  const defaultText = option.default === null || option.default === undefined ? '' : String(option.default);
  if (option.type === 'boolean' || (option.choices && option.type !== 'array')) {
    const choices = option.type === 'boolean' ? [['true', 'yes'], ['false', 'no']] : option.choices.map((c) => [String(c), String(c)]);
    const nullable = option.nullable || !defaultText;
    const select = el('select', { ...base, 'data-default': defaultText },
      nullable ? el('option', { value: '', text: defaultText ? `default (${defaultText})` : 'default' }) : null,
      choices.map(([value, text]) => el('option', { value, text })));
    select.value = defaultText;
    return select;
  }
  if (option.type === 'array') {
    if (option.choices) {
      return el('select', { ...base, multiple: true, size: Math.min(4, option.choices.length) },
        option.choices.map((c) => el('option', { value: c, text: c, selected: [].concat(option.default || []).includes(c) })));
    }
    return el('input', { ...base, type: 'text', spellcheck: 'false', placeholder: emptyMeans(option) });
  }
  if (isNumeric(option)) {
    const integer = option.type === 'integer';
    let min = option.minimum, max = option.maximum;
    if (integer && isNum(option.exclusiveMinimum)) min = Math.floor(option.exclusiveMinimum) + 1;
    if (integer && isNum(option.exclusiveMaximum)) max = Math.ceil(option.exclusiveMaximum) - 1;
    return el('input', { ...base, type: 'number', step: integer ? '1' : 'any', inputmode: integer ? 'numeric' : 'decimal',
      min: isNum(min) ? String(min) : null, max: isNum(max) ? String(max) : null,
      'data-exclusive-min': isNum(option.exclusiveMinimum) ? String(option.exclusiveMinimum) : null,
      'data-exclusive-max': isNum(option.exclusiveMaximum) ? String(option.exclusiveMaximum) : null,
      placeholder: option.preset_default ? 'preset default' : emptyMeans(option) });
  }
  return el('input', { ...base, type: 'text', spellcheck: 'false', placeholder: emptyMeans(option) });
}

/** A labelled field: the control, then the option's help and range. */
export function optionField(option, control, note) {
  const helpId = `${control.id}-help`;
  control.setAttribute('aria-describedby', helpId);
  const range = isNumeric(option) && hasBounds(option) ? `range ${rangeText(option)}` : '';
  return el('div', { class: 'field', 'data-option': option.name, 'data-group': option.group },
    el('label', { for: control.id, text: option.label || option.name }), control,
    el('small', { class: 'hint help', id: helpId, text: [option.help, range, note].filter(Boolean).join('; ') }));
}

/** The value a control holds for the request, or undefined when it is left to the server (empty, disabled, or
 * a select still on the declared default); checked with parseValue. */
export function readControl(option, control) {
  if (!control || control.disabled) return undefined;
  if (control.multiple) {
    const chosen = [...control.selectedOptions].map((o) => o.value);
    return chosen.length ? chosen : undefined;
  }
  if (control.type === 'number' && control.validity && control.validity.badInput) {
    throw new UserError(`${option.name} must be a number in ${rangeText(option)}; what is typed is not a number.`, 400, { field: option.name });
  }
  const text = control.value.trim();
  if (text === '') return undefined;
  if (control.tagName === 'SELECT' && control.dataset.default !== undefined && text === control.dataset.default) return undefined;
  if (option.type === 'array') {
    const items = text.split(/[\s,;]+/).filter(Boolean);
    if (option.choices) items.forEach((item) => parseValue({ ...option, type: 'string' }, item));
    return items;
  }
  return parseValue(option, text);
}

// ---- messages ----------------------------------------------------------------------------------------
export function showMessage(text, kind = 'error') {
  $('message-text').textContent = text;
  $('message').dataset.kind = kind;
  $('message').hidden = false;
}

function clearMessage() { $('message').hidden = true; $('message-text').textContent = ''; }

export function explain(err) {
  if (err instanceof UserError) return err.message;
  return `Something went wrong in this page: ${err && err.message ? err.message : err}`;
}

function setLive(mode, text) {
  state.live = mode;
  const badge = $('live-status');
  badge.dataset.mode = mode;
  badge.textContent = text;
}

function showLiveNotice(text) {
  const box = $('live-notice');
  box.textContent = text;
  box.hidden = !text;
}

// ---- models, datasets, uploads --------------------------------------------------------------------------
let resolveModels;
/** GET /models' answer, once it has come (studies.js builds its form from it too). */
export const modelsReady = new Promise((resolve) => { resolveModels = resolve; });

async function loadModels() {
  const body = await api('/models');
  state.concepts = body.concepts || {};
  state.models = body.models || [];
  state.modelById = Object.fromEntries(state.models.map((m) => [m.id, m]));
  const select = $('model');
  select.replaceChildren(...state.models.map((m) => el('option', { value: m.id, text: `${m.display_name} (${m.family})` })));
  const preferred = params.get('model') || (state.modelById.resnet18 ? 'resnet18' : state.models[0] && state.models[0].id);
  if (preferred) select.value = preferred;
  if (!state.schema.length) buildJobForm(body);
  onModelChange();
  resolveModels(body);
}

// ---- the job form: one field per option of GET /models `option_schema`, a fieldset per group ---------------
// Group titles, and which groups are shown at once, come from concepts.option_groups; a group it does not name
// (a new one) goes under "Advanced options" with its name as title.
const groupInfo = (group) => ((state.concepts && state.concepts.option_groups) || {})[group] || {};
// The lists in GET /models that describe the choices of an option (shown under its select).
const CHOICE_CATALOGS = { pruning_method: 'pruning_methods', kd_loss: 'kd_losses' };

const groupTitle = (group) => groupInfo(group).title || prettyName(group).replace(/^./, (c) => c.toUpperCase());

/** The fields, in the schema's order: a generated control per option, or the page's own picker for the few
 * that depend on the model and the uploads (model, dataset, teacher upload: <div data-option> in index.html). */
function buildJobForm(body) {
  const form = $('job-form');
  const pickers = Object.fromEntries([...form.querySelectorAll('[data-option]')].map((n) => [n.dataset.option, n]));
  state.schema = body.option_schema || [];
  state.controls = {};
  state.catalogs = Object.fromEntries(Object.entries(CHOICE_CATALOGS).map(([name, key]) => [name, body[key] || []]));
  const groups = new Map();
  for (const option of state.schema) {
    if (!groups.has(option.group)) groups.set(option.group, []);
    groups.get(option.group).push(option);
  }
  const open = [], advanced = [];
  for (const [group, options] of groups) {
    const fields = options.map((option) => {
      const picker = pickers[option.name];
      delete pickers[option.name];
      if (picker) {
        state.controls[option.name] = form.elements.namedItem(option.name);
        picker.classList.add('field', 'wide');
        return picker;
      }
      const id = document.getElementById(option.name) ? `option-${option.name}` : option.name;  // ids stay unique
      const control = optionControl(option, id);
      state.controls[option.name] = control;
      const [by, value] = option.owner ? option.owner.split(':') : [];
      return optionField(option, control, by && value ? `with ${prettyName(by)} ${value}` : '');
    });
    (groupInfo(group).open ? open : advanced).push(el('fieldset', { class: 'option-group', id: `options-${group}`,
      'data-group': group }, el('legend', { text: groupTitle(group) }), el('div', { class: 'fields' }, fields)));
  }
  $('job-options').replaceChildren(...open, ...Object.values(pickers));  // a picker the schema lacks stays
  $('advanced-options').replaceChildren(...advanced);
  form.addEventListener('change', (event) => { if (event.target.name !== 'model_name') updateFields(); });
  form.addEventListener('input', (event) => checkField(event.target));
}

/** Live feedback while typing: the field says what the server would refuse (no request is made). */
function checkField(control) {
  const option = state.schema.find((o) => o.name === control.name);
  if (!option || !control.setCustomValidity || control.type === 'file') return;
  try {
    readControl(option, control);
    control.setCustomValidity('');
    control.removeAttribute('aria-invalid');
  } catch (err) {
    control.setCustomValidity(err.message);
  }
}

/** What depends on other fields: the placeholders (the preset's values for this model), the options that
 * belong to one method (owner "kd_loss:logits": enabled only while that one is chosen), the chosen methods'
 * descriptions. */
function updateFields() {
  const model = currentModel();
  const presetValues = model ? (model.preset_defaults || {})[chosen('preset')] || {} : {};
  for (const option of state.schema) {
    const control = state.controls[option.name];
    if (!control) continue;
    if (option.preset_default && control.tagName === 'INPUT') {
      const value = presetValues[option.name] ?? (model ? model[`default_${option.name}`] : undefined);
      control.placeholder = value === null || value === undefined ? 'preset default' : String(value);
    }
    if (option.owner) {
      const [by, value] = option.owner.split(':');
      const on = !state.controls[by] || chosen(by) === value;
      control.disabled = !on;
      const field = control.closest('.field');
      if (field) field.classList.toggle('inactive', !on);
    }
    const catalog = (state.catalogs || {})[option.name];
    const help = catalog && $(`${control.id}-help`);
    if (help) {
      const entry = catalog.find((c) => c.name === chosen(option.name));
      help.textContent = entry ? [entry.description, entry.formula].filter(Boolean).join(' ') : option.help;
    }
  }
}

/** The value an option has in the form: what is chosen, or its declared default when left empty. */
function chosen(name) {
  const control = state.controls[name];
  const option = state.schema.find((o) => o.name === name);
  const value = control ? control.value : '';
  return value !== '' ? value : (option && option.default !== null && option.default !== undefined ? String(option.default) : '');
}

async function loadUploads() {
  try {
    const body = await api('/uploads');
    state.uploads = body.uploads || [];
  } catch (err) {
    state.uploads = [];  // uploads are optional: the built-in datasets still work
  }
  fillDatasets();
  fillTeachers();
}

const currentModel = () => state.modelById[$('model').value];

function fillDatasets(selectId) {
  const model = currentModel();
  const select = $('dataset');
  const keep = selectId || select.value;
  if (!model) { select.replaceChildren(); return; }
  const kinds = model.upload_kinds || [];
  const builtins = (model.datasets || []).map((d) => el('option', { value: d, text: `${d} (built-in)` }));
  const uploads = state.uploads.filter((u) => kinds.includes(u.kind))
    .map((u) => el('option', { value: u.upload_id, text: `${u.filename} (uploaded ${u.kind}${u.classes ? `, ${u.classes} classes` : ''})` }));
  select.replaceChildren(...builtins, ...(uploads.length ? [el('optgroup', { label: 'Uploaded' }, uploads)] : []));
  const values = [...select.options].map((o) => o.value);
  select.value = values.includes(keep) ? keep : model.default_dataset;
  const accept = { csv: '.csv', image_zip: '.zip', npz: '.npz' };
  $('dataset-file').accept = kinds.map((k) => accept[k]).filter(Boolean).join(',');
  $('dataset-hint').textContent = model.family === 'text'
    ? 'Upload: a CSV with a text column and a label column.'
    : 'Upload: a ZIP of one folder of images per class, or an .npz with x and y arrays.';
}

function fillTeachers(selectId) {
  const select = $('teacher_upload_id');
  const keep = selectId || select.value;
  const teachers = state.uploads.filter((u) => ['checkpoint', 'safetensors', 'model_zip'].includes(u.kind));
  select.replaceChildren(el('option', { value: '', text: 'trained or pretrained here' }),
    ...teachers.map((u) => el('option', { value: u.upload_id, text: `${u.filename} (uploaded ${u.kind})` })));
  select.value = [...select.options].some((o) => o.value === keep) ? keep : '';
}

function onModelChange() {
  const model = currentModel();
  if (!model) return;
  $('model-hint').textContent = `${model.source}; student keeps about ${pct(1 - (model.default_structural_ratio || 0), 0)} of the width.`;
  fillDatasets();
  updateFields();
}

async function uploadFile(input, statusId, onDone) {
  const file = input.files && input.files[0];
  if (!file) return;
  const status = $(statusId);
  status.textContent = `Uploading ${file.name}…`;
  clearMessage();
  const form = new FormData();
  form.append('file', file);
  try {
    const meta = await api('/upload', { method: 'POST', body: form });
    status.textContent = `${meta.filename}: ${meta.kind}` +
      (meta.classes ? `, ${meta.classes} classes` : '') + (meta.rows ? `, ${meta.rows} rows` : '') + '.';
    state.uploads = [meta, ...state.uploads.filter((u) => u.upload_id !== meta.upload_id)];
    onDone(meta);
  } catch (err) {
    status.textContent = '';
    showMessage(`The upload of ${file.name} was refused: ${explain(err)}`);
  } finally {
    input.value = '';
  }
}

// ---- starting and cancelling ------------------------------------------------------------------------
/** The request body: the options set in the form (empty fields and untouched defaults are left to the server),
 * each checked against its declaration first. */
function collectOptions() {
  const body = {};
  for (const option of state.schema) {
    const value = readControl(option, state.controls[option.name]);
    if (value !== undefined) body[option.name] = value;
  }
  if (!state.schema.length) body.model_name = $('model').value;  // /models has not answered: the server will say why
  return body;
}

function markField(field) {
  document.querySelectorAll('[aria-invalid="true"]').forEach((n) => n.removeAttribute('aria-invalid'));
  const input = field && (state.controls[field] || $(field));
  if (!input) return;
  input.setAttribute('aria-invalid', 'true');
  if (input.closest('details')) input.closest('details').open = true;
  input.focus();
}

async function startJob(event) {
  event.preventDefault();
  clearMessage();
  markField(null);
  const button = $('start');
  button.disabled = true;
  try {
    const body = collectOptions();
    const answer = await postJson('/train', body);
    $('job-panel').scrollIntoView({ block: 'nearest' });
    await watchJob(answer.job_id, { fresh: true });
    refreshJobs();
  } catch (err) {
    showMessage(`The job was not started: ${explain(err)}`);
    if (err instanceof UserError) markField(err.detail.field);
  } finally {
    button.disabled = false;
  }
}

async function cancelJob() {
  if (!state.watched) return;
  $('cancel').disabled = true;
  $('phase-detail').textContent = 'cancelling…';
  try {
    const answer = await postJson('/cancel_training', { job_id: state.watched });
    if (isFinished(answer.status)) onFinished({ job_id: answer.job_id, status: answer.status });
  } catch (err) {
    showMessage(`Could not cancel: ${explain(err)}`);
  }
  refreshJobs();
}

// ---- watching one job --------------------------------------------------------------------------------
async function watchJob(jobId, { fresh = false } = {}) {
  if (state.watched && state.watched !== jobId) leaveRoom(state.watched);
  const same = state.watched === jobId;
  state.watched = jobId;
  state.finishedSeen.delete(jobId);
  if (!same || fresh) resetJobView(jobId);
  markWatchedRow();
  let record;
  try {
    record = await api(`/jobs/${encodeURIComponent(jobId)}`);
  } catch (err) {
    showMessage(`Could not open job ${jobId}: ${explain(err)}`);
    return;
  }
  if (state.watched !== jobId) return;
  for (const p of state.early.get(jobId) || []) addLossPoint(p);  // first, to keep the steps in order
  state.early.delete(jobId);
  applyRecord(record);
  if (isFinished(record.state)) {
    onFinished({ job_id: jobId, status: record.state, error: record.error });
  } else {
    joinRoom(jobId);
    schedulePoll();
  }
}

function resetJobView(jobId) {
  $('job-id').textContent = jobId;
  $('job-empty').hidden = true;
  $('job-live').hidden = false;
  $('results').hidden = true;
  $('metrics-line').textContent = '';
  $('progress').value = 0;
  $('progress-text').textContent = '0%';
  $('eta').textContent = '';
  $('phase-detail').textContent = '';
  $('live-loss').hidden = false;
  state.liveEvents = 0;
  $('job-panel').dataset.liveEvents = '0';
  state.loss = [];
  state.lossKeys = new Set();
  drawLoss();
}

function setJobState(jobState) {
  state.watchedState = jobState;
  const badge = $('job-state');
  badge.textContent = jobState || '';
  badge.dataset.state = jobState || '';
  $('cancel').disabled = !(jobState === 'running' || jobState === 'queued');
}

function applyRecord(record) {
  setJobState(record.state);
  const cfg = record.config || {};
  $('job-desc').textContent = `${record.model_name} on ${record.dataset || cfg.dataset || '?'}, preset ${cfg.preset || '?'}` +
    ` — T ${cfg.temperature}, alpha ${cfg.alpha}, sparsity ${pct(cfg.sparsity, 0)}; created ${localTime(record.created_at)}`;
  if (record.state === 'queued') {
    setPhase('queued', record.queue_position ? `position ${record.queue_position} in the queue` : '');
  } else if (record.progress && record.progress.phase && !isFinished(record.state)) {
    updateProgress(record.progress);
  } else {
    setPhase(record.phase);
  }
  if (record.state === 'succeeded') setProgress(100, `done in ${fmtDuration(record.duration_s)}`);
}

function setPhase(phase, detail) {
  $('phase').textContent = phaseLabel(phase) || '—';
  $('phase').dataset.phase = phase || '';
  if (detail !== undefined) $('phase-detail').textContent = detail;
}

function setProgress(percent, etaText) {
  const value = isNum(percent) ? Math.max(0, Math.min(100, percent)) : 0;
  $('progress').value = value;
  $('progress-text').textContent = `${value.toFixed(0)}% overall`;
  $('eta').textContent = etaText || '';
}

/** A training_progress payload (or a job record's progress): phase, bar, ETA and a loss point. */
function updateProgress(p) {
  if (!p || (p.job_id && p.job_id !== state.watched)) return;
  if (isFinished(state.watchedState) && p.phase !== 'done') return;
  if (state.watchedState === 'queued' || !state.watchedState) setJobState('running');
  const step = p.total ? `step ${p.step} of ${p.total}` : '';
  // every loss term the job's loss logs (loss, kd_loss, ce_loss, hidden_cosine_loss, features_loss, ...)
  const terms = Object.entries(p.losses || {}).filter(([, v]) => isNum(v));
  const loss = terms.map(([name, v]) => ` · ${name} ${v.toFixed(4)}`).join('');
  setPhase(p.phase, step + loss);
  const parts = [];
  if (isNum(p.eta_s)) parts.push(`this phase: about ${fmtDuration(p.eta_s)} left`);
  const overall = p.overall_percent;
  if (isNum(overall) && overall > 2 && isNum(p.elapsed_s)) {
    parts.push(`whole job: roughly ${fmtDuration(p.elapsed_s * (100 - overall) / overall)} left (estimate)`);
  }
  if (isNum(p.elapsed_s)) parts.push(`elapsed ${fmtDuration(p.elapsed_s)}`);
  setProgress(overall, parts.join(' · '));
  addLossPoint(p);
}

function addLossPoint(p) {
  const losses = p.losses || {};
  if (p.heartbeat || !isNum(losses.loss) || !p.phase) return;
  const key = `${p.phase}:${p.step}`;
  if (state.lossKeys.has(key)) return;
  state.lossKeys.add(key);
  state.loss.push({ phase: p.phase, x: state.loss.length + 1, y: losses.loss });
  if (!state.drawPending) {
    state.drawPending = true;
    requestAnimationFrame(() => { state.drawPending = false; drawLoss(); });
  }
}

function drawLoss() {
  const byPhase = {};
  for (const point of state.loss) (byPhase[point.phase] = byPhase[point.phase] || []).push([point.x, point.y]);
  const series = Object.entries(byPhase).map(([phase, points]) => ({ name: phase, color: SERIES_COLORS[phase] || '#555', points }));
  lineChart($('loss-chart'), series, { xLabel: 'progress update', yLabel: 'loss', empty: 'The loss appears here while the job trains.' });
}

function onMetrics(p) {
  if (p.job_id !== state.watched) return;
  const m = p.metrics || {};
  const bits = [];
  for (const key of ['epoch', 'pruning_step', 'step']) if (isNum(m[key])) bits.push(`${prettyName(key)} ${m[key]}`);
  for (const key of ['accuracy', 'val_accuracy', 'achieved_sparsity']) if (isNum(m[key])) bits.push(`${prettyName(key)} ${pct(m[key])}`);
  for (const key of ['loss', 'val_loss']) if (isNum(m[key])) bits.push(`${prettyName(key)} ${m[key].toFixed(4)}`);
  $('metrics-line').textContent = `Latest validation (${p.phase}): ${bits.join(', ') || 'received'}`;
}

function onStatus(p) {
  scheduleJobsRefresh();
  if (p.job_id !== state.watched) return;
  if (isFinished(p.status)) { onFinished(p); return; }
  if (p.status === 'queued') { setJobState('queued'); setPhase('queued'); return; }
  setJobState('running');
  setPhase(p.phase, '');
}

function onTrainingError(p) {
  if (p.job_id !== state.watched) return;
  showMessage(`The job failed: ${p.message || 'no reason was given'}`);
}

/** The end of the watched job, whichever way it is learnt (event, poll, cancel answer). */
function onFinished(p) {
  if (p.job_id !== state.watched || state.finishedSeen.has(p.job_id)) return;
  state.finishedSeen.add(p.job_id);
  setJobState(p.status);
  clearTimeout(state.pollTimer);
  leaveRoom(p.job_id);
  refreshJobs();
  if (p.status === 'succeeded') {
    setPhase('done', '');
    setProgress(100, '');
    loadResults(p.job_id);
  } else if (p.status === 'cancelled') {
    setPhase('cancelled', '');
    showMessage('The job was cancelled; it has no results.', 'info');
  } else {
    setPhase('failed', '');
    api(`/jobs/${encodeURIComponent(p.job_id)}`).then((rec) => {
      showMessage(`The job failed: ${rec.error || p.error || 'no reason was given'}`);
    }, () => showMessage(`The job failed: ${p.error || 'no reason was given'}`));
  }
}

// Polling: the only source of progress without Socket.IO, and a safety net beside it.
function schedulePoll() {
  clearTimeout(state.pollTimer);
  const delay = state.live === 'socket' ? 5000 : 1000;
  state.pollTimer = setTimeout(pollWatched, delay);
}

async function pollWatched() {
  const jobId = state.watched;
  if (!jobId || state.finishedSeen.has(jobId)) return;
  try {
    const record = await api(`/jobs/${encodeURIComponent(jobId)}`);
    if (state.watched !== jobId) return;
    if (isFinished(record.state)) { onFinished({ job_id: jobId, status: record.state, error: record.error }); return; }
    if (state.live !== 'socket' || Date.now() - state.lastProgressAt > 4000) applyRecord(record);
  } catch (err) {
    if (err.status === 0) setLive('offline', 'backend unreachable');
  }
  schedulePoll();
}

// ---- Socket.IO --------------------------------------------------------------------------------------
function loadSocketClient() {
  const meta = document.querySelector('meta[name="kd-socketio-client"]');
  if (meta && meta.content === 'missing') { socketUnavailable(); return; }
  const script = document.createElement('script');
  // From this page's own origin, relative to the dashboard folder: never from ${API}.
  script.src = new URL('../vendor/socket.io/socket.io.min.js', document.baseURI).href;
  script.onload = () => (typeof window.io === 'function' ? connectSocket() : socketUnavailable());
  script.onerror = socketUnavailable;
  document.head.append(script);
}

async function socketUnavailable() {
  try {
    await api('/test');
  } catch (err) {  // the backend itself is down or refuses this origin: the message box says so
    setLive('offline', 'backend unreachable');
    state.retrySocketClient = true;  // tried again once the backend answers
    return;
  }
  setLive('polling', 'polling (no live updates)');
  showLiveNotice('Live updates need the Socket.IO client, which the install step brings: run `npm ci` in the ' +
    'repository root and reload this page. Until then the page asks the backend for progress every second.');
  if (state.watched) schedulePoll();
}

/** Options of a Socket.IO connection to the backend (with the token, when there is one). */
export function socketOptions() {
  return { transports: ['polling', 'websocket'], reconnectionDelayMax: 5000,
    auth: (cb) => cb(state.token ? { token: state.token } : {}) };
}

function connectSocket() {
  const socket = window.io(API, socketOptions());
  state.socket = socket;
  let failures = 0;
  socket.on('connect', () => {
    failures = 0;
    setLive('socket', 'live (Socket.IO)');
    showLiveNotice('');
    if (state.watched && !state.finishedSeen.has(state.watched)) joinRoom(state.watched);
  });
  socket.on('disconnect', () => { setLive('polling', 'reconnecting… (polling meanwhile)'); schedulePoll(); });
  socket.on('connect_error', (err) => {
    failures += 1;
    if (err && String(err.message).startsWith('unauthorized')) askToken();  // refused: no retry without it
    setLive('polling', 'live connection failed (polling)');
    if (failures === 3) showLiveNotice(`The live connection to ${API} fails; progress is polled instead. ` +
      'If the page is served from another address, the backend must allow it (KD_CORS_ORIGINS).');
    schedulePoll();
  });
  socket.on('training_status', onStatus);
  socket.on('training_progress', (p) => {
    if (p.job_id !== state.watched) { keepEarly(p); return; }
    state.lastProgressAt = Date.now();
    state.liveEvents += 1;  // shown as data-live-events: how many updates came over Socket.IO
    $('job-panel').dataset.liveEvents = String(state.liveEvents);
    updateProgress(p);
  });
  socket.on('training_metrics', onMetrics);
  socket.on('training_error', onTrainingError);
}

/** Progress of a job not watched yet: a job just started can report before POST /train has answered. */
function keepEarly(p) {
  if (p.heartbeat || !p.job_id) return;
  const list = state.early.get(p.job_id) || [];
  if (!list.length && state.early.size >= 5) state.early.delete(state.early.keys().next().value);
  list.push(p);
  state.early.set(p.job_id, list.slice(-200));
}

function joinRoom(jobId) {
  const socket = state.socket;
  if (!socket || !socket.connected) return;
  socket.emit('join', { job_id: jobId }, (ack) => {
    if (!ack || !ack.ok || ack.job_id !== state.watched) return;
    if (isFinished(ack.status)) onFinished({ job_id: ack.job_id, status: ack.status });
    else if (ack.progress && ack.progress.phase) updateProgress({ job_id: ack.job_id, ...ack.progress });
  });
}

function leaveRoom(jobId) {
  if (state.socket && state.socket.connected) state.socket.emit('leave', { job_id: jobId });
}

// ---- results -------------------------------------------------------------------------------------------
async function loadResults(jobId) {
  let report;
  try {
    report = await api(`/evaluate?job_id=${encodeURIComponent(jobId)}`);
  } catch (err) {
    showMessage(`The results of ${jobId} could not be loaded: ${explain(err)}`);
    return;
  }
  if (state.watched !== jobId) return;
  renderResults(jobId, report);
}

function renderResults(jobId, report) {
  const meta = report.metadata || {};
  const perf = report.student_model_performance || {};
  $('results-title').textContent = `${(meta.model && meta.model.display_name) || perf.model || ''} on ` +
    `${(meta.dataset && meta.dataset.name) || ''} · ${jobId}`;
  const q = `?job_id=${encodeURIComponent(jobId)}`;
  $('download').href = `${API}/download${q}`;
  $('report-link').href = `${API}/evaluate${q}`;
  $('matlab-link').href = `${API}/matlab_metrics${q}`;
  $('summary').textContent = (report.learning_outcomes || {}).summary || '';
  $('results').hidden = false;  // shown first, so that the charts can measure their width
  $('live-loss').hidden = state.loss.length === 0;  // a job opened after the fact has no live points
  renderHeadline(report);
  renderGroups(report);
  renderSparsity(report);
  renderLayers(report);
  renderHistory(report);
  renderStages(report);
  renderControls(jobId, report);
  renderLatencyTarget(report);
  renderPlots(jobId);
  $('results').dataset.jobId = jobId;
}

// ---- uncertainty: the report's 95% intervals (*_ci, ci) and paired differences (difference, within_noise) ----
const isInterval = (ci) => Array.isArray(ci) && ci.length === 2 && isNum(ci[0]) && isNum(ci[1]);

/** '[95.1, 98.6]': a 95% interval in the value's unit (a fraction's in percent); '' when there is none. */
function ciText(ci, unit = 'fraction') {
  if (!isInterval(ci)) return '';
  const end = unit === 'fraction' ? (v) => (v * 100).toFixed(1) : (v) => fmtNumber(v);
  return `[${end(ci[0])}, ${end(ci[1])}]`;
}

/** '97.4% [95.1, 98.6]': a value with its 95% interval; the value alone when there is none. */
function fmtWithCi(value, ci, unit = 'fraction') {
  const text = fmtUnit(value, unit);
  return isNum(value) && isInterval(ci) ? `${text} ${ciText(ci, unit)}` : text;
}

const signed = (v, digits = 1) => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;

/** 'p = 0.0015', 'p = 7.6e-6'; null when there is no p-value (a bootstrap interval has none). */
function fmtP(p) {
  if (!isNum(p)) return null;
  return p >= 0.001 ? `p = ${+p.toPrecision(2)}` : `p = ${p.toExponential(1).replace('e-0', 'e-')}`;
}

const TESTS = { mcnemar_exact: 'exact McNemar test', paired_bootstrap: 'paired bootstrap' };

/** The marking of a paired difference: "within noise" when its 95% interval holds 0, "beyond noise" otherwise. */
function noiseMark(diff) {
  if (!diff || typeof diff.within_noise !== 'boolean') return null;
  return el('span', { class: 'noise', 'data-within-noise': String(diff.within_noise),
    text: diff.within_noise ? 'within noise' : 'beyond noise',
    title: diff.within_noise ? 'the 95% interval of the difference includes 0' : 'the 95% interval of the difference excludes 0' });
}

/** A paired difference in points: '+2.2 pts [−11.8, +16.3], p = 1' and its noise marking; the reason when
 * there is none. */
function differenceNode(diff, reason) {
  if (!diff || !isNum(diff.points)) return el('span', { class: 'hint', text: reason || '—' });
  const bits = [`${signed(diff.points)} pts`];
  if (isInterval(diff.ci_points)) bits.push(` [${signed(diff.ci_points[0])}, ${signed(diff.ci_points[1])}]`);
  const p = fmtP(diff.p_value);
  if (p) bits.push(`, ${p}`);
  const how = [TESTS[diff.test] || diff.test, isNum(diff.samples) ? `${diff.samples} paired test examples` : '',
    diff.p_value_reason || ''].filter(Boolean).join('; ');
  return el('span', { class: 'difference', title: `95% interval in points; ${how}` }, bits.join(''), ' ', noiseMark(diff));
}

function renderHeadline(report) {
  const d = (report.teacher_vs_student_comparison || {}).derived || {};
  const speed = d.speedup || {};
  const acc = ((report.teacher_vs_student_comparison || {}).effectiveness || {}).accuracy || {};
  const ci = acc.ci || {};
  const cards = [
    ['Accuracy teacher → student', `${pct(d.accuracy_teacher)} → ${pct(d.accuracy_student)}`,
      isInterval(ci.teacher) && isInterval(ci.student) ? `95% intervals ${ciText(ci.teacher)} → ${ciText(ci.student)}` : ''],
    ['Student − teacher accuracy (paired)', differenceNode(acc.difference, acc.difference_reason)],
    ['Compression (nonzero parameters)', isNum(d.compression_ratio) ? `${d.compression_ratio.toFixed(2)}×` : '—'],
    ['Smaller on disk (dense)', isNum(d.size_reduction_dense_pct) ? `${d.size_reduction_dense_pct.toFixed(1)}%` : '—'],
    ...Object.entries(speed).map(([k, v]) => [`Speedup, ${prettyName(k)}`, isNum(v) ? `${v.toFixed(2)}×` : '—']),
    ['FLOPs ratio', isNum(d.flops_ratio) ? `${d.flops_ratio.toFixed(2)}×` : '—'],
  ];
  $('headline').replaceChildren(...cards.map(([label, value, note]) =>
    el('div', { class: 'card' }, el('div', { class: 'value' }, value), el('div', { class: 'label', text: label }),
      note ? el('div', { class: 'label', text: note }) : null)));
}

const GROUPS = [['effectiveness', 'Effectiveness'], ['efficiency', 'Efficiency'], ['compression', 'Compression'],
  ['complexity', 'Complexity']];

function renderGroups(report) {
  const comparison = report.teacher_vs_student_comparison || {};
  const effectiveness = comparison.effectiveness || {};
  const rows = foldIntervals(comparison.table || []).map((r) => {
    // An effectiveness row: its pair's intervals (ci) and paired difference, from the comparison's own block.
    const [group, key] = String(r.metric).split('.');
    const pair = group === 'effectiveness' ? effectiveness[key] : null;
    if (!pair || typeof pair !== 'object') return r;
    return { ...r, ci: { ...r.ci, ...pair.ci }, difference: pair.difference, differenceReason: pair.difference_reason };
  });
  const groups = GROUPS.map(([key, title]) => {
    const mine = rows.filter((r) => String(r.metric).split('.')[0] === key);
    if (!mine.length) return null;
    const charted = mine.filter((r) => (isNum(r.teacher) && r.teacher !== 0) || (isNum(r.student) && r.student !== 0));
    const notes = key === 'effectiveness' ? [effectiveness.intervals_note, effectiveness.difference_note].filter(Boolean) : [];
    return el('div', { class: 'group', id: `group-${key}` },
      el('h3', { text: title }),
      pairBars(charted),
      comparisonTable(mine),
      notes.length ? el('p', { class: 'hint note', text: `95% intervals in brackets. ${notes.join('. ')}.` }) : null);
  }).filter(Boolean);
  const runtimes = runtimeTable(report);
  if (runtimes) groups.push(runtimes);
  groups.push(inferenceMemory(report));
  $('groups').replaceChildren(...groups);
}

/** The table's rows with each `<metric>_ci_low` / `<metric>_ci_high` pair folded into its metric's row as
 * ci: {teacher: [low, high], student: [low, high]}, shown in brackets beside the value instead of as rows. */
function foldIntervals(rows) {
  const byMetric = new Map(rows.map((r) => [r.metric, r]));
  const folded = new Set();
  const out = [];
  for (const r of rows) {
    const low = byMetric.get(`${r.metric}_ci_low`), high = byMetric.get(`${r.metric}_ci_high`);
    if (low && high) {
      folded.add(low.metric).add(high.metric);
      out.push({ ...r, ci: Object.fromEntries(['teacher', 'student'].map((w) => [w, [low[w], high[w]]])) });
    } else {
      out.push(r);
    }
  }
  return out.filter((r) => !folded.has(r.metric));
}

// Deployment runtime (ONNX Runtime): teacher, student and, with quantize=dynamic_int8, the int8 student.
function runtimeTable(report) {
  const ort = (((report.efficiency_improvements || {}).runtimes) || {}).onnxruntime;
  if (!ort) return null;
  const who = ['teacher', 'student', 'student_int8'];
  const rows = [['accuracy', 'fraction', ort.accuracy || {}], ['ONNX file size', 'MB', ort.size_mb || {}]];
  for (const [key, row] of Object.entries(ort.latency || {})) {
    rows.push([`median latency, ${prettyName(key)}`, 'ms', Object.fromEntries(who.map((w) => [w, row[`${w}_median_ms`]]))]);
  }
  return el('div', { class: 'group', id: 'group-onnxruntime' },
    el('h3', { text: 'ONNX Runtime (deployment)' }),
    el('table', { class: 'compare' },
      el('thead', {}, el('tr', {}, el('th', { text: 'metric' }), ...who.map((w) => el('th', { class: 'num', text: w })))),
      el('tbody', {}, rows.map(([name, unit, values]) => el('tr', {},
        el('td', { text: name }), ...who.map((w) => el('td', { class: 'num', text: fmtUnit(values[w], unit) })))))));
}

const RUNTIME_LABELS = { pytorch: 'PyTorch', onnxruntime: 'ONNX Runtime' };

/** Inference memory (efficiency_improvements.inference_memory): per runtime, model and batch size, the peak RSS
 * of a fresh process that loaded the saved model and ran the batch, and its increase over that process before
 * loading; one line with inference_memory_reason when it was not measured. */
function inferenceMemory(report) {
  const eff = report.efficiency_improvements || {};
  const memory = eff.inference_memory;
  const box = el('div', { class: 'group', id: 'group-inference-memory', 'data-measured': memory ? 'true' : 'false' },
    el('h3', { text: 'Inference memory' }));
  if (!memory) {
    box.append(el('p', { id: 'inference-memory-reason', class: 'hint',
      text: `Not measured: ${eff.inference_memory_reason || 'this report has no inference memory figures'}.` }));
    return box;
  }
  const runtimes = Object.entries(memory).filter(([, v]) => v && typeof v === 'object' && !Array.isArray(v));
  const cells = runtimes.flatMap(([, models]) => Object.values(models || {}));
  const batches = [...new Set(cells.flatMap((m) => Object.keys(m || {})))]
    .sort((a, b) => Number(a.replace(/\D/g, '')) - Number(b.replace(/\D/g, '')));
  const figure = (cell, key) => el('td', { class: 'num', title: (cell && cell.error) || null,
    text: cell && !cell.error ? fmtUnit(cell[key], 'MB') : '—' });
  const table = el('table', { class: 'compare', id: 'inference-memory-table' },
    el('thead', {},
      el('tr', {}, el('th', { text: 'runtime', rowspan: 2 }), el('th', { text: 'model', rowspan: 2 }),
        batches.map((b) => el('th', { class: 'num', colspan: 2, text: prettyName(b).replace(/^b/, 'B') }))),
      el('tr', {}, batches.flatMap(() => [el('th', { class: 'num', text: 'peak RSS' }), el('th', { class: 'num', text: 'increase' })]))),
    el('tbody', {}, runtimes.flatMap(([runtime, models]) => Object.entries(models || {}).map(([model, byBatch]) =>
      el('tr', { 'data-runtime': runtime, 'data-model': model },
        el('td', { text: RUNTIME_LABELS[runtime] || runtime }), el('td', { text: model }),
        batches.flatMap((b) => [figure((byBatch || {})[b], 'peak_rss_mb'), figure((byBatch || {})[b], 'increase_mb')]))))));
  box.append(el('div', { class: 'table-wrap' }, table),
    el('p', { class: 'hint note', title: memory.method || null,
      text: ['Increase: the peak over the fresh process before it loaded the model', memory.unit_note,
        isNum(memory.seconds) ? `measured in ${fmtDuration(memory.seconds)}` : ''].filter(Boolean).join('; ') + '.' }));
  return box;
}

function metricName(row) { return prettyName(String(row.metric).split('.').slice(1).join('.')); }

/** Teacher and student bars of each row, scaled to the pair's larger value (or interval end); a bar with a
 * 95% interval gets an error bar (.whisker) over it. */
function pairBars(rows) {
  const box = el('div', { class: 'pairs' });
  for (const row of rows) {
    const ci = row.ci || {};
    const ends = ['teacher', 'student'].flatMap((w) => [row[w], ...(isInterval(ci[w]) ? ci[w] : [])]);
    const max = Math.max(...ends.filter(isNum).map(Math.abs), 0) || 1;
    const room = isInterval(ci.teacher) || isInterval(ci.student) ? 60 : 80;  // % of the row; the rest: the label
    const scale = (v) => (Math.abs(v || 0) / max) * room;
    const bar = (who) => {
      const interval = isInterval(ci[who]) ? ci[who] : null;
      const text = fmtWithCi(row[who], interval, row.unit);
      const whisker = interval && el('span', { class: 'whisker', title: `${who}: 95% interval ${ciText(interval, row.unit)}`,
        style: `left:${scale(interval[0])}%;width:${Math.max(0, scale(interval[1]) - scale(interval[0]))}%` });
      const past = interval ? Math.max(0, scale(interval[1]) - scale(row[who])) : 0;  // the label starts after the whisker
      return el('div', { class: 'bar-row' },
        el('div', { class: 'bar-track' },
          el('div', { class: `bar ${who}`, style: `width:${scale(row[who])}%`, title: `${who}: ${text}` }),
          whisker,
          el('span', { style: past ? `margin-left:${past}%` : null, text })));
    };
    box.append(el('div', { class: 'name', text: metricName(row) }), el('div', { class: 'bars' }, bar('teacher'), bar('student')));
  }
  return box;
}

/** Student against teacher: the paired difference with its interval and noise marking where the report has one
 * (effectiveness), the change in points or the ratio otherwise. */
function change(row) {
  if (row.difference || row.differenceReason) return differenceNode(row.difference, row.differenceReason);
  const { teacher: t, student: s, unit } = row;
  if (!isNum(t) || !isNum(s)) return '—';
  if (unit === 'fraction') {
    const points = (s - t) * 100;
    return `${points >= 0 ? '+' : ''}${points.toFixed(1)} pts`;
  }
  if (t === 0) return s === 0 ? 'same' : '—';
  return `${(s / t).toFixed(2)}×`;
}

function comparisonTable(rows) {
  return el('table', { class: 'compare' },
    el('thead', {}, el('tr', {}, el('th', { text: 'metric' }), el('th', { class: 'num', text: 'teacher' }),
      el('th', { class: 'num', text: 'student' }), el('th', { class: 'num', text: 'student vs teacher' }))),
    el('tbody', {}, rows.map((r) => el('tr', { 'data-metric': r.metric },
      el('td', { text: metricName(r), title: `${r.metric} (${r.unit})` }),
      el('td', { class: 'num', text: fmtWithCi(r.teacher, (r.ci || {}).teacher, r.unit) }),
      el('td', { class: 'num', text: fmtWithCi(r.student, (r.ci || {}).student, r.unit) }),
      el('td', { class: 'num' }, change(r))))));
}

/** A table of text (or node) cells; headers are [text, numeric?]. */
function simpleTable(headers, rows) {
  return el('table', {},
    el('thead', {}, el('tr', {}, headers.map(([text, num]) => el('th', { class: num ? 'num' : null, text })))),
    el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((c, i) =>
      el('td', { class: headers[i][1] ? 'num' : null }, c))))));
}

function renderSparsity(report) {
  const pa = report.pruning_analysis || {};
  const kd = report.knowledge_distillation_analysis || {};
  const steps = pa.steps || [];
  const points = [];
  if (isNum(kd.val_accuracy_after_kd)) points.push([0, kd.val_accuracy_after_kd * 100]);
  for (const s of steps) if (isNum(s.achieved_sparsity) && isNum(s.val_accuracy)) points.push([s.achieved_sparsity * 100, s.val_accuracy * 100]);
  lineChart($('sparsity-chart'), [{ name: 'validation accuracy', color: SERIES_COLORS.validation, points }],
    { xLabel: 'sparsity (%)', yLabel: 'accuracy (%)', xMin: 0, yMin: 0, yMax: 100, markers: true,
      empty: 'No pruning steps were recorded.' });
  $('steps-table').replaceChildren(simpleTable(
    [['step'], ['target', 1], ['achieved', 1], ['val. accuracy', 1], ['nonzero params', 1], ['size (MB)', 1]],
    steps.map((s) => [s.step, pct(s.target_sparsity), pct(s.achieved_sparsity), pct(s.val_accuracy),
      fmtNumber(s.nonzero_parameters), fmtNumber(s.model_size_mb, 2)])));
}

function renderLayers(report) {
  const layers = Object.entries((report.pruning_analysis || {}).per_layer_sparsity || {});
  const box = $('layer-chart');
  if (!layers.length) { box.replaceChildren(el('p', { class: 'hint', text: 'No per-layer figures in this report.' })); return; }
  box.replaceChildren(...layers.map(([name, value]) => el('div', { class: 'row', title: `${name}: ${pct(value)}` },
    el('span', { class: 'name mono', text: name }),
    el('div', { class: 'track' }, el('div', { class: 'fill', style: `width:${isNum(value) ? value * 100 : 0}%` })),
    el('span', { class: 'num', text: pct(value) }))));
}

function renderHistory(report) {
  const history = (report.knowledge_distillation_analysis || {}).loss_history || {};
  let x = 0;
  const series = [];
  for (const phase of ['teacher', 'distill', 'finetune']) {
    const losses = (history[phase] || {}).loss;
    if (!Array.isArray(losses) || !losses.length) continue;
    const points = losses.map((v) => [++x, v]).filter((p) => isNum(p[1]));
    series.push({ name: phase, color: SERIES_COLORS[phase], points });
  }
  lineChart($('history-chart'), series, { xLabel: 'logged step', yLabel: 'loss', empty: 'No loss history in this report.' });
}

function renderStages(report) {
  const stages = (report.learning_outcomes || {}).accuracy_by_stage || [];
  const labels = Object.fromEntries(stages.map((s) => [s.stage, s.label || s.stage]));
  // Each stage against the one before, paired on the test split (test_difference_from_previous).
  const fromPrevious = (s) => {
    const diff = s.test_difference_from_previous;
    if (!diff) return '—';
    const node = differenceNode(diff, diff.points_reason);
    node.title = `against ${labels[diff.previous] || diff.previous}; ${node.title || ''}`;
    return node;
  };
  $('stages-table').replaceChildren(simpleTable(
    [['stage'], ['validation', 1], ['test', 1], ['test: change from the previous stage (paired)', 1]],
    stages.map((s) => [s.label || s.stage, pct(s.val_accuracy), pct(s.test_accuracy), fromPrevious(s)])));
  [...$('stages-table').querySelectorAll('tbody tr')].forEach((tr, i) => { tr.dataset.stage = stages[i].stage; });
  const kd = report.knowledge_distillation_analysis || {};
  const rows = [
    ['temperature T', fmtNumber(kd.temperature)], ['alpha', fmtNumber(kd.alpha)],
    ['validation accuracy before KD', pct(kd.val_accuracy_before_kd)], ['after KD', pct(kd.val_accuracy_after_kd)],
    ['teacher-student agreement (test)', isNum(kd.teacher_student_agreement_pct) ? `${kd.teacher_student_agreement_pct.toFixed(1)}%` : '—'],
    ['mean KL(teacher || student)', fmtNumber(kd.mean_kl, 4)],
  ];
  $('kd-table').replaceChildren(simpleTable([['figure'], ['value', 1]], rows));
}

// ---- control arms (knowledge_distillation_analysis.controls) and the job's plots ----------------------------
/** The control arms beside teacher and student (accuracy and macro-F1 with intervals, wall time, the paired
 * difference from the student), distillation's gain over ce_only and the initial weights' over scratch, and the
 * controls plot; one line with the reason when the job ran without arms. */
function renderControls(jobId, report) {
  const kd = report.knowledge_distillation_analysis || {};
  const controls = kd.controls;
  const box = $('controls-panel');
  box.dataset.controls = controls ? 'present' : 'absent';
  if (!controls) {
    box.replaceChildren(el('p', { id: 'controls-reason', class: 'hint' },
      el('strong', { text: 'Control arms: ' }), kd.controls_reason || 'none in this report.'));
    return;
  }
  const perf = report.student_model_performance || {};
  const eff = (report.teacher_vs_student_comparison || {}).effectiveness || {};
  const timings = (report.metadata || {}).timings_s || {};
  const studentTimes = Object.values(controls.student_training_s || {}).filter(isNum);
  const ci = (metric, who) => ((eff[metric] || {}).ci || {})[who];
  const rows = [
    { name: 'teacher', accuracy: (eff.accuracy || {}).teacher, accuracyCi: ci('accuracy', 'teacher'),
      f1: (eff.f1_macro || {}).teacher, f1Ci: ci('f1_macro', 'teacher'), wall: timings.teacher,
      title: 'the teacher; wall time: its training', diff: (eff.accuracy || {}).difference },
    { name: 'student (distilled)', accuracy: perf.accuracy, accuracyCi: perf.accuracy_ci, f1: perf.f1_macro,
      f1Ci: perf.f1_macro_ci, wall: studentTimes.length ? studentTimes.reduce((a, b) => a + b, 0) : null,
      title: 'the distilled, pruned student; wall time: distillation and pruning' },
    ...Object.entries(controls.arms || {}).map(([arm, a]) => ({ name: arm, arm, accuracy: a.accuracy,
      accuracyCi: a.accuracy_ci, f1: a.f1_macro, f1Ci: a.f1_macro_ci, wall: a.wall_time_s, title: a.description,
      diff: (a.student_minus_arm || {}).accuracy })),
  ];
  const table = el('table', { id: 'controls-table' },
    el('thead', {}, el('tr', {}, el('th', { text: 'model' }), el('th', { class: 'num', text: 'accuracy [95% interval]' }),
      el('th', { class: 'num', text: 'macro-F1 [95% interval]' }), el('th', { class: 'num', text: 'training wall time' }),
      el('th', { class: 'num', text: 'student − this, accuracy (paired)' }))),
    el('tbody', {}, rows.map((r) => el('tr', { 'data-arm': r.arm || r.name.split(' ')[0], title: r.title },
      el('td', { text: r.name }),
      el('td', { class: 'num', text: fmtWithCi(r.accuracy, r.accuracyCi) }),
      el('td', { class: 'num', text: fmtWithCi(r.f1, r.f1Ci) }),
      el('td', { class: 'num', text: fmtDuration(r.wall) || '—' }),
      el('td', { class: 'num' }, r.diff ? differenceNode(r.diff) : '—')))));
  const gain = (id, label, key) => el('li', { id },
    el('strong', { text: `${label}: ` }), differenceNode(controls[key], controls[`${key}_reason`]));
  box.replaceChildren(
    el('h3', { text: 'Control arms' }),
    el('p', { class: 'hint', text: 'The same student trained without the teacher, measured like it on the same test split.' }),
    el('div', { class: 'table-wrap' }, table),
    el('ul', { class: 'gains' },
      gain('kd-gain', "Distillation's gain (student − ce_only)", 'kd_gain_points'),
      gain('init-gain', "The teacher's initial weights' gain (ce_only − scratch)", 'init_gain_points')),
    controls.note ? el('p', { class: 'hint note', text: controls.note }) : null,
    plotKinds().includes('controls') ? el('img', { id: 'controls-plot', class: 'plot', alt: 'control arms plot' }) : null);
  if ($('controls-plot')) showPlot($('controls-plot'), jobId, 'controls');
}

/** The latency target: what was asked, each candidate timed, the ratio chosen and what the trained student achieved. */
function renderLatencyTarget(report) {
  const lt = report.latency_target || {};
  const box = $('latency-target-panel');
  box.dataset.target = lt.asked ? 'present' : 'absent';
  if (!lt.asked) {
    box.replaceChildren(el('p', { class: 'hint' },
      el('strong', { text: 'Latency target: ' }), lt.asked_reason || 'none in this report.'));
    return;
  }
  const asked = lt.asked;
  const what = isNum(asked.target_latency_ms) ? `at most ${fmtUnit(asked.target_latency_ms, 'ms')}`
    : `at least ${fmtNumber(asked.target_speedup)}x faster than the teacher`;
  const speed = (v, ci) => (isNum(v) ? `${fmtNumber(v, 2)}x ${ciText(ci, 'x')}` : '—');
  const row = (r) => el('tr', { class: r.amount === lt.chosen ? 'chosen' : '' },
    el('td', { class: 'num', text: fmtNumber(r.amount, 3) }),
    el('td', { class: 'num', text: fmtUnit(r.flops_per_sample, 'FLOPs') }),
    el('td', { class: 'num', text: fmtUnit(r.parameters, 'count') }),
    el('td', { class: 'num', text: `${fmtUnit(r.latency_ms, 'ms')} ${ciText(r.latency_ms_ci, 'ms')}` }),
    el('td', { class: 'num', text: speed(r.speedup, r.speedup_ci) }),
    el('td', { text: r.meets_target ? 'yes' : 'no' }));
  const a = lt.achieved || {};
  box.replaceChildren(
    el('h3', { text: 'Latency target' }),
    el('p', { text: `Asked: ${what} in ${asked.runtime}, batch size ${asked.batch_size}. Chosen ${lt.amount}: ` +
      `${fmtNumber(lt.chosen, 3)}. Trained student: ${fmtUnit(a.latency_ms, 'ms')}, ${speed(a.speedup, a.speedup_ci)}` +
      ` — ${lt.met ? 'met' : 'not met'}.` }),
    el('div', { class: 'table-wrap' }, el('table', { id: 'latency-target-table' },
      el('thead', {}, el('tr', {}, ...[lt.amount, 'FLOPs / sample', 'parameters', 'median latency [95%]',
        'speedup [95%]', 'meets'].map((h) => el('th', { text: h })))),
      el('tbody', {}, (lt.candidates || []).map(row)))),
    lt.note ? el('p', { class: 'hint note', text: lt.note }) : null);
}

/** The plot kinds a job draws: GET /models concepts.plot_kinds. */
const plotKinds = () => (state.concepts && state.concepts.plot_kinds) || [];

/** The plot picker (one option per kind of concepts.plot_kinds) and the chosen plot of this job. */
function renderPlots(jobId) {
  const select = $('plot-kind');
  const keep = select.value;
  select.replaceChildren(...plotKinds().map((kind) => el('option', { value: kind, text: prettyName(kind) })));
  if (plotKinds().includes(keep)) select.value = keep;
  $('plots').hidden = !plotKinds().length;
  if (select.value) showPlot($('plot-image'), jobId, select.value);
}

/** A job's PNG plot (POST /visualize {job_id, kind}; drawn by the job) into an <img>, fetched with the token. */
async function showPlot(img, jobId, kind) {
  img.dataset.kind = kind;
  img.dataset.loaded = 'false';
  img.alt = `${prettyName(kind)} plot of ${jobId}`;
  let res;
  try {
    res = await authedFetch(`${API}/visualize`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ job_id: jobId, kind }) });
  } catch (err) {
    img.alt = `The ${kind} plot could not be loaded: the backend is unreachable.`;
    return;
  }
  if (!res.ok) {
    const body = await res.json().catch(() => null);
    img.alt = `The ${kind} plot could not be loaded: ${(body && body.error && body.error.message) || res.status}`;
    return;
  }
  const blob = await res.blob();
  if (state.watched !== jobId || img.dataset.kind !== kind) return;  // another job or kind was asked for meanwhile
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  img.dataset.url = URL.createObjectURL(blob);
  img.onload = () => { img.dataset.loaded = 'true'; };
  img.src = img.dataset.url;
}

// ---- charts ---------------------------------------------------------------------------------------------
function niceTicks(min, max, count = 5) {
  if (min === max) { min -= 1; max += 1; }
  const raw = (max - min) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

function tickLabel(v) { return Math.abs(v) >= 1000 ? fmtSI(v) : +v.toPrecision(4) + ''; }

/** An SVG line chart of [x, y] series with axes, grid and a legend. */
function lineChart(container, series, opts = {}) {
  const W = Math.max(320, Math.min(900, container.clientWidth || 560)), H = 220, L = 48, R = 12, T = 10, B = 34;
  const all = series.flatMap((s) => s.points).filter((p) => isNum(p[0]) && isNum(p[1]));
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': opts.yLabel || 'chart' });
  if (!all.length) {
    root.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty', text: opts.empty || 'No data yet.' }));
    container.replaceChildren(root);
    return;
  }
  let xMin = opts.xMin ?? Math.min(...all.map((p) => p[0])), xMax = Math.max(...all.map((p) => p[0]));
  let yMin = opts.yMin ?? Math.min(...all.map((p) => p[1])), yMax = opts.yMax ?? Math.max(...all.map((p) => p[1]));
  if (xMin === xMax) { xMax = xMin + 1; }
  if (yMin === yMax) { yMin -= Math.abs(yMin) * 0.1 || 1; yMax += Math.abs(yMax) * 0.1 || 1; }
  const xTicks = niceTicks(xMin, xMax), yTicks = niceTicks(yMin, yMax);
  xMin = Math.min(xMin, xTicks[0]); xMax = Math.max(xMax, xTicks[xTicks.length - 1]);
  yMin = Math.min(yMin, yTicks[0]); yMax = Math.max(yMax, yTicks[yTicks.length - 1]);
  const sx = (x) => L + ((x - xMin) / (xMax - xMin)) * (W - L - R);
  const sy = (y) => H - B - ((y - yMin) / (yMax - yMin)) * (H - T - B);
  const grid = svg('g', { class: 'grid' }, yTicks.map((v) => svg('line', { x1: L, x2: W - R, y1: sy(v), y2: sy(v) })));
  const axes = svg('g', { class: 'axis' },
    svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B }), svg('line', { x1: L, x2: L, y1: T, y2: H - B }),
    yTicks.map((v) => svg('text', { x: L - 5, y: sy(v) + 4, 'text-anchor': 'end', text: tickLabel(v) })),
    xTicks.map((v) => svg('text', { x: sx(v), y: H - B + 14, 'text-anchor': 'middle', text: tickLabel(v) })),
    svg('text', { x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle', text: opts.xLabel || '' }),
    svg('text', { x: 12, y: (T + H - B) / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${(T + H - B) / 2})`, text: opts.yLabel || '' }));
  root.append(grid, axes);
  for (const s of series) {
    const pts = s.points.filter((p) => isNum(p[0]) && isNum(p[1]));
    if (!pts.length) continue;
    const g = svg('g', { 'data-series': s.name });
    g.append(svg('polyline', { points: pts.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(' '),
      fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-linejoin': 'round' }));
    if (opts.markers || pts.length < 12) {
      for (const p of pts) {
        g.append(svg('circle', { cx: sx(p[0]), cy: sy(p[1]), r: 3, fill: s.color },
          svg('title', { text: `${s.name}: ${tickLabel(p[0])}, ${+p[1].toPrecision(4)}` })));
      }
    }
    root.append(g);
  }
  const legend = el('div', { class: 'chart-legend' }, series.map((s) =>
    el('span', {}, el('i', { style: `background:${s.color}` }), s.name)));
  container.replaceChildren(root, legend);
}

// ---- past jobs -------------------------------------------------------------------------------------------
// A listener receives every job's training_status: however many jobs run, the list is fetched at most once
// per JOBS_REFRESH_MIN_MS for them (the first soon after a quiet spell, the others batched behind it).
const JOBS_REFRESH_MIN_MS = 1000;
let jobsRefreshTimer = null;
let lastJobsRefresh = 0;
function scheduleJobsRefresh() {
  if (jobsRefreshTimer) return;
  const wait = Math.max(250, JOBS_REFRESH_MIN_MS - (Date.now() - lastJobsRefresh));
  jobsRefreshTimer = setTimeout(() => { jobsRefreshTimer = null; refreshJobs(); }, wait);
}

async function refreshJobs() {
  lastJobsRefresh = Date.now();
  let body;
  try {
    body = await api('/jobs?limit=50');
  } catch (err) {
    if (err.status === 0) setLive('offline', 'backend unreachable');
    return;
  }
  if (state.live === 'offline') setLive(state.socket && state.socket.connected ? 'socket' : 'polling',
    state.socket && state.socket.connected ? 'live (Socket.IO)' : 'polling');
  if (!state.concepts) {  // the backend was down when the page loaded: fill the form and go live now
    loadModels().then(() => { clearMessage(); afterModels(); return loadUploads(); }).catch(() => {});
  } else if (state.retrySocketClient) {
    state.retrySocketClient = false;
    loadSocketClient();
  }
  const jobs = body.jobs || [];
  $('jobs-empty').hidden = jobs.length > 0;
  $('jobs').replaceChildren(...jobs.map(jobRow));
  markWatchedRow();
}

function jobRow(job) {
  const s = job.summary || {};
  const progress = job.state === 'running' && job.progress && isNum(job.progress.overall_percent)
    ? `${phaseLabel(job.phase)} · ${job.progress.overall_percent.toFixed(0)}%`
    : (job.state === 'succeeded' ? `done in ${fmtDuration(job.duration_s)}` : (job.state === 'queued' ? 'waiting' : ''));
  const open = el('button', { type: 'button', class: 'secondary small', text: job.state === 'succeeded' ? 'Open results' : 'Open',
    onclick: () => { clearMessage(); watchJob(job.id); window.scrollTo({ top: 0, behavior: 'smooth' }); } });
  return el('tr', { 'data-job-id': job.id, 'data-state': job.state },
    el('td', { text: localTime(job.created_at) }),
    el('td', { class: 'mono', text: job.id }),
    el('td', { text: job.model_name }),
    el('td', { text: job.dataset || '' }),
    el('td', {}, el('span', { class: 'badge', 'data-state': job.state, text: job.state })),
    job.error ? el('td', { class: 'error', text: job.error }) : el('td', { text: progress }),
    el('td', { class: 'num', text: pct(s.teacher_accuracy) }),
    el('td', { class: 'num', text: pct(s.student_accuracy) }),
    el('td', { class: 'num', text: isNum(s.compression_ratio) ? `${s.compression_ratio.toFixed(2)}×` : '—' }),
    el('td', {}, open));
}

function markWatchedRow() {
  for (const row of $('jobs').children) row.dataset.watched = String(row.dataset.jobId === state.watched);
}

// ---- start --------------------------------------------------------------------------------------------
function wire() {
  $('backend-url').value = API;
  $('backend-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const next = new URL(location.href);
    next.searchParams.set('api', $('backend-url').value.trim());
    location.href = next.href;
  });
  $('openapi-link').href = `${API}/openapi.json`;
  $('health-link').href = `${API}/test`;
  $('message-close').addEventListener('click', clearMessage);
  for (const id of ['download', 'report-link', 'matlab-link', 'openapi-link', 'health-link']) {
    $(id).addEventListener('click', openWithToken);
  }
  $('model').addEventListener('change', onModelChange);
  $('job-form').addEventListener('submit', startJob);
  $('cancel').addEventListener('click', cancelJob);
  $('jobs-refresh').addEventListener('click', refreshJobs);
  $('plot-kind').addEventListener('change', () => {
    if (state.watched && $('results').dataset.jobId === state.watched) showPlot($('plot-image'), state.watched, $('plot-kind').value);
  });
  $('dataset-file').addEventListener('change', () => uploadFile($('dataset-file'), 'dataset-upload-status', (meta) => {
    const model = currentModel();
    if (model && !(model.upload_kinds || []).includes(meta.kind)) {
      showMessage(`${meta.filename} is a ${meta.kind} upload, which ${model.display_name} cannot use ` +
        `(it takes ${(model.upload_kinds || []).join(' or ')}).`);
    }
    fillDatasets(meta.upload_id);
  }));
  $('teacher-file').addEventListener('change', () => uploadFile($('teacher-file'), 'teacher-upload-status', (meta) => fillTeachers(meta.upload_id)));
}

/** A link to the API, followed with the token: fetched here and handed over as a blob. */
export async function openWithToken(event) {
  const link = event.currentTarget;
  if (!state.token) return;  // no token: a plain link works
  event.preventDefault();
  const res = await authedFetch(link.href);
  if (!res.ok) { showMessage(`${link.textContent.trim()}: the backend answered ${res.status}.`); return; }
  const url = URL.createObjectURL(await res.blob());
  const a = el('a', { href: url, target: '_blank', rel: 'noopener' });
  if (link.hasAttribute('download')) {
    const name = /filename="?([^";]+)"?/.exec(res.headers.get('Content-Disposition') || '');
    a.download = name ? name[1] : 'download';
  }
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** What needs GET /models first (job states, phases and the form): the live connection and ?job=. */
function afterModels() {
  loadSocketClient();
  const jobParam = params.get('job');
  if (jobParam && !state.watched) watchJob(jobParam);
}

async function init() {
  wire();
  if (ignoredApi) showMessage(`?api=${ignoredApi} was ignored: the page only talks to its own origin, a loopback ` +
    'address or an origin the server allows (--cors-origins). It uses ' + API + ' instead.');
  drawLoss();
  try {
    await loadModels();
  } catch (err) {
    showMessage(`The list of models could not be loaded: ${explain(err)}`);
    if (err.status === 0) setLive('offline', 'backend unreachable');
  }
  if (state.concepts) afterModels();
  await loadUploads();
  await refreshJobs();
  state.jobsTimer = setInterval(refreshJobs, 5000);
  document.body.dataset.ready = 'true';
}

window.addEventListener('unhandledrejection', (e) => showMessage(explain(e.reason)));
init();
