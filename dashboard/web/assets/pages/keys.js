// Settings → API Keys: a project's keys; generate, rotate and revoke them,
// and change their rate limits, quota and identity. A key's secret is in
// the answer that created or rotated it and nowhere else: it is shown once
// in a dialog, and closing the dialog forgets it.

import { del, get, patch, post, v1 } from '../api.js';
import { append, formatCount, h, replace, time, uid } from '../dom.js';
import { remember } from '../prefs.js';
import {
  badge, button, confirm, dialog, empty, field, loading, pageHeader, secret, select, table, toast,
} from '../ui.js';
import { loadFailed, loadProjects, pickProject, projectSelect, readOnlyBanner } from './common.js';

const TYPES = [
  { value: 'client', label: 'Client', text: 'Publishable, for browsers and apps: reads client-visible flags over OFREP from its origins.' },
  { value: 'live', label: 'Live', text: 'Evaluates flags in one environment: servers and apps.' },
  { value: 'test', label: 'Test', text: 'Evaluates flags and runs testing sessions: CI.' },
  { value: 'admin', label: 'Admin', text: 'Manages the project’s flags, environments and keys.' },
];
const TYPE_BADGE = { client: 'info', live: 'success', test: 'warning', admin: 'accent' };
const STATUS_BADGE = { active: 'success', expired: 'warning', revoked: 'danger' };
const EXPIRY = [
  { value: '', label: 'No expiry' },
  { value: '7d', label: '7 days' },
  { value: '30d', label: '30 days' },
  { value: '90d', label: '90 days' },
  { value: '365d', label: '365 days' },
];
// Without limits of its own, a key has its type's (see "Rate limits").
const TYPE_LIMIT = {
  client: { requests: 600, window: '1m' },
  live: { requests: 10000, window: '1m' },
  test: { requests: 1000, window: '1m' },
  admin: { requests: 500, window: '1m' },
};
const MAX_LIMITS = 4;
// Suggested windows; any duration from 1s to 24h can be typed.
const WINDOWS = [
  { value: '1s', label: '1 second' },
  { value: '10s', label: '10 seconds' },
  { value: '1m', label: '1 minute' },
  { value: '5m', label: '5 minutes' },
  { value: '15m', label: '15 minutes' },
  { value: '1h', label: '1 hour' },
  { value: '6h', label: '6 hours' },
  { value: '24h', label: '24 hours' },
];
const PERIODS = [
  { value: 'day', label: 'per day' },
  { value: 'month', label: 'per month' },
];
const GRACE = [
  { value: '', label: 'Immediately: the current secret stops working now' },
  { value: '1h', label: 'After 1 hour' },
  { value: '24h', label: 'After 24 hours' },
  { value: '7d', label: 'After 7 days' },
];

