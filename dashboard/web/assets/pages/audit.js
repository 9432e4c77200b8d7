// The audit log: who changed what, when and from where, newest first,
// with the filters of GET /v1/audit-log and an NDJSON export.

import { ApiError, get, request, v1 } from '../api.js';
import { append, h, replace, time } from '../dom.js';
import { badge, button, empty, field, loading, pageHeader, select, table, toast, withBusy } from '../ui.js';
import { loadFailed } from './common.js';

const PERIODS = [
  { value: '24h', label: 'Last 24 hours' },
  { value: '7d', label: 'Last 7 days' },
  { value: '30d', label: 'Last 30 days' },
  { value: '', label: 'Everything kept' },
];
const OUTCOME_BADGE = { success: 'success', failure: 'danger' };

export async function render(root, ctx) {
  const exportBtn = button('Export NDJSON', { kind: 'secondary', id: 'audit-export' });
  append(root, [pageHeader('Audit log', 'Every change and login of the organization, with who made it and from where.', exportBtn)]);
  const body = h('div', { class: 'page-body' }, loading('Loading projects…'));
  root.append(body);
  // The log has the organization's own entries too: no project is no
  // reason not to show it.
  let projects;
  try {
    projects = (await get(v1('projects'))).data;
  } catch (err) {
    replace(body, loadFailed('projects', err, () => ctx.navigate(location.hash)));
    return;
  }

  const q = ctx.query;
  const project = select([{ value: '', label: 'All projects' }, ...projects.map((p) => ({ value: p.slug, label: p.slug }))],
    q.get('project') || '', { id: 'audit-project' });
  const environment = h('input', { id: 'audit-environment', type: 'text', value: q.get('environment') || '', placeholder: 'e.g. production', autocomplete: 'off', spellcheck: 'false' });
  const action = h('input', { id: 'audit-action', type: 'text', value: q.get('action') || '', placeholder: 'e.g. api_key.* or flag_set.updated', autocomplete: 'off', spellcheck: 'false' });
  const actor = h('input', { id: 'audit-actor', type: 'text', value: q.get('actor') || '', placeholder: 'key or member id', autocomplete: 'off', spellcheck: 'false' });
  const since = select(PERIODS, q.get('since') ?? '7d', { id: 'audit-since' });
  const apply = button('Apply', { kind: 'primary', type: 'submit', id: 'audit-apply' });
  const filters = h('form', { class: 'toolbar', id: 'audit-filters' },
    field('Project', project), field('Environment', environment), field('Action', action), field('Actor', actor), field('Period', since), apply);
  const list = h('div', { class: 'card', id: 'audit-list', 'aria-live': 'polite' });
  const more = button('Load more', { kind: 'secondary', id: 'audit-more' });
  more.hidden = true;
  replace(body, filters, list, h('div', { class: 'page-footer' }, more));

  let cursor = '';
  let rows = [];

  function params() {
    const p = {};
    if (project.value) p.project = project.value;
    if (project.value && environment.value.trim()) p.environment = environment.value.trim();
    if (action.value.trim()) p.action = action.value.trim();
    if (actor.value.trim()) p.actor = actor.value.trim();
    if (since.value) p.since = since.value;
    return p;
  }
  const path = (extra = {}) => `${v1('audit-log')}?${new URLSearchParams({ ...params(), ...extra })}`;

  async function load({ next = false } = {}) {
    if (!next) {
      rows = [];
      cursor = '';
      replace(list, loading('Loading the audit log…'));
      ctx.setQuery(params());
    }
    let page;
    try {
      page = await get(path(cursor ? { cursor } : {}));
    } catch (err) {
      replace(list, loadFailed('the audit log', err, () => load()));
      more.hidden = true;
      return;
    }
    rows.push(...page.data.map(row));
    cursor = page.next_cursor || '';
    more.hidden = !cursor;
    if (rows.length === 0) {
      replace(list, empty('Nothing recorded', 'No entry matches these filters in this period.'));
      return;
    }
    replace(list, table('Audit log', ['When', 'Action', 'Target', 'Where', 'Who', 'From', 'Outcome'], rows, { className: 'audit-table' }));
  }

  function row(e) {
    const where = [e.project, e.environment].filter(Boolean).join(' / ') || 'organization';
    const who = e.actor.type === 'api_key'
      ? h('span', {}, h('code', {}, e.actor.id), h('span', { class: 'muted' }, ` ${e.actor.key_type} key`))
      : e.actor.type === 'member' ? h('span', {}, 'member ', h('code', {}, e.actor.id)) : h('span', { class: 'muted' }, 'system');
    const versions = e.flag_set ? h('span', { class: 'cell-note' }, `version ${e.flag_set.before} → ${e.flag_set.after}${e.flag_set.revert_of ? ` (restores ${e.flag_set.revert_of})` : ''}`) : null;
    return h('tr', { dataset: { entryId: e.id, action: e.action } },
      h('td', { class: 'cell-nowrap' }, time(e.time, { rel: true })),
      h('td', {}, h('code', { class: 'audit-action' }, e.action), versions),
      h('td', {}, h('span', { class: 'muted' }, `${e.target.type} `), h('code', {}, e.target.id)),
      h('td', {}, where),
      h('td', {}, who),
      h('td', {}, e.client_address || h('span', { class: 'muted' }, '—'),
        e.request_id && h('span', { class: 'cell-note', title: 'Flagbridge-Request-Id' }, e.request_id)),
      h('td', {}, badge(e.outcome, OUTCOME_BADGE[e.outcome] || 'neutral'), e.reason && h('span', { class: 'cell-note' }, e.reason)));
  }

  // An environment narrows a project: without one it is left out.
  const syncEnvironment = () => { environment.disabled = !project.value; };
  project.addEventListener('change', syncEnvironment);
  syncEnvironment();
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    load();
  });
  more.addEventListener('click', () => withBusy(more, 'Loading…', () => load({ next: true })));
  exportBtn.addEventListener('click', () => withBusy(exportBtn, 'Exporting…', async () => {
    try {
      const ans = await request('GET', path(), { headers: { Accept: 'application/x-ndjson' } });
      const url = URL.createObjectURL(new Blob([ans.text], { type: 'application/x-ndjson' }));
      const a = h('a', { href: url, download: 'flagbridge-audit-log.ndjson', id: 'audit-download' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      toast(`Exported ${ans.text ? ans.text.trim().split('\n').length : 0} entries`);
    } catch (err) {
      toast(err instanceof ApiError ? err.message : String(err), 'error');
    }
  }));
  await load();
}
