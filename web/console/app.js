// The hotline's console. It calls this node's /v1 API with the bearer token the analyst typed,
// which lives in the variable `token` only: no cookies, no storage, nothing sent to any other
// host (see the page's Content-Security-Policy). Each panel loads on its own and, when the node
// refuses it (a token without that scope, say), shows the node's own reason in its alert.
// Images searched for are hashed here by the same WebAssembly hasher as the report page.
import { loadHasher } from './hashing.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const PDQ_RE = /^[0-9a-f]{64}$/;

let token = '';
let hasher = null;
let generation = 0; // bumped by each connect; answers to an older connect are dropped
let loadedCount = 0;
let evidenceNext = null;

// ---------------------------------------------------------------- small helpers

function say(id, text) { $(id).textContent = text; }

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.dataset[camel(k.slice(5))] = String(v);
    else node.setAttribute(k, String(v));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Shows or hides the boxes around a panel's chart or table (hidden while it has nothing). */
function shown(ids, on) {
  for (const id of ids) {
    const box = $(id).closest('.chart-wrap, .scroll') || $(id);
    box.hidden = !on;
  }
}

function camel(s) { return s.replace(/-([a-z])/g, (_, c) => c.toUpperCase()); }

function cell(text, cls) {
  const td = el('td', cls ? { class: cls } : {}, text);
  return td;
}

