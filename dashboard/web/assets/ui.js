// Reusable pieces of the interface: dialogs, form fields, busy buttons,
// alerts, empty and loading states, toasts and the copy button.

import { h, uid } from './dom.js';

/** button creates a <button type="button"> (or type submit). */
export function button(label, { kind = 'secondary', type = 'button', small = false, block = false, className = '', onClick, ...rest } = {}) {
  return h('button', {
    type,
    class: ['btn', `btn-${kind}`, small && 'btn-small', block && 'btn-block', className],
    onclick: onClick,
    ...rest,
  }, label);
}

/**
 * withBusy disables a button and shows busyLabel while fn runs, so that a
 * request cannot be sent twice. Other controls to lock go in also.
 */
export async function withBusy(btn, busyLabel, fn, also = []) {
  const label = btn.textContent;
  const locked = [btn, ...also].filter((el) => el && !el.disabled);
  for (const el of locked) el.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  btn.replaceChildren(h('span', { class: 'spinner', 'aria-hidden': 'true' }), busyLabel);
  try {
    return await fn();
  } finally {
    for (const el of locked) el.disabled = false;
    btn.removeAttribute('aria-busy');
    btn.replaceChildren(label);
  }
}

/** errorBox is an alert area that stays hidden until it has a message. */
export function errorBox(extraClass = '') {
  return h('div', { class: ['alert', 'alert-error', extraClass], role: 'alert', hidden: true });
}

/** showError puts an error's message (the server's, for API errors) into box. */
export function showError(box, err, ...extra) {
  const message = err instanceof Error ? err.message : String(err);
  box.replaceChildren(h('p', { class: 'alert-message' }, message), ...extra);
  box.hidden = false;
}

/** clearError hides box. */
export function clearError(box) {
  box.replaceChildren();
  box.hidden = true;
}

/** notice is an informational banner. */
export function notice(text, kind = 'info') {
  return h('div', { class: ['alert', `alert-${kind}`], role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** loading is a "Loading…" placeholder announced to screen readers. */
export function loading(text = 'Loading…') {
  return h('div', { class: 'loading', role: 'status' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

/** empty is the state of a list with nothing in it. */
export function empty(title, text, action) {
  return h('div', { class: 'empty' },
    h('p', { class: 'empty-title' }, title),
    text && h('p', { class: 'empty-text' }, text),
    action);
}

/** badge is a small coloured label. */
export function badge(text, kind = 'neutral') {
  return h('span', { class: ['badge', `badge-${kind}`] }, text);
}

/**
 * field wraps a control with its label and an optional hint (linked with
 * aria-describedby).
 */
export function field(label, control, hint) {
  if (!control.id) control.id = uid('field');
  const children = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hintId = uid('hint');
    control.setAttribute('aria-describedby', hintId);
    children.push(h('p', { class: 'hint', id: hintId }, hint));
  }
  return h('div', { class: 'field' }, children);
}

/** select builds a <select> from [{value, label}] or strings. */
export function select(options, value, props = {}) {
  const el = h('select', props);
  for (const o of options) {
    const opt = typeof o === 'string' ? { value: o, label: o } : o;
    el.append(h('option', { value: opt.value, selected: opt.value === value, disabled: opt.disabled }, opt.label));
  }
  return el;
}

/** table builds a data table from column headings and rows of cells. */
export function table(caption, headings, rows, { className = '' } = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: ['table', className] },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, headings.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
}

/**
 * dialog opens a modal <dialog> with a form. onSubmit(form) runs with the
 * submit button busy; an error it throws is shown in the dialog, and what
 * it returns resolves the promise (and closes the dialog). Cancelling (the
 * Cancel button, Escape, the close button) resolves null.
 */
export function dialog({ title, intro, body = [], submitLabel = 'Save', busyLabel = 'Saving…', kind = 'primary', cancelLabel = 'Cancel', onSubmit, wide = false, id }) {
  return new Promise((resolve) => {
    const titleId = uid('dialog-title');
    const errors = errorBox();
    const submit = button(submitLabel, { kind, type: 'submit' });
    const cancel = button(cancelLabel, { kind: 'secondary', value: 'cancel' });
    const close = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close' }, '×');
    let busy = false;
    let result = null;
    const form = h('form', { class: 'modal-form', novalidate: false },
      h('header', { class: 'modal-header' }, h('h2', { id: titleId }, title), close),
      h('div', { class: 'modal-body' },
        intro && h('p', { class: 'modal-intro' }, intro),
        body,
        errors),
      h('footer', { class: 'modal-footer' }, cancel, submit));
    const dlg = h('dialog', { class: ['modal', wide && 'modal-wide'], 'aria-labelledby': titleId, id }, form);
    const finish = () => dlg.close();
    cancel.addEventListener('click', finish);
    close.addEventListener('click', () => { if (!busy) finish(); });
    dlg.addEventListener('cancel', (e) => { if (busy) e.preventDefault(); });
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(result);
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (busy) return;
      clearError(errors);
      busy = true;
      try {
        // An answer without a body (204) still means done.
        result = (await withBusy(submit, busyLabel, () => onSubmit(form), [cancel, close])) ?? true;
        finish();
      } catch (err) {
        result = null;
        showError(errors, err);
        errors.scrollIntoView({ block: 'nearest' });
      } finally {
        busy = false;
      }
    });
    document.body.append(dlg);
    dlg.showModal();
    const first = form.querySelector('.modal-body input:not([type=hidden]):not([disabled]), .modal-body select, .modal-body textarea');
    (first || submit).focus();
  });
}

/** confirm asks before a destructive action; onConfirm runs with the button busy. */
export function confirm({ title, message, confirmLabel, busyLabel = 'Working…', onConfirm, id }) {
  return dialog({
    title,
    body: [h('p', {}, message)],
    submitLabel: confirmLabel,
    busyLabel,
    kind: 'danger',
    onSubmit: onConfirm,
    id,
  });
}

/**
 * secret shows a value that is displayed this once (an API key, an
 * invitation link), with a Copy button. Closing the dialog removes the
 * value from the page.
 */
export function secret({ title, label, value, lead, warning, details = [], id = 'secret-dialog' }) {
  return new Promise((resolve) => {
    const titleId = uid('dialog-title');
    const input = h('input', {
      id: 'secret-value', type: 'text', class: 'secret-input', readOnly: true,
      value, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'secret-warning',
    });
    const copy = copyButton(() => input.value, input);
    const done = button('Done', { kind: 'primary', id: 'secret-done' });
    const dlg = h('dialog', { class: 'modal', 'aria-labelledby': titleId, id },
      h('div', { class: 'modal-form' },
        h('header', { class: 'modal-header' }, h('h2', { id: titleId }, title)),
        h('div', { class: 'modal-body' },
          lead && h('p', { class: 'modal-intro' }, lead),
          h('div', { class: 'field' },
            h('label', { for: input.id }, label),
            h('div', { class: 'secret-row' }, input, copy)),
          h('div', { class: 'alert alert-warning', id: 'secret-warning' },
            h('strong', {}, 'Copy it now. '), warning),
          details),
        h('footer', { class: 'modal-footer' }, done)));
    done.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
      input.value = '';
      dlg.remove();
      resolve();
    });
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
    input.select();
  });
}