export async function render(root, ctx) {
  const newKey = button('Generate New Key', { kind: 'primary', id: 'new-key', disabled: true });
  append(root, [
    pageHeader('API Keys', 'Keys let your applications evaluate flags and let tools manage FlagBridge. Each key belongs to one project.', newKey),
    readOnlyBanner(ctx.session, 'generating, limiting, rotating and revoking keys'),
  ]);
  const body = h('div', { class: 'page-body' }, loading('Loading projects…'));
  root.append(body);

  const projects = await loadProjects(body, ctx, 'API keys');
  if (!projects) return;

  let project = pickProject(projects, ctx.query);
  let envs = [];
  const list = h('div', { class: 'card', id: 'keys-list', 'aria-live': 'polite' });
  // The server decides what "near" is (the share of a limit the
  // near-limit metric counts from), so the page asks it rather than
  // filtering here.
  const nearOnly = h('input', { type: 'checkbox', id: 'near-limit-only' });
  nearOnly.addEventListener('change', () => load());
  const toolbar = h('div', { class: 'toolbar' }, projectSelect(projects, project, (p) => {
    project = p;
    ctx.setQuery({ project });
    load();
  }), h('label', { class: 'toolbar-check', for: nearOnly.id }, nearOnly, ' Only keys near a limit'));
  replace(body, toolbar, list);
  ctx.setQuery({ project });
  remember('project', project);

  async function load() {
    const wanted = project;
    newKey.disabled = true;
    replace(list, loading('Loading keys…'));
    let keys;
    try {
      const [k, e] = await Promise.all([
        get(v1('projects', project, 'api-keys') + (nearOnly.checked ? '?near_limit=true' : '?usage=true')),
        get(v1('projects', project, 'environments')),
      ]);
      keys = k.data;
      envs = e.data;
    } catch (err) {
      if (wanted === project) replace(list, loadFailed('the keys', err, load));
      return;
    }
    if (wanted !== project) return; // another project was picked meanwhile
    newKey.disabled = false;
    if (keys.length === 0 && nearOnly.checked) {
      replace(list, empty('No key is near a limit',
        'A key is listed here once a bucket it spends from (a limit, its quota, its identity’s) is 80% spent.'));
      return;
    }
    if (keys.length === 0) {
      replace(list, empty('No keys yet',
        'Generate a key for each application or pipeline that talks to FlagBridge.',
        button('Generate New Key', { kind: 'primary', onClick: () => create() })));
      return;
    }
    // Active keys first, newest first.
    keys.sort((a, b) => (b.status === 'active') - (a.status === 'active') || b.created_at.localeCompare(a.created_at));
    replace(list, table(`API keys of project ${project}`,
      ['Name and key', 'Type', 'Permissions', 'Environment', 'Created', 'Expires', 'Last used', 'Status', h('span', { class: 'visually-hidden' }, 'Actions')],
      keys.map(row), { className: 'keys-table' }));
  }

  function row(k) {
    const active = k.status === 'active';
    const actions = active ? [
      // "Limits", not "Edit limits": with three actions the table must still fit.
      // A client key has no limits of its own, but origins.
      k.type === 'client'
        ? button('Origins', { kind: 'secondary', small: true, 'aria-label': `Edit allowed origins of key ${k.name}`, title: 'Edit the origins whose pages may use the key', onClick: () => editOrigins(k), className: 'edit-origins' })
        : button('Limits', { kind: 'secondary', small: true, 'aria-label': `Edit limits of key ${k.name}`, title: 'Edit limits, quota and identity', onClick: () => editLimits(k), className: 'edit-limits' }),
      button('Rotate', { kind: 'secondary', small: true, 'aria-label': `Rotate key ${k.name}`, onClick: () => rotate(k), className: 'rotate-key' }),
      button('Revoke', { kind: 'danger-ghost', small: true, 'aria-label': `Revoke key ${k.name}`, onClick: () => revoke(k), className: 'revoke-key' }),
    ] : null;
    return h('tr', { dataset: { keyId: k.id, keyName: k.name } },
      h('td', { class: 'cell-name' },
        h('span', { class: 'cell-strong' }, k.name),
        h('span', { class: 'key-hint', title: 'The key’s first and last characters' }, k.hint),
        originsSummary(k),
        limitsSummary(k),
        usageSummary(k)),
      h('td', {}, badge(label(k.type), TYPE_BADGE[k.type])),
      h('td', {}, h('span', { class: 'perm-list' }, (k.permissions || []).map((p) => badge(p, 'neutral')))),
      h('td', {}, k.environment ? h('code', {}, k.environment) : h('span', { class: 'muted' }, 'All')),
      h('td', {}, time(k.created_at, { dateOnly: true })),
      h('td', {}, k.expires_at ? time(k.expires_at, { dateOnly: true }) : h('span', { class: 'muted' }, 'Never')),
      h('td', {}, k.last_used_at ? time(k.last_used_at, { rel: true }) : h('span', { class: 'muted' }, 'Never')),
      h('td', {},
        badge(label(k.status), STATUS_BADGE[k.status] || 'neutral'),
        k.previous_key_valid_until
          ? h('span', { class: 'cell-note' }, 'previous secret until ', time(k.previous_key_valid_until))
          : k.rotated_at && h('span', { class: 'cell-note' }, 'rotated ', time(k.rotated_at, { rel: true }))),
      h('td', { class: 'cell-actions' }, actions || h('span', { class: 'muted' }, '—')));
  }

  async function create() {
    const name = h('input', { id: 'key-name', type: 'text', required: true, maxlength: '100', placeholder: 'e.g. Production web server', autocomplete: 'off' });
    const typeName = uid('key-type');
    const radios = TYPES.map((t) => h('input', { type: 'radio', name: typeName, value: t.value, id: `key-type-${t.value}`, checked: t.value === 'live' }));
    const read = h('input', { type: 'checkbox', id: 'key-perm-read', value: 'READ', checked: true });
    const write = h('input', { type: 'checkbox', id: 'key-perm-write', value: 'WRITE' });
    let permsTouched = false;
    read.addEventListener('change', () => { permsTouched = true; });
    write.addEventListener('change', () => { permsTouched = true; });
    const env = select(envs.map((e) => ({ value: e.slug, label: e.name && e.name !== e.slug ? `${e.name} (${e.slug})` : e.slug })),
      envs.some((e) => e.slug === 'production') ? 'production' : envs[0]?.slug, { id: 'key-environment', required: true });
    const envField = field('Environment', env);
    const expiry = select(EXPIRY, '', { id: 'key-expiry' });
    const typeOf = () => radios.find((r) => r.checked).value;
    const origins = originsInput([]);
    const originsField = field('Allowed origins', origins, 'One per line, such as https://app.example.com: the pages that may use the key. http only on localhost.');
    const limits = limitsFields({}, typeOf);
    const limitsSection = h('div', { id: 'key-limits-section' }, limits.body);
    const onType = () => {
      const t = typeOf();
      envField.hidden = t === 'admin';
      env.disabled = t === 'admin';
      // A client key is public: READ only, its origins instead of limits.
      const client = t === 'client';
      originsField.hidden = !client;
      origins.disabled = !client;
      limitsSection.hidden = client;
      write.disabled = client;
      if (client) write.checked = false;
      else if (!permsTouched) write.checked = t !== 'live';
    };
    radios.forEach((r) => r.addEventListener('change', () => { onType(); limits.refresh(); }));
    onType();

    const created = await dialog({
      id: 'new-key-dialog',
      title: 'Generate a new API key',
      intro: `The key belongs to project ${project}.`,
      submitLabel: 'Create key',
      busyLabel: 'Creating…',
      wide: true,
      body: [
        field('Descriptive name', name, 'Say where the key is used, so that you know what breaks if you revoke it.'),
        h('fieldset', { class: 'fieldset choice-grid choice-grid-2' },
          h('legend', {}, 'Type'),
          TYPES.map((t, i) => h('label', { class: 'choice', for: radios[i].id }, radios[i],
            h('span', {}, h('strong', {}, t.label), h('span', { class: 'choice-text' }, t.text))))),
        h('fieldset', { class: 'fieldset choice-grid choice-grid-2' },
          h('legend', {}, 'Permissions'),
          h('label', { class: 'choice', for: read.id }, read,
            h('span', {}, h('strong', {}, 'READ'), h('span', { class: 'choice-text' }, 'Evaluate flags and read settings.'))),
          h('label', { class: 'choice', for: write.id }, write,
            h('span', {}, h('strong', {}, 'WRITE'), h('span', { class: 'choice-text' }, 'Make changes: testing sessions (test keys), everything (admin keys).')))),
        h('div', { class: 'field-row' }, envField, field('Expires after', expiry)),
        originsField,
        limitsSection,
      ],
      onSubmit: async () => {
        const permissions = [read, write].filter((c) => c.checked).map((c) => c.value);
        if (permissions.length === 0) throw new Error('Choose at least one permission.');
        const t = typeOf();
        const input = { name: name.value.trim(), type: t, permissions };
        if (t !== 'admin') input.environment = env.value;
        if (expiry.value) input.expires_in = expiry.value;
        if (t === 'client') {
          input.allowed_origins = originsOf(origins);
          return post(v1('projects', project, 'api-keys'), input);
        }
        const l = limits.value();
        if (l.limits) input.limits = l.limits;
        if (l.quota) input.quota = l.quota;
        if (l.identity) input.identity = l.identity;
        return post(v1('projects', project, 'api-keys'), input);
      },
    });
    if (!created) return;
    load();
    await secret({
      title: 'Your new API key',
      label: `API key “${created.name}”`,
      value: created.key,
      lead: `A ${label(created.type).toLowerCase()} key${created.environment ? ` for ${created.environment}` : ''} of project ${project}, with ${created.permissions.join(' and ')}.`,
      warning: 'This is the only time FlagBridge shows this key: it keeps only a digest, so the key cannot be shown again. If you lose it, rotate it.',
    });
  }

  async function editLimits(k) {
    const limits = limitsFields(k, () => k.type);
    const before = limitsOf(k);
    const updated = await dialog({
      id: 'edit-limits-dialog',
      title: `Limits of “${k.name}”`,
      intro: 'Changes reach every instance at once and apply from the key’s next request.',
      submitLabel: 'Save limits',
      busyLabel: 'Saving…',
      wide: true,
      body: limits.body,
      onSubmit: async () => {
        // Only what changed, so that the rest stays as it is on the server;
        // null removes the limits (back to the type's), quota or identity.
        const now = limits.value();
        const changes = {};
        for (const f of ['limits', 'quota', 'identity']) {
          if (JSON.stringify(now[f]) !== JSON.stringify(before[f])) changes[f] = now[f];
        }
        if (Object.keys(changes).length === 0) return k;
        return patch(v1('api-keys', k.id), changes);
      },
    });
    if (!updated) return;
    toast(updated === k ? `Nothing changed in “${k.name}”` : `Limits of “${k.name}” saved`);
    if (updated !== k) load();
  }

  async function editOrigins(k) {
    const origins = originsInput(k.allowed_origins || []);
    const updated = await dialog({
      id: 'edit-origins-dialog',
      title: `Allowed origins of “${k.name}”`,
      intro: 'Pages of these origins may use the key; a page of any other can read nothing. Changes reach every instance at once.',
      submitLabel: 'Save origins',
      busyLabel: 'Saving…',
      body: [field('Allowed origins', origins, 'One per line, such as https://app.example.com.')],
      onSubmit: () => patch(v1('api-keys', k.id), { allowed_origins: originsOf(origins) }),
    });
    if (!updated) return;
    toast(`Origins of “${k.name}” saved`);
    load();
  }

  async function rotate(k) {
    const grace = select(GRACE, '', { id: 'rotate-grace' });
    const rotated = await dialog({
      id: 'rotate-key-dialog',
      title: `Rotate “${k.name}”`,
      intro: 'Rotating gives the key a new secret. Its name, type and permissions stay the same.',
      submitLabel: 'Rotate key',
      busyLabel: 'Rotating…',
      kind: 'danger',
      body: [field('The current secret stops working', grace, 'A grace period lets you deploy the new secret before the old one stops.')],
      onSubmit: () => post(v1('api-keys', k.id, 'rotate'), grace.value ? { grace_period: grace.value } : {}),
    });
    if (!rotated) return;
    load();
    await secret({
      title: 'Your rotated API key',
      label: `New secret of “${rotated.name}”`,
      value: rotated.key,
      lead: rotated.previous_key_valid_until ? null : 'The previous secret has stopped working.',
      warning: 'This is the only time FlagBridge shows this secret. If you lose it, rotate the key again.',
      details: rotated.previous_key_valid_until
        ? h('p', { class: 'modal-intro' }, 'The previous secret keeps working until ', time(rotated.previous_key_valid_until), '.')
        : null,
    });
  }

  async function revoke(k) {
    const done = await confirm({
      id: 'revoke-key-dialog',
      title: `Revoke “${k.name}”?`,
      message: 'Applications using this key are refused from now on. This cannot be undone.',
      confirmLabel: 'Revoke key',
      busyLabel: 'Revoking…',
      onConfirm: () => del(v1('api-keys', k.id)),
    });
    if (!done) return;
    toast(`Key “${k.name}” revoked`);
    load();
  }

  newKey.addEventListener('click', () => create());
  await load();
}