function when(ms) {
  if (!ms) return 'never';
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) return String(ms);
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - Number(ms)) / 1000));
  if (s < 120) return `${s}s ago`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.round(h / 24)} days ago`;
}

function labelsOf(text) {
  return text.split(',').map((l) => l.trim()).filter((l) => l !== '');
}

/** A refusal from the node, or a failure to reach it, as one sentence for a person. */
class Refusal extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code || '';
    this.status = status || 0;
  }
}

async function api(method, path, body) {
  if (!token) throw new Refusal('Connect with an access token first.', 'unauthenticated', 0);
  const init = {
    method,
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
    credentials: 'omit',
    cache: 'no-store',
    referrerPolicy: 'no-referrer',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new Refusal(`The node could not be reached (${e.message}).`, 'unavailable', 0);
  }
  const text = await resp.text();
  let answer = null;
  try { answer = text ? JSON.parse(text) : {}; } catch { answer = null; }
  if (!resp.ok) {
    const message = answer && typeof answer.message === 'string' && answer.message
      ? answer.message
      : `the node answered HTTP ${resp.status}${resp.statusText ? ` ${resp.statusText}` : ''}`;
    throw new Refusal(message, answer && answer.code, resp.status);
  }
  if (answer === null) throw new Refusal('The node sent an answer that is not JSON.', 'internal', resp.status);
  return answer;
}

/** The text shown in a panel's alert for a refusal. */
function refusalText(what, e) {
  const why = e && e.message ? e.message : String(e);
  const code = e && e.code ? ` (${e.code}${e.status ? `, HTTP ${e.status}` : ''})` : '';
  return `${what}: ${why}${code}`;
}

// ---------------------------------------------------------------- status: origins and federation

function clearOrigins() {
  $('origins-table').querySelector('tbody').replaceChildren();
  say('origins-summary', '');
  shown(['origins-table'], false);
}

function renderOrigins(status) {
  const body = $('origins-table').querySelector('tbody');
  body.replaceChildren();
  shown(['origins-table'], true);
  for (const o of status.origins || []) {
    const row = el('tr', {
      'data-origin': o.origin, 'data-size': o.tree_size, 'data-active': o.active_entries,
    });
    const name = el('th', { scope: 'row' }, o.origin);
    if (o.origin === status.origin) name.append(el('span', { class: 'tag' }, ' (this node’s own list)'));
    row.append(name, cell(o.policy || '—'), cell(String(o.tree_size), 'num'),
      cell(String(o.active_entries), 'num'), cell(o.frozen ? 'yes, frozen' : 'no'));
    body.append(row);
  }
  const n = (status.origins || []).length;
  say('origins-summary', `Node ${status.origin}, version ${status.version || 'unknown'}: `
    + `${n} list${n === 1 ? '' : 's'}, ${status.evidence_count ?? 0} evidence record(s).`);
}

function peerState(p) {
  if (p.last_error) return 'error';
  if (!p.last_sync_ms) return 'never';
  return 'ok';
}

function peerText(p, state) {
  if (state === 'error') return `error: ${p.last_error}`;
  if (state === 'never') return 'never synced';
  return `synced ${ago(p.last_sync_ms)}`;
}

const PEER_STYLE = {
  ok: { stroke: '#1a7f37', dash: '' },
  error: { stroke: '#b3261e', dash: '8 5' },
  never: { stroke: '#5f6068', dash: '2 5' },
};

function clearFederation() {
  const pic = $('federation-picture');
  pic.querySelector('.nodes').replaceChildren();
  $('federation-list').replaceChildren();
  shown(['federation-picture'], false);
}

function shorten(text, n) { return text.length > n ? `${text.slice(0, n - 1)}…` : text; }

function renderFederation(status) {
  clearFederation();
  shown(['federation-picture'], true);
  const pic = $('federation-picture');
  const nodes = pic.querySelector('.nodes');
  const cx = 450; const cy = 210; const rx = 210; const ry = 150;
  const peers = status.peers || [];
  peers.forEach((p, i) => {
    const state = peerState(p);
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(peers.length, 1);
    const x = cx + rx * Math.cos(angle);
    const y = cy + ry * Math.sin(angle);
    const style = PEER_STYLE[state];
    const g = svg('g', { class: 'peer' });
    g.dataset.url = p.url;
    g.dataset.state = state;
    const line = svg('line', {
      x1: cx, y1: cy, x2: x.toFixed(1), y2: y.toFixed(1), stroke: style.stroke, 'stroke-width': 3,
    });
    if (style.dash) line.setAttribute('stroke-dasharray', style.dash);
    g.append(line);
    g.append(svg('circle', {
      cx: x.toFixed(1), cy: y.toFixed(1), r: 10, fill: '#fff', stroke: style.stroke, 'stroke-width': 3,
    }));
    const right = Math.cos(angle) > 0.2;
    const left = Math.cos(angle) < -0.2;
    const anchor = right ? 'start' : left ? 'end' : 'middle';
    const tx = x + (right ? 16 : left ? -16 : 0);
    const ty = y + (Math.sin(angle) < -0.5 ? -30 : Math.sin(angle) > 0.5 ? 28 : -4);
    g.append(svg('text', { x: tx.toFixed(1), y: ty.toFixed(1), 'text-anchor': anchor, class: 'peer-url' },
      shorten(p.url, 34)));
    g.append(svg('text', {
      x: tx.toFixed(1), y: (ty + 16).toFixed(1), 'text-anchor': anchor, fill: style.stroke, class: 'peer-state',
    }, shorten(peerText(p, state), 34)));
    nodes.append(g);

    const item = el('li', { 'data-url': p.url, 'data-state': state });
    item.append(el('strong', {}, p.url), document.createTextNode(`: ${peerText(p, state)}`));
    if (state !== 'never' && p.last_sync_ms) {
      item.append(document.createTextNode(` (last sync ${when(p.last_sync_ms)})`));
    }
    $('federation-list').append(item);
  });
  const centre = svg('g', { class: 'self' });
  centre.append(svg('circle', { cx, cy, r: 40, fill: '#0b5cad' }));
  centre.append(svg('text', { x: cx, y: cy + 5, 'text-anchor': 'middle', fill: '#fff', class: 'self-label' }, 'this node'));
  centre.append(svg('text', { x: cx, y: cy + 58, 'text-anchor': 'middle', class: 'peer-url' },
    shorten(status.origin || '', 40)));
  nodes.append(centre);
  if (peers.length === 0) {
    $('federation-list').append(el('li', {}, 'This node has no peers: it copies no lists from elsewhere.'));
  }
}

async function loadStatusPanels(gen) {
  say('origins-error', '');
  say('federation-error', '');
  try {
    const status = await api('GET', '/v1/status');
    if (gen !== generation) return;
    renderOrigins(status);
    renderFederation(status);
  } catch (e) {
    if (gen !== generation) return;
    clearOrigins();
    clearFederation();
    say('origins-error', refusalText('The lists could not be shown', e));
    say('federation-error', refusalText('The federation could not be shown', e));
  }
}

// ---------------------------------------------------------------- growth chart

const PALETTE = ['#0b5cad', '#b3261e', '#1a7f37', '#8a4baf', '#a15c00', '#00727a', '#5f6068', '#c2185b'];
const CHART = { w: 720, h: 340, left: 64, right: 16, top: 16, bottom: 56 };

function clearGrowth() {
  const chart = $('growth-chart');
  chart.querySelector('.axes').replaceChildren();
  chart.querySelector('.lines').replaceChildren();
  $('growth-legend').replaceChildren();
  $('growth-table').querySelector('tbody').replaceChildren();
  shown(['growth-chart', 'growth-table'], false);
}

function niceMax(n) {
  if (n <= 5) return Math.max(n, 1);
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 1.5, 2, 2.5, 4, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

function renderGrowth(series) {
  clearGrowth();
  shown(['growth-chart', 'growth-table'], true);
  const chart = $('growth-chart');
  const axes = chart.querySelector('.axes');
  const lines = chart.querySelector('.lines');
  const pts = series.flatMap((s) => s.points);
  const x0 = CHART.left; const x1 = CHART.w - CHART.right;
  const y0 = CHART.h - CHART.bottom; const y1 = CHART.top;
  let tMin = Math.min(...pts.map((p) => p.created_at_ms));
  let tMax = Math.max(...pts.map((p) => p.created_at_ms));
  if (!pts.length) { tMax = Date.now(); tMin = tMax - 3600e3; }
  if (tMax === tMin) { tMin -= 60e3; tMax += 60e3; }
  const yMax = niceMax(Math.max(1, ...series.map((s) => s.tree_size), ...pts.map((p) => p.index + 1)));
  const sx = (t) => x0 + ((t - tMin) / (tMax - tMin)) * (x1 - x0);
  const sy = (n) => y0 - (n / yMax) * (y0 - y1);

  // Axes, grid and their labels.
  axes.append(svg('line', { x1: x0, y1: y0, x2: x1, y2: y0, stroke: '#1b1b1f' }));
  axes.append(svg('line', { x1: x0, y1: y0, x2: x0, y2: y1, stroke: '#1b1b1f' }));
  const steps = yMax <= 5 ? yMax : [4, 5, 3, 2].find((k) => yMax % k === 0) || 4;
  for (let i = 0; i <= steps; i += 1) {
    const n = (yMax * i) / steps;
    const y = sy(n);
    if (i > 0) axes.append(svg('line', { x1: x0, y1: y, x2: x1, y2: y, stroke: '#d5d8de' }));
    axes.append(svg('text', { x: x0 - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' },
      Number.isInteger(n) ? String(n) : n.toFixed(1)));
  }
  for (let i = 0; i <= 3; i += 1) {
    const t = tMin + ((tMax - tMin) * i) / 3;
    const x = sx(t);
    const d = new Date(t).toISOString();
    axes.append(svg('line', { x1: x, y1: y0, x2: x, y2: y0 + 5, stroke: '#1b1b1f' }));
    const anchor = i === 0 ? 'start' : i === 3 ? 'end' : 'middle';
    axes.append(svg('text', { x, y: y0 + 18, 'text-anchor': anchor, class: 'tick' }, d.slice(0, 10)));
    axes.append(svg('text', { x, y: y0 + 32, 'text-anchor': anchor, class: 'tick' }, `${d.slice(11, 16)} UTC`));
  }
  axes.append(svg('text', { x: (x0 + x1) / 2, y: CHART.h - 6, 'text-anchor': 'middle', class: 'axis-label' },
    'Time an entry was added'));
  axes.append(svg('text', {
    x: 14, y: (y0 + y1) / 2, 'text-anchor': 'middle', class: 'axis-label',
    transform: `rotate(-90 14 ${(y0 + y1) / 2})`,
  }, 'Entries in the list'));

  const body = $('growth-table').querySelector('tbody');
  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    if (s.points.length > 0) {
      const coords = s.points.map((p) => `${sx(p.created_at_ms).toFixed(1)},${sy(p.index + 1).toFixed(1)}`);
      const line = svg('polyline', {
        points: coords.join(' '), fill: 'none', stroke: colour, 'stroke-width': 2.5,
        'stroke-linejoin': 'round',
      });
      line.dataset.origin = s.origin;
      lines.append(line);
      // A marker at the latest point, so a list of one entry is visible too.
      const last = s.points[s.points.length - 1];
      lines.append(svg('circle', {
        cx: sx(last.created_at_ms).toFixed(1), cy: sy(last.index + 1).toFixed(1), r: 4, fill: colour,
      }));
    }
    const item = el('li', { 'data-origin': s.origin });
    const swatch = el('span', { class: `swatch swatch-${i % PALETTE.length}`, 'aria-hidden': 'true' });
    item.append(swatch, document.createTextNode(s.origin));
    $('growth-legend').append(item);

    const first = s.points[0];
    const lastP = s.points[s.points.length - 1];
    const row = el('tr', { 'data-origin': s.origin });
    row.append(el('th', { scope: 'row' }, s.origin), cell(String(s.tree_size), 'num'),
      cell(first ? when(first.created_at_ms) : 'no entries yet'),
      cell(lastP ? when(lastP.created_at_ms) : '—'));
    body.append(row);
  });
  if (series.length === 0) {
    const row = el('tr');
    const td = el('td', { colspan: 4 }, 'This node holds no lists yet.');
    row.append(td);
    body.append(row);
  }
}

async function loadGrowth(gen) {
  say('growth-error', '');
  try {
    const { origins } = await api('GET', '/v1/origins');
    const series = [];
    const problems = [];
    for (const o of origins || []) {
      try {
        const g = await api('GET', `/v1/growth?origin=${encodeURIComponent(o.origin)}`);
        series.push({ origin: o.origin, tree_size: g.tree_size, points: g.points || [] });
      } catch (e) {
        problems.push(`${o.origin}: ${e.message}`);
        series.push({ origin: o.origin, tree_size: o.checkpoint ? o.checkpoint.tree_size : 0, points: [] });
      }
    }
    if (gen !== generation) return;
    renderGrowth(series);
    if (problems.length) say('growth-error', `Some lists' growth could not be shown: ${problems.join('; ')}`);
  } catch (e) {
    if (gen !== generation) return;
    clearGrowth();
    say('growth-error', refusalText('The growth chart could not be shown', e));
  }
}

