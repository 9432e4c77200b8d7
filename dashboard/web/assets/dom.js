// Small DOM and formatting helpers. Everything the page shows is built with
// createElement and textContent: data from the server never goes through
// innerHTML, so it cannot inject markup.

// Properties set as DOM properties rather than attributes.
const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'required', 'readOnly', 'multiple', 'indeterminate']);

/**
 * h creates an element. props: "class" (string or array), "text",
 * "dataset", "on<event>" listeners, DOM properties (value, checked...),
 * anything else as an attribute (true means an empty attribute). Children
 * are nodes, strings or (nested) arrays; null, undefined and false are
 * skipped.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') {
      el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    } else if (k === 'text') {
      el.textContent = v;
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (PROPS.has(k)) {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

/** append adds children (nodes, strings, arrays; falsy ones skipped). */
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** replace empties el and appends children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let idCounter = 0;
/** uid returns a fresh element id with a readable prefix. */
export function uid(prefix = 'fb') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** formatDateTime renders an ISO time as a local date and time. */
export function formatDateTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateTime.format(d);
}

/** formatDate renders an ISO time as a local date. */
export function formatDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateOnly.format(d);
}

/** formatRelative renders an ISO time relative to now ("3 minutes ago"). */
export function formatRelative(iso, now = Date.now()) {
  if (!iso) return '';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return String(iso);
  const seconds = Math.round((t - now) / 1000);
  const units = [
    ['year', 31536000], ['month', 2592000], ['week', 604800],
    ['day', 86400], ['hour', 3600], ['minute', 60],
  ];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return Math.abs(seconds) < 45 ? (seconds <= 0 ? 'just now' : 'in a moment') : relative.format(seconds, 'second');
}

/** time returns a <time> element: relative or absolute text, full date on hover. */
export function time(iso, { rel = false, dateOnly: onlyDate = false } = {}) {
  if (!iso) return null;
  const text = rel ? formatRelative(iso) : onlyDate ? formatDate(iso) : formatDateTime(iso);
  return h('time', { datetime: iso, title: formatDateTime(iso) }, text);
}

const count = new Intl.NumberFormat();

/** formatCount renders a count with the locale's digit grouping (10,000). */
export function formatCount(n) {
  return count.format(n);
}

/** slugify turns a display name into a slug the API accepts. */
export function slugify(name) {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/g, '');
}

/** plural picks "1 flag" or "3 flags". */
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}
