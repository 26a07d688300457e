// The victim's page. Every photo is read and hashed here, in this browser, by the same Rust
// code `redline hash` runs (compiled to WebAssembly, hashing.js); only the hashes are ever
// sent, to this node's report API. No cookies, no storage, no other host (see the page's
// Content-Security-Policy).
import { loadHasher } from './hashing.js';

const $ = (id) => document.getElementById(id);
const hashed = []; // {file, pdq, quality, md5, sha256}, in the order chosen
let hasher = null;

function say(id, text) { $(id).textContent = text; }
function fail(text) { say('error', text); }

async function api(path, body) {
  const resp = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
    referrerPolicy: 'no-referrer',
  });
  const answer = await resp.json().catch(() => ({ message: `the node answered ${resp.status}` }));
  if (!resp.ok) {
    throw new Error(answer.message || `the node answered ${resp.status}`);
  }
  return answer;
}

const STATUS_WORDS = {
  queued: 'received, waiting for review by the hotline',
  listed: 'in the list: platforms that use it can recognise copies',
  rejected: 'reviewed and not added to the list',
  withdrawn: 'withdrawn: its fingerprints are no longer in the list',
};

function describe(status) { return STATUS_WORDS[status] || status; }

function addRow(result) {
  const row = document.createElement('tr');
  row.dataset.file = result.file;
  row.dataset.pdq = result.pdq;
  row.dataset.quality = String(result.quality);
  for (const [text, cls] of [[result.file, ''], [result.pdq, 'hash'], [String(result.quality), '']]) {
    const cell = document.createElement('td');
    cell.textContent = text;
    if (cls) cell.className = cls;
    row.append(cell);
  }
  $('results').querySelector('tbody').append(row);
  $('results').hidden = false;
}

async function onFiles(event) {
  say('error', '');
  const files = Array.from(event.target.files || []);
  for (const file of files) {
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const h = hasher.hash(bytes);
      const result = { file: file.name, ...h };
      hashed.push(result);
      addRow(result);
    } catch (e) {
      fail(`${file.name}: ${e.message}`);
    }
  }
  // The input is cleared so the photos are not held by the page longer than needed.
  event.target.value = '';
  $('send').disabled = hashed.length === 0;
  say('sending-what', hashed.length === 0
    ? 'Nothing will be sent until you press the button below.'
    : `Pressing the button sends ${hashed.length} fingerprint(s) and your note, nothing else.`);
  say('hasher-state', `${hashed.length} photo(s) fingerprinted on this device.`);
}

async function onSend() {
  say('error', '');
  $('send').disabled = true;
  try {
    const signals = hashed.map((h) => ({ signal_type: 'pdq', value: h.pdq, quality: h.quality }));
    const opened = await api('api/cases', { signals, context: $('context').value });
    say('case-id', opened.case_id);
    say('case-pin', opened.pin);
    say('case-status', describe(opened.status));
    $('case').hidden = false;
    $('case').focus();
    hashed.length = 0;
  } catch (e) {
    fail(`Sending failed: ${e.message}`);
    $('send').disabled = hashed.length === 0;
  }
}

function key() {
  return { case_id: $('check-id').value.trim(), pin: $('check-pin').value.trim() };
}

async function onCheck() {
  say('error', '');
  try {
    const c = await api('api/status', key());
    $('check-result').dataset.status = c.status;
    say('check-result', `Case ${c.case_id}: ${describe(c.status)}.`);
  } catch (e) {
    fail(`Checking failed: ${e.message}`);
  }
}

async function onWithdraw() {
  say('error', '');
  $('confirm-withdraw').hidden = true;
  try {
    const c = await api('api/withdraw', key());
    $('check-result').dataset.status = c.status;
    say('check-result', `Case ${c.case_id}: ${describe(c.status)}.`);
  } catch (e) {
    fail(`Withdrawing failed: ${e.message}`);
  }
}

async function main() {
  $('files').disabled = true;
  $('files').addEventListener('change', onFiles);
  $('send').addEventListener('click', onSend);
  $('check').addEventListener('click', onCheck);
  $('withdraw').addEventListener('click', () => {
    $('confirm-withdraw').hidden = false;
    $('withdraw-yes').focus();
  });
  $('withdraw-yes').addEventListener('click', onWithdraw);
  $('withdraw-no').addEventListener('click', () => {
    $('confirm-withdraw').hidden = true;
    $('withdraw').focus();
  });
  try {
    hasher = await loadHasher('redline_web.wasm');
    $('files').disabled = false;
    say('hasher-state', 'Ready. Choose photos to fingerprint them on this device.');
    document.body.dataset.ready = 'true';
  } catch (e) {
    fail(`The fingerprint tool could not start: ${e.message}`);
  }
}

main();