// ---------------------------------------------------------------- evidence

function addEvidenceRows(records) {
  const body = $('evidence-table').querySelector('tbody');
  for (const r of records) {
    const row = el('tr', { 'data-id': r.id });
    row.append(cell(String(r.id), 'num'), cell(when(r.received_at_ms)), cell(r.origin),
      cell(r.peer), cell(r.reason), cell(r.proven ? 'yes' : 'no'), cell(r.detail));
    body.append(row);
  }
}

function clearEvidence() {
  $('evidence-table').querySelector('tbody').replaceChildren();
  say('evidence-summary', '');
  $('evidence-more').hidden = true;
  evidenceNext = null;
  shown(['evidence-table'], false);
}

function evidenceSummary() {
  const n = $('evidence-table').querySelectorAll('tbody tr').length;
  shown(['evidence-table'], n > 0);
  say('evidence-summary', n === 0
    ? 'No evidence records: no peer or origin has been caught misbehaving.'
    : `${n} record(s) shown${evidenceNext ? '; more exist' : ''}.`);
  $('evidence-more').hidden = !evidenceNext;
}

async function loadEvidence(gen) {
  say('evidence-error', '');
  try {
    const page = await api('GET', '/v1/evidence');
    if (gen !== generation) return;
    clearEvidence();
    addEvidenceRows(page.evidence || []);
    evidenceNext = page.next_page_token || null;
    evidenceSummary();
  } catch (e) {
    if (gen !== generation) return;
    clearEvidence();
    say('evidence-error', refusalText('The evidence could not be shown', e));
  }
}