// originsInput is the text area of a client key's origins, one per line.
function originsInput(origins) {
  const input = h('textarea', { id: 'key-origins', rows: '3', placeholder: 'https://app.example.com', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
  input.value = origins.join('\n');
  return input;
}

// originsOf reads the origins typed, one per line; the server checks them
// and its message names the one it refuses.
function originsOf(input) {
  return input.value.split('\n').map((o) => o.trim()).filter(Boolean);
}

// originsSummary lists a client key's origins in the list.
function originsSummary(k) {
  if (!k.allowed_origins || k.allowed_origins.length === 0) return null;
  // One per line, in the name cell: a column of their own would push the
  // actions out of the table.
  return h('span', { class: 'key-origins', title: 'Allowed origins' },
    k.allowed_origins.map((o) => h('span', { class: 'key-origin' }, o)),
    h('span', { class: 'muted' }, `${formatCount(TYPE_LIMIT.client.requests)}/${TYPE_LIMIT.client.window} per visitor address`));
}

// limitsOf reads a key's limits, quota and identity as limitsFields writes
// them, so that the two compare: null for what the key does not have.
function limitsOf(k) {
  return {
    limits: k.limits && k.limits.length > 0 ? k.limits.map(limitValue) : null,
    quota: k.quota ? { requests: k.quota.requests, period: k.quota.period } : null,
    identity: k.identity || null,
  };
}

function limitValue(l) {
  const v = { name: l.name, requests: l.requests, window: l.window };
  if (l.shadow) v.shadow = true;
  return v;
}

/**
 * limitsFields builds the form's rate limits (up to MAX_LIMITS rows),
 * quota and identity, filled with key's. typeOf() is the key's type, for
 * the default limit it has without limits of its own; refresh() shows it
 * again after the type changed. value() reads the form as the API takes
 * it, with null for what is left empty. Only emptiness is checked here
 * (required fields): the server checks the rest and its message is shown.
 */
function limitsFields(key, typeOf) {
  const windows = h('datalist', { id: uid('limit-windows') },
    WINDOWS.map((w) => h('option', { value: w.value, label: w.label })));
  const rows = h('div', { class: 'limit-rows', id: 'key-limits' });
  const add = button('Add limit', { kind: 'secondary', small: true, id: 'key-limit-add' });
  const none = h('p', { class: 'hint', id: 'key-limits-default' });
  const limits = [];

  const refresh = () => {
    const d = TYPE_LIMIT[typeOf()];
    none.textContent = limits.length > 0
      ? 'A request must pass every limit; a shadow limit is only reported, never refuses.'
      : `No limits of its own: the ${typeOf()} key’s default, ${formatCount(d.requests)}/${d.window}.`;
    add.disabled = limits.length >= MAX_LIMITS;
    limits.forEach((l, i) => {
      l.legend.textContent = `Limit ${i + 1}`;
      l.remove.setAttribute('aria-label', `Remove limit ${i + 1}`);
    });
  };

  const addLimit = (l = {}) => {
    const name = h('input', { type: 'text', class: 'limit-name', required: true, maxlength: '63', value: l.name || '', placeholder: 'e.g. burst', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
    const requests = h('input', { type: 'number', class: 'limit-requests', required: true, value: l.requests == null ? '' : String(l.requests), placeholder: 'e.g. 100' });
    const per = h('input', { type: 'text', class: 'limit-window', required: true, list: windows.id, value: l.window || '1m', placeholder: 'e.g. 1m', autocomplete: 'off', spellcheck: 'false' });
    const shadow = h('input', { type: 'checkbox', class: 'limit-shadow', id: uid('limit-shadow'), checked: !!l.shadow });
    const remove = button('Remove', { kind: 'ghost', small: true, className: 'limit-remove' });
    const legend = h('legend', { class: 'visually-hidden' });
    const row = h('fieldset', { class: 'limit-row' }, legend,
      field('Name', name), field('Requests', requests), field('Window', per),
      h('label', { class: 'limit-check', for: shadow.id, title: 'Checked and reported, but never refuses' }, shadow, 'Shadow'),
      remove);
    const entry = { row, legend, remove, name, requests, per, shadow };
    remove.addEventListener('click', () => {
      limits.splice(limits.indexOf(entry), 1);
      row.remove();
      refresh();
      add.focus();
    });
    limits.push(entry);
    rows.append(row);
    refresh();
    return entry;
  };
  (key.limits || []).forEach((l) => addLimit(l));
  add.addEventListener('click', () => addLimit().name.focus());

  const quota = h('input', { type: 'number', id: 'key-quota-requests', value: key.quota ? String(key.quota.requests) : '', placeholder: 'No quota' });
  const period = select(PERIODS, key.quota ? key.quota.period : 'month', { id: 'key-quota-period', 'aria-label': 'Quota period' });
  const quotaHint = h('p', { class: 'hint', id: uid('hint') }, 'Requests per calendar day or month (UTC); leave empty for none.');
  quota.setAttribute('aria-describedby', quotaHint.id);
  const identity = h('input', { type: 'text', id: 'key-identity', maxlength: '63', value: key.identity || '', placeholder: 'e.g. acme-corp', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
  refresh();

  return {
    body: [
      h('fieldset', { class: 'fieldset' },
        h('legend', {}, 'Rate limits'),
        none, rows, add, windows),
      h('div', { class: 'field-row' },
        h('div', { class: 'field' },
          h('label', { for: quota.id }, 'Quota'),
          h('div', { class: 'quota-row' }, quota, period),
          quotaHint),
        field('Identity', identity, 'The customer the key belongs to (a slug): route limits count its keys together.')),
    ],
    refresh,
    value: () => ({
      limits: limits.length > 0
        ? limits.map((l) => limitValue({ name: l.name.value.trim(), requests: Number(l.requests.value), window: l.per.value.trim(), shadow: l.shadow.checked }))
        : null,
      quota: quota.value.trim() ? { requests: Number(quota.value), period: period.value } : null,
      identity: identity.value.trim() || null,
    }),
  };
}

// limitsSummary is a line of a key's identity, limits and quota in the
// list ("acme-corp · burst 100/1s · sustained 10,000/1m · quota
// 1,000,000/month"), or nothing for a key with its type's default limit.
function limitsSummary(k) {
  const parts = [
    k.identity && h('span', { class: 'key-identity', title: 'Identity' }, badge(k.identity, 'info')),
    k.limits && k.limits.length > 0 && h('span', { class: 'key-limits', title: 'Rate limits' }, k.limits.map((l, i) => [
      i > 0 && ' · ',
      h('span', { class: 'key-limit' }, `${l.name} ${formatCount(l.requests)}/${l.window}`),
      l.shadow && h('span', { class: 'muted', title: 'Reported, never refuses' }, ' (shadow)'),
    ])),
    k.quota && h('span', { class: 'key-quota', title: 'Quota (UTC)' }, `quota ${formatCount(k.quota.requests)}/${k.quota.period}`),
  ].filter(Boolean);
  if (parts.length === 0) return null;
  return h('span', { class: 'key-limits-line' }, parts.map((p, i) => [i > 0 && h('span', { class: 'muted' }, ' · '), p]));
}

// usageSummary shows what each bucket of a key holds now: what is left of
// each limit, of its quota and of its identity's, the ones the server
// judges near their limit (as near_limit does) marked.
function usageSummary(k) {
  // In the name cell, under the limits: a column of its own would push
  // the actions out of the table.
  if (!k.usage) return null;
  const near = k.usage.some((b) => b.near);
  return h('span', { class: 'key-usage' },
    near && badge('Near limit', 'warning'),
    k.usage.map((b) => h('span', {
      class: ['usage-bucket', b.near && 'near'],
      dataset: { bucket: b.name },
      title: b.period
        ? `Quota ${b.name}: resets ${new Date(b.reset_at).toUTCString()}`
        : `Full again at ${new Date(b.reset_at).toLocaleTimeString()}`,
    },
    h('span', { class: 'usage-name' }, b.kind === 'identity' ? b.name.replace(/^identity-/, 'identity ') : b.name),
    ' ',
    h('span', { class: 'usage-left' }, `${formatCount(Math.max(b.remaining, 0))} of ${formatCount(b.requests)} left`),
    h('span', { class: 'muted' }, b.period ? ` this ${b.period}` : ` per ${b.window}`),
    b.shadow && h('span', { class: 'muted' }, ' (shadow)'),
    // A <meter>, not a styled bar: the page's CSP allows no inline style.
    h('meter', { class: 'usage-meter', min: '0', max: '1', value: String(spent(b)), 'aria-hidden': 'true' }))));
}

function spent(b) {
  return b.requests > 0 ? 1 - Math.max(b.remaining, 0) / b.requests : 0;
}

function label(s) {
  return s ? s.charAt(0).toUpperCase() + s.slice(1) : '';
}
