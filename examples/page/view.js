// DOM helpers of the demo page: event rows, the query error caret, the copy buttons.
//
// Everything that comes from an event or from the gateway goes into the DOM
// with textContent, never innerHTML: event data is written by web-apps.

/** The element with this id (the page's markup is fixed, so a missing one is a bug). */
export function byId(id) {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no element #${id}`);
  return found;
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function pad(n, width = 2) {
  return String(n).padStart(width, '0');
}

/** "14:03:27" for today, "12 Mar, 14:03:27" for other days; local time. */
export function formatTime(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value === undefined || value === null ? '' : String(value);
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  const now = new Date();
  if (date.toDateString() === now.toDateString()) return time;
  const day = date.toLocaleDateString(undefined, {
    day: 'numeric', month: 'short', year: date.getFullYear() === now.getFullYear() ? undefined : 'numeric',
  });
  return `${day}, ${time}`;
}

/** A value of an event's data as one short line: strings as they are, the rest as compact JSON-like text. */
function valueText(value) {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return `[${value.map(quoted).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).map(([k, v]) => `${k}: ${quoted(v)}`).join(', ')}}`;
  }
  return String(value);
}

function quoted(value) {
  return typeof value === 'string' ? JSON.stringify(value) : valueText(value);
}

/** The data of an event as "key value" pairs in one wrapping line. */
function renderData(data) {
  const box = el('div', 'event__data');
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    box.appendChild(el('span', 'kv__value', valueText(data)));
    return box;
  }
  const keys = Object.keys(data);
  if (keys.length === 0) box.appendChild(el('span', 'kv__none', '(no data)'));
  for (const key of keys) {
    const pair = el('span', 'kv');
    pair.appendChild(el('span', 'kv__key', key));
    const value = el('span', 'kv__value', valueText(data[key]));
    if (typeof data[key] !== 'string') value.classList.add('kv__value--json');
    pair.appendChild(value);
    box.appendChild(pair);
  }
  return box;
}

/** One event row: seq, class, time, then its data. */
export function renderEvent(envelope) {
  const item = el('li', 'event event--new');
  const seq = envelope.seq === undefined || envelope.seq === null ? '' : String(envelope.seq);
  item.dataset.seq = seq;
  item.dataset.event = String(envelope.event ?? '');
  if (envelope.id !== undefined) item.dataset.id = String(envelope.id);

  const head = el('div', 'event__head');
  const seqEl = el('span', 'event__seq', seq === '' ? '' : `#${seq}`);
  seqEl.title = `seq ${seq}${envelope.id !== undefined ? ` · id ${envelope.id}` : ''}`;
  head.appendChild(seqEl);
  head.appendChild(el('span', 'event__class', envelope.event ?? '?'));
  const time = el('time', 'event__time', formatTime(envelope.time));
  if (envelope.time) {
    time.dateTime = String(envelope.time);
    time.title = String(envelope.time);
  }
  head.appendChild(time);

  item.appendChild(head);
  item.appendChild(renderData(envelope.data));
  // Drop the highlight once shown, so that it does not replay when the row is laid out again.
  item.addEventListener('animationend', () => item.classList.remove('event--new'), { once: true });
  return item;
}

/**
 * An event list, newest first, bounded so that a busy page stays fast.
 * Each seq is shown once: the client delivers each once, and the list holds it to that.
 */
export class EventList {
  constructor(listEl, emptyEl, countEl, max = 200) {
    this.listEl = listEl;
    this.emptyEl = emptyEl;
    this.countEl = countEl;
    this.max = max;
    this.count = 0;
  }

  add(envelope) {
    this.count += 1;
    this.listEl.insertBefore(renderEvent(envelope), this.listEl.firstChild);
    while (this.listEl.children.length > this.max) this.listEl.removeChild(this.listEl.lastElementChild);
    this.emptyEl.hidden = true;
    this.showCount();
  }

  clear() {
    this.count = 0;
    this.listEl.replaceChildren();
    this.emptyEl.hidden = false;
    this.showCount();
  }

  showCount() {
    this.countEl.dataset.count = String(this.count);
    const shown = this.listEl.children.length;
    this.countEl.textContent = this.count === 0 ? ''
      : `${this.count} ${this.count === 1 ? 'event' : 'events'}${shown < this.count ? ` · latest ${shown} shown` : ''}`;
  }
}

/**
 * Show a refused query: the gateway's message, and under the query a caret at
 * ``position`` (the gateway's 1-based column, counted in code points).
 *
 * The caret line repeats the text before the fault, invisible, then "^": so
 * the caret sits under the faulty character whatever the glyph widths.
 */
export function showQueryError(parts, message, query, position) {
  parts.message.textContent = message;
  parts.box.dataset.query = query;
  parts.box.hidden = false;
  if (typeof position !== 'number' || typeof query !== 'string') {
    parts.caret.hidden = true;
    return;
  }
  // Control characters would break the alignment; the gateway prints them as spaces too.
  const chars = Array.from(query, (c) => (/\p{Cc}/u.test(c) ? ' ' : c));
  const offset = Math.max(0, Math.min(position - 1, chars.length));
  const before = chars.slice(0, offset).join('');
  parts.before.textContent = before;
  // At the end of the query the fault is "nothing here": mark a blank cell.
  parts.mark.textContent = offset < chars.length ? chars[offset] : ' ';
  parts.after.textContent = chars.slice(offset + 1).join('');
  parts.pad.textContent = before;
  parts.caret.dataset.column = String(position);
  parts.column.textContent = `at column ${position}`;
  parts.caret.hidden = false;
}

export function hideQueryError(parts) {
  parts.box.hidden = true;
  parts.message.textContent = '';
  parts.caret.hidden = true;
}

// -- copy buttons -------------------------------------------------------------------------------

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  // Plain http on a non-local host: the old way.
  const area = el('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } finally {
    area.remove();
  }
  if (!ok) throw new Error('copy refused');
}

/** Every button with data-copy="<id>" copies that element's text. */
export function wireCopyButtons(root = document) {
  for (const button of root.querySelectorAll('button[data-copy]')) {
    const source = byId(button.dataset.copy);
    let reset = null;
    button.addEventListener('click', async () => {
      try {
        await copyText(source.textContent);
        button.textContent = 'Copied';
        button.classList.add('btn--done');
      } catch {
        button.textContent = 'Select & copy';
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
      clearTimeout(reset);
      reset = setTimeout(() => {
        button.textContent = 'Copy';
        button.classList.remove('btn--done');
      }, 2000);
    });
  }
}