async function moreEvidence() {
  if (!evidenceNext) return;
  const gen = generation;
  say('evidence-error', '');
  try {
    const page = await api('GET', `/v1/evidence?page_token=${encodeURIComponent(evidenceNext)}`);
    if (gen !== generation) return;
    addEvidenceRows(page.evidence || []);
    evidenceNext = page.next_page_token || null;
    evidenceSummary();
  } catch (e) {
    say('evidence-error', refusalText('More evidence could not be shown', e));
  }
}

// ---------------------------------------------------------------- review queue

function caseBlock(c, n) {
  const id = `case-${n}`;
  const block = el('article', { class: 'case', 'data-case': c.case_id, 'aria-labelledby': `${id}-h` });
  block.append(el('h3', { id: `${id}-h` }, `Case ${c.case_id}`));
  const facts = el('dl');
  facts.append(el('dt', {}, 'Received'), el('dd', {}, when(c.created_ms)),
    el('dt', {}, 'Status'), el('dd', {}, c.status),
    el('dt', {}, 'Fingerprints'), el('dd', {}, String(c.hashes ?? (c.signals || []).length)));
  block.append(facts);
  const hashes = el('table', { class: 'hashes' });
  hashes.append(el('caption', {}, `Fingerprints in case ${c.case_id}`));
  const head = el('tr');
  head.append(el('th', { scope: 'col' }, 'Type'), el('th', { scope: 'col' }, 'Fingerprint'),
    el('th', { scope: 'col', class: 'num' }, 'Quality'));
  const thead = el('thead');
  thead.append(head);
  hashes.append(thead);
  const hb = el('tbody');
  for (const s of c.signals || []) {
    const row = el('tr');
    row.append(cell(s.signal_type), cell(s.value, 'hash'), cell(String(s.quality), 'num'));
    hb.append(row);
  }
  hashes.append(hb);
  block.append(hashes);
  block.append(el('p', { class: 'context-h' }, 'What the reporter wrote:'));
  block.append(el('blockquote', { class: 'context' }, c.context ? c.context : '(nothing)'));

  const labels = el('input', { id: `${id}-labels`, type: 'text', class: 'labels', autocomplete: 'off', spellcheck: 'false' });
  labels.value = 'ncii';
  const basis = el('input', { id: `${id}-basis`, type: 'text', class: 'legal-basis', autocomplete: 'off' });
  const reason = el('input', { id: `${id}-reason`, type: 'text', class: 'reason', autocomplete: 'off' });
  const approve = el('button', { type: 'button', class: 'approve' }, 'Approve');
  const approveYes = el('button', { type: 'button', class: 'approve-yes' }, 'Yes, approve');
  const approveNo = el('button', { type: 'button', class: 'approve-no secondary' }, 'No, cancel');
  const reject = el('button', { type: 'button', class: 'reject secondary' }, 'Reject');
  const rejectYes = el('button', { type: 'button', class: 'reject-yes' }, 'Yes, reject');
  const rejectNo = el('button', { type: 'button', class: 'reject-no secondary' }, 'No, cancel');

  const approveBox = el('div', { class: 'decision' });
  approveBox.append(el('label', { for: labels.id }, 'Labels, separated by commas'), labels,
    el('label', { for: basis.id }, 'Legal basis (empty: this node’s default)'), basis);
  const approveActions = el('div', { class: 'actions' });
  approveActions.append(approve);
  const approveConfirm = el('div', { class: 'confirm' });
  approveConfirm.hidden = true;
  approveConfirm.append(el('p', {}, `Approving adds the fingerprints of case ${c.case_id} to the signed list that every peer copies. Approve it?`),
    approveYes, approveNo);
  approveBox.append(approveActions, approveConfirm);

  const rejectBox = el('div', { class: 'decision' });
  rejectBox.append(el('label', { for: reason.id }, 'Reason for rejecting (required)'), reason);
  const rejectActions = el('div', { class: 'actions' });
  rejectActions.append(reject);
  const rejectConfirm = el('div', { class: 'confirm' });
  rejectConfirm.hidden = true;
  rejectConfirm.append(el('p', {}, `Rejecting closes case ${c.case_id} without adding anything to the list. Reject it?`),
    rejectYes, rejectNo);
  rejectBox.append(rejectActions, rejectConfirm);
  block.append(approveBox, rejectBox);

  approve.addEventListener('click', () => {
    say('review-error', '');
    rejectConfirm.hidden = true;
    approveConfirm.hidden = false;
    approveYes.focus();
  });
  approveNo.addEventListener('click', () => { approveConfirm.hidden = true; approve.focus(); });
  approveYes.addEventListener('click', () => decide(c.case_id, 'approve', {
    case_id: c.case_id, labels: labelsOf(labels.value), legal_basis: basis.value.trim(),
  }, [approveYes, approveNo]));
  reject.addEventListener('click', () => {
    say('review-error', '');
    if (!reason.value.trim()) {
      say('review-error', `Write a reason before rejecting case ${c.case_id}.`);
      reason.focus();
      return;
    }
    approveConfirm.hidden = true;
    rejectConfirm.hidden = false;
    rejectYes.focus();
  });
  rejectNo.addEventListener('click', () => { rejectConfirm.hidden = true; reject.focus(); });
  rejectYes.addEventListener('click', () => decide(c.case_id, 'reject', {
    case_id: c.case_id, reason: reason.value.trim(),
  }, [rejectYes, rejectNo]));
  return block;
}