/** copyButton copies text() to the clipboard and says so. */
export function copyButton(text, selectable) {
  const btn = button('Copy', { kind: 'secondary', id: 'secret-copy' });
  let timer;
  btn.addEventListener('click', async () => {
    const ok = await copyText(text(), selectable);
    btn.textContent = ok ? 'Copied' : 'Press Ctrl+C';
    btn.classList.toggle('copied', ok);
    clearTimeout(timer);
    timer = setTimeout(() => { btn.textContent = 'Copy'; btn.classList.remove('copied'); }, 2500);
  });
  return btn;
}

async function copyText(text, selectable) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard permission: select the text so that the keyboard copies it.
    if (selectable) {
      selectable.focus();
      selectable.select();
    }
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
}

/** closeDialogs closes every open dialog (when the page changes under them). */
export function closeDialogs() {
  for (const dlg of document.querySelectorAll('dialog[open]')) dlg.close();
}

/** toast shows a short confirmation at the bottom of the screen. */
export function toast(message, kind = 'success') {
  const area = document.getElementById('toasts');
  if (!area) return;
  const el = h('div', { class: ['toast', `toast-${kind}`], role: kind === 'error' ? 'alert' : 'status' }, message);
  area.append(el);
  setTimeout(() => {
    el.classList.add('toast-leaving');
    setTimeout(() => el.remove(), 300);
  }, 4500);
}

/** pageHeader is the title row of a page, with optional actions. */
export function pageHeader(title, subtitle, ...actions) {
  return h('div', { class: 'page-header' },
    h('div', {},
      h('h1', { id: 'page-title', tabindex: '-1' }, title),
      subtitle && h('p', { class: 'page-subtitle' }, subtitle)),
    actions.length > 0 && h('div', { class: 'page-actions' }, actions));
}

/** roleLabel turns OWNER into Owner. */
export function roleLabel(role) {
  return role ? role.charAt(0) + role.slice(1).toLowerCase() : '';
}