async function decide(caseId, action, body, buttons) {
  say('review-error', '');
  say('review-status', action === 'approve' ? `Approving case ${caseId}…` : `Rejecting case ${caseId}…`);
  for (const b of buttons) b.disabled = true;
  try {
    const r = await api('POST', `/v1/reports/${action}`, body);
    const indices = r.indices || [];
    say('review-status', action === 'approve'
      ? `Case ${r.case_id} approved: status ${r.status}; `
        + `${indices.length ? `list entries ${indices.join(', ')}` : 'no new entries (already listed)'}.`
      : `Case ${r.case_id} rejected: status ${r.status}.`);
  } catch (e) {
    say('review-status', '');
    say('review-error', refusalText(`Case ${caseId} could not be ${action === 'approve' ? 'approved' : 'rejected'}`, e));
    for (const b of buttons) b.disabled = false;
    return;
  }
  const gen = generation;
  await loadReview(gen, false);
  // The lists grew: refresh them too.
  await Promise.allSettled([loadStatusPanels(gen), loadGrowth(gen)]);
  $('review-h').focus();
}

async function loadReview(gen, clearStatus = true) {
  say('review-error', '');
  if (clearStatus) say('review-status', '');
  try {
    const { cases } = await api('GET', '/v1/reports');
    if (gen !== generation) return;
    const queue = $('review-queue');
    queue.replaceChildren(...(cases || []).map((c, i) => caseBlock(c, i)));
    $('review-empty').hidden = (cases || []).length !== 0;
  } catch (e) {
    if (gen !== generation) return;
    $('review-queue').replaceChildren();
    $('review-empty').hidden = true;
    say('review-error', refusalText('The review queue could not be shown', e));
  }
}

// ---------------------------------------------------------------- search

async function search(pdq) {
  say('search-error', '');
  say('search-status', '');
  $('search-results').replaceChildren();
  if (!PDQ_RE.test(pdq)) {
    say('search-error', 'A PDQ hash is 64 characters, each 0-9 or a-f.');
    return;
  }
  say('search-status', 'Searching…');
  try {
    const r = await api('POST', '/v1/match', { signals: [{ signal_type: 'pdq', value: pdq }] });
    const list = $('search-results');
    let n = 0;
    let truncated = false;
    for (const res of r.results || []) {
      truncated ||= Boolean(res.truncated);
      for (const m of res.matches || []) {
        n += 1;
        const item = el('li', { 'data-origin': m.origin, 'data-index': m.index });
        item.append(el('strong', {}, `${m.origin}, entry ${m.index}`),
          document.createTextNode(`: distance ${m.distance}`
            + `${m.labels && m.labels.length ? `, labels ${m.labels.join(', ')}` : ''}`
            + `${m.legal_basis ? `, legal basis “${m.legal_basis}”` : ''}`
            + `${m.quality !== undefined ? `, quality ${m.quality}` : ''}`
            + `${m.checkpoint ? ` (list of ${m.checkpoint.size} entries)` : ''}.`));
        list.append(item);
      }
    }
    if (n === 0) list.append(el('li', { class: 'none' }, 'No match in any list.'));
    say('search-status', n === 0 ? 'Search done: no match.'
      : `Search done: ${n} match${n === 1 ? '' : 'es'}${truncated ? ' (more exist than shown)' : ''}.`);
  } catch (e) {
    say('search-status', '');
    say('search-error', refusalText('The search failed', e));
  }
}

async function onSearchImage(event) {
  say('search-error', '');
  say('search-computed', '');
  const file = (event.target.files || [])[0];
  if (!file) return;
  if (!hasher) {
    say('search-error', 'The image fingerprint tool is not ready yet.');
    return;
  }
  let h;
  try {
    h = hasher.hash(new Uint8Array(await file.arrayBuffer()));
  } catch (e) {
    say('search-error', `${file.name} could not be fingerprinted: ${e.message}`);
    return;
  } finally {
    event.target.value = ''; // the image is not held by the page longer than needed
  }
  $('search-computed').dataset.quality = String(h.quality);
  say('search-computed', h.pdq);
  $('search-hash').value = h.pdq;
  await search(h.pdq);
}

// ---------------------------------------------------------------- submit and retract

function submitBody() {
  const pdq = $('submit-pdq').value.trim().toLowerCase();
  if (!PDQ_RE.test(pdq)) throw new Error('A PDQ hash is 64 characters, each 0-9 or a-f.');
  const q = $('submit-quality').value.trim();
  const quality = q === '' ? 100 : Number(q);
  if (!Number.isInteger(quality) || quality < 0 || quality > 100) throw new Error('Quality is a whole number from 0 to 100.');
  const body = { signals: [{ signal_type: 'pdq', value: pdq, quality }], labels: labelsOf($('submit-labels').value) };
  const basis = $('submit-legal-basis').value.trim();
  if (basis) body.legal_basis = basis;
  const ref = $('submit-case-ref').value.trim();
  if (ref) body.case_ref = ref;
  return body;
}

async function onSubmit() {
  $('submit-confirm').hidden = true;
  say('submit-error', '');
  say('submit-status', 'Adding…');
  let body;
  try { body = submitBody(); } catch (e) { say('submit-status', ''); say('submit-error', e.message); return; }
  try {
    const r = await api('POST', '/v1/submit', body);
    const parts = (r.entries || []).map((e) => (e.duplicate
      ? `already listed as entry ${e.index}`
      : `added as entry ${e.index}`));
    const cp = r.checkpoint;
    say('submit-status', `Done: ${parts.join('; ') || 'nothing added'}`
      + `${cp && cp.tree_size !== undefined ? ` (the list now has ${cp.tree_size} entries)` : ''}.`);
    const first = (r.entries || [])[0];
    if (first) $('submit-status').dataset.index = String(first.index);
  } catch (e) {
    say('submit-status', '');
    say('submit-error', refusalText('The hash was not added', e));
  }
}

function retractBody() {
  const raw = $('retract-index').value.trim();
  const index = Number(raw);
  if (raw === '' || !Number.isSafeInteger(index) || index < 0) throw new Error('The entry number is a whole number, 0 or more.');
  return { index, reason: $('retract-reason').value.trim() };
}

async function onRetract() {
  $('retract-confirm').hidden = true;
  say('retract-error', '');
  say('retract-status', 'Retracting…');
  let body;
  try { body = retractBody(); } catch (e) { say('retract-status', ''); say('retract-error', e.message); return; }
  try {
    const r = await api('POST', '/v1/retract', body);
    say('retract-status', `Entry ${r.retracted_index} retracted; the retraction is entry ${r.retract_index}.`);
    $('retract-status').dataset.index = String(r.retract_index);
  } catch (e) {
    say('retract-status', '');
    say('retract-error', refusalText('The entry was not retracted', e));
  }
}

function confirmStep(button, box, yes, no, check) {
  button.addEventListener('click', () => {
    try { check(); } catch (e) { box.hidden = true; return e; }
    box.hidden = false;
    yes.focus();
    return null;
  });
  no.addEventListener('click', () => { box.hidden = true; button.focus(); });
}

// ---------------------------------------------------------------- connect

async function connect(event) {
  if (event) event.preventDefault();
  say('connect-error', '');
  const typed = $('token').value.trim();
  if (!typed) {
    say('connect-error', 'Type an access token first.');
    $('token').focus();
    return;
  }
  token = typed;
  generation += 1;
  const gen = generation;
  for (const id of ['search-error', 'submit-error', 'retract-error', 'submit-status', 'retract-status', 'search-status']) say(id, '');
  $('connect-button').disabled = true;
  for (const note of document.querySelectorAll('.before')) note.hidden = true;
  say('connect-status', 'Loading every panel…');
  await Promise.allSettled([loadStatusPanels(gen), loadGrowth(gen), loadEvidence(gen), loadReview(gen)]);
  if (gen !== generation) return;
  $('connect-button').disabled = false;
  const refused = ['origins', 'growth', 'federation', 'evidence', 'review']
    .filter((p) => $(`${p}-error`).textContent !== '');
  say('connect-status', refused.length === 0
    ? 'Connected: every panel is loaded.'
    : refused.length === 5 ? 'No panel could be shown; each says why below.'
      : `Connected. ${refused.length} of 5 panels could not be shown; each says why.`);
  loadedCount += 1;
  document.body.dataset.loaded = String(loadedCount);
}

function forget() {
  token = '';
  generation += 1;
  $('token').value = '';
  clearOrigins(); clearFederation(); clearGrowth(); clearEvidence();
  $('review-queue').replaceChildren();
  $('review-empty').hidden = true;
  $('search-results').replaceChildren();
  say('search-computed', '');
  for (const p of ['origins', 'growth', 'federation', 'evidence', 'review', 'search', 'submit', 'retract', 'connect']) say(`${p}-error`, '');
  for (const id of ['review-status', 'search-status', 'submit-status', 'retract-status']) say(id, '');
  $('connect-button').disabled = false;
  for (const note of document.querySelectorAll('.before')) note.hidden = false;
  say('connect-status', 'The token is forgotten. Type it again to connect.');
  $('token').focus();
}

async function main() {
  $('connect-form').addEventListener('submit', connect);
  $('forget-button').addEventListener('click', forget);
  $('evidence-more').addEventListener('click', moreEvidence);
  $('search-button').addEventListener('click', () => search($('search-hash').value.trim().toLowerCase()));
  $('search-hash').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') search($('search-hash').value.trim().toLowerCase());
  });
  $('search-image').addEventListener('change', onSearchImage);
  $('search-image').disabled = true;
  clearOrigins(); clearFederation(); clearGrowth(); clearEvidence();

  confirmStep($('submit-button'), $('submit-confirm'), $('submit-yes'), $('submit-no'), () => {
    say('submit-error', '');
    try { submitBody(); } catch (e) { say('submit-error', e.message); throw e; }
  });
  $('submit-yes').addEventListener('click', onSubmit);
  confirmStep($('retract-button'), $('retract-confirm'), $('retract-yes'), $('retract-no'), () => {
    say('retract-error', '');
    try { retractBody(); } catch (e) { say('retract-error', e.message); throw e; }
  });
  $('retract-yes').addEventListener('click', onRetract);
  for (const h of ['review-h']) $(h).tabIndex = -1;

  try {
    hasher = await loadHasher('redline_web.wasm');
    $('search-image').disabled = false;
    say('hasher-state', 'The image fingerprint tool is ready.');
    document.body.dataset.ready = 'true';
  } catch (e) {
    say('hasher-state', '');
    say('search-error', `The image fingerprint tool could not start: ${e.message}`);
  }
}

main();
