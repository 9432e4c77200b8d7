// Flags of one environment: turn them on and off, and edit one flag's
// flagd JSON. Every write is conditional (If-Match with the flag set's
// version from its ETag), so that two people cannot overwrite each other's
// changes without knowing: a 412 re-reads the set.

import { ApiError, get, request, v1, etagVersion } from '../api.js';
import { append, h, plural, replace, time } from '../dom.js';
import { remember } from '../prefs.js';
import {
  badge, button, clearError, confirm, empty, errorBox, field, loading, pageHeader, showError, table, toast, withBusy,
} from '../ui.js';
import { environmentSelect, loadFailed, loadProjects, pickEnvironment, pickProject, projectSelect, readOnlyBanner } from './common.js';

const NEW_FLAG = `{
  "state": "ENABLED",
  "variants": {
    "on": true,
    "off": false
  },
  "defaultVariant": "off"
}`;

const STALE = 'These flags changed since you loaded them (someone else saved meanwhile).';

export async function render(root, ctx) {
  const newFlag = button('New flag', { kind: 'primary', id: 'new-flag', disabled: true });
  const historyBtn = button('History', { kind: 'secondary', id: 'flag-history', disabled: true });
  append(root, [
    pageHeader('Flags', 'Turn features on and off per environment, and edit their variants and rules.', newFlag),
    readOnlyBanner(ctx.session, 'changing flags'),
  ]);
  const body = h('div', { class: 'page-body' }, loading('Loading projects…'));
  root.append(body);

  const projects = await loadProjects(body, ctx, 'Flags');
  if (!projects) return;

  let project = pickProject(projects, ctx.query);
  let envs = [];
  let env = '';
  let doc = null; // the flag set document
  let version = null; // its version (from the ETag)
  let editor = null; // the open editor, if any

  const projectField = projectSelect(projects, project, (p) => { project = p; loadEnvironments(); });
  const envSlot = h('div', { class: 'toolbar-slot' });
  const versionInfo = h('p', { class: 'toolbar-info', id: 'flag-set-version', 'aria-live': 'polite' });
  const listAlert = errorBox();
  listAlert.id = 'flags-error';
  const list = h('div', { class: 'card', id: 'flags-list' });
  const editorSlot = h('div', { class: 'editor-slot' });
  replace(body,
    h('div', { class: 'toolbar' }, projectField, envSlot, versionInfo, historyBtn),
    listAlert,
    h('div', { class: 'split' }, list, editorSlot));

  const flagPath = (key) => v1('projects', project, 'environments', env, 'flags', key);
  const setPath = () => v1('projects', project, 'environments', env, 'flags');

  async function loadEnvironments() {
    const wanted = project;
    closeEditor();
    doc = null;
    clearError(listAlert);
    newFlag.disabled = true;
    historyBtn.disabled = true;
    replace(envSlot);
    replace(list, loading('Loading environments…'));
    versionInfo.textContent = '';
    try {
      envs = (await get(v1('projects', project, 'environments'))).data;
    } catch (err) {
      if (wanted === project) replace(list, loadFailed('environments', err, loadEnvironments));
      return;
    }
    if (wanted !== project) return;
    remember('project', project);
    if (envs.length === 0) {
      ctx.setQuery({ project });
      replace(list, empty('No environments', 'This project has no environments yet.',
        h('a', { class: 'btn btn-primary', href: '#/projects' }, 'Go to Projects')));
      return;
    }
    env = pickEnvironment(envs, ctx.query, project);
    replace(envSlot, environmentSelect(envs, env, project, (e) => {
      env = e;
      closeEditor();
      doc = null;
      loadFlags();
    }));
    await loadFlags();
  }

  function showVersion() {
    const n = Object.keys(doc.flags || {}).length;
    versionInfo.replaceChildren(plural(n, 'flag'), ' · version ', h('span', { id: 'flag-set-version-number' }, String(version ?? 0)));
  }

  /** loadFlags reads the environment's whole flag set and its version. */
  async function loadFlags({ keepAlert = false } = {}) {
    const wanted = `${project}/${env}`;
    ctx.setQuery({ project, env });
    remember(`env.${project}`, env);
    if (!keepAlert) clearError(listAlert);
    newFlag.disabled = true;
    if (!doc) replace(list, loading('Loading flags…'));
    list.setAttribute('aria-busy', 'true');
    try {
      const ans = await request('GET', setPath());
      if (wanted !== `${project}/${env}`) return;
      doc = ans.data || { flags: {} };
      version = etagVersion(ans.headers);
    } catch (err) {
      if (wanted === `${project}/${env}`) {
        doc = null;
        replace(list, loadFailed('flags', err, () => loadFlags()));
      }
      return;
    } finally {
      list.removeAttribute('aria-busy');
    }
    newFlag.disabled = false;
    historyBtn.disabled = false;
    if (editor && editor.history) editor.refresh();
    const flags = doc.flags || {};
    const keys = Object.keys(flags).sort((a, b) => a.localeCompare(b));
    showVersion();
    if (keys.length === 0) {
      replace(list, empty('No flags yet',
        `Flags of ${env} appear here. Create one, or import a flagd file with the API.`,
        button('New flag', { kind: 'primary', onClick: () => openEditor(null) })));
      return;
    }
    replace(list, table(`Flags of ${project}, ${env}`,
      ['Flag', 'State', 'Variants', 'Default', 'Targeting', h('span', { class: 'visually-hidden' }, 'Actions')],
      keys.map((k) => row(k, flags[k])), { className: 'flags-table' }));
  }

  function row(key, def) {
    const on = (def.state || 'ENABLED') === 'ENABLED';
    const nameId = `flag-name-${cssSafe(key)}`;
    const sw = h('button', {
      type: 'button', role: 'switch', class: 'switch', 'aria-checked': String(on), 'aria-labelledby': nameId,
      dataset: { flag: key },
    }, h('span', { class: 'switch-thumb', 'aria-hidden': 'true' }));
    const stateText = h('span', { class: ['switch-text', on ? 'is-on' : 'is-off'], 'aria-hidden': 'true' }, on ? 'On' : 'Off');
    sw.addEventListener('click', () => toggle(key, sw));
    const variants = def.variants && typeof def.variants === 'object' ? Object.keys(def.variants) : [];
    const description = def.metadata && typeof def.metadata.description === 'string' ? def.metadata.description : '';
    const edit = button('Edit', { kind: 'secondary', small: true, 'aria-label': `Edit flag ${key}`, onClick: () => openEditor(key), className: 'edit-flag' });
    return h('tr', { dataset: { flag: key }, class: editor && editor.key === key ? 'is-selected' : '' },
      h('td', {},
        h('span', { class: 'flag-key', id: nameId }, key),
        description && h('span', { class: 'cell-note' }, description)),
      h('td', {}, h('span', { class: 'switch-wrap' }, sw, stateText)),
      h('td', {},
        h('span', { class: 'muted' }, variantType(def.variants)), ' ',
        variants.slice(0, 4).map((v) => h('code', { class: 'variant' }, v)),
        variants.length > 4 && h('span', { class: 'muted' }, ` +${variants.length - 4}`)),
      h('td', {}, def.defaultVariant != null ? h('code', {}, String(def.defaultVariant)) : h('span', { class: 'muted' }, 'caller’s')),
      h('td', {}, def.targeting && Object.keys(def.targeting).length > 0 ? badge('Rules', 'accent') : h('span', { class: 'muted' }, 'None')),
      h('td', { class: 'cell-actions' }, edit));
  }

  /** toggle turns a flag on or off: a conditional PUT of its definition. */
  async function toggle(key, sw) {
    const def = doc.flags[key];
    const want = (def.state || 'ENABLED') === 'ENABLED' ? 'DISABLED' : 'ENABLED';
    clearError(listAlert);
    sw.disabled = true;
    sw.setAttribute('aria-busy', 'true');
    try {
      const ans = await request('PUT', flagPath(key), {
        body: { ...def, state: want },
        headers: { 'If-Match': `"${version}"` },
      });
      def.state = want;
      version = etagVersion(ans.headers) ?? version;
      const on = want === 'ENABLED';
      sw.setAttribute('aria-checked', String(on));
      const stateText = sw.parentElement.querySelector('.switch-text');
      stateText.textContent = on ? 'On' : 'Off';
      stateText.className = `switch-text ${on ? 'is-on' : 'is-off'}`;
      showVersion();
      toast(`“${key}” turned ${on ? 'on' : 'off'} in ${env}`);
      if (editor && (editor.key === key || editor.history)) editor.refreshIfUnchanged();
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        showError(listAlert, `${STALE} The list now shows the latest version; toggle “${key}” again if it is still needed.`);
        await loadFlags({ keepAlert: true });
        list.querySelector(`button[role=switch][data-flag="${CSS.escape(key)}"]`)?.focus();
        return;
      }
      showError(listAlert, err);
    } finally {
      sw.disabled = false;
      sw.removeAttribute('aria-busy');
    }
  }

  function closeEditor() {
    if (editor) {
      editor.el.remove();
      editor = null;
      for (const tr of list.querySelectorAll('tr.is-selected')) tr.classList.remove('is-selected');
    }
  }

  /** openEditor shows one flag's JSON (key null: a new flag) next to the list. */
  async function openEditor(key) {
    closeEditor();
    for (const tr of list.querySelectorAll('tr[data-flag]')) tr.classList.toggle('is-selected', tr.dataset.flag === key);
    const isNew = key === null;
    const keyInput = isNew
      ? h('input', { id: 'flag-key', type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. new-checkout' })
      : null;
    const text = h('textarea', {
      id: 'flag-json', class: 'code-editor', rows: '18', spellcheck: 'false', autocapitalize: 'none', autocomplete: 'off', wrap: 'off',
      'aria-describedby': 'flag-json-help flag-error',
    });
    const errors = errorBox('editor-error');
    errors.id = 'flag-error';
    const status = h('p', { class: 'editor-status', id: 'flag-status', role: 'status' });
    const save = button(isNew ? 'Create flag' : 'Save', { kind: 'primary', type: 'submit', id: 'flag-save' });
    const format = button('Format', { kind: 'secondary', id: 'flag-format' });
    const remove = isNew ? null : button('Delete', { kind: 'danger-ghost', id: 'flag-delete' });
    const close = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close editor', id: 'flag-close' }, '×');
    let editorVersion = version;
    let loadedText = '';

    const form = h('form', { class: 'card editor', id: 'flag-editor', 'aria-labelledby': 'flag-editor-title' },
      h('header', { class: 'card-header' },
        h('div', {},
          h('h2', { class: 'card-title', id: 'flag-editor-title' }, isNew ? 'New flag' : key),
          h('p', { class: 'card-meta' }, isNew ? `in ${project} / ${env}` : `Flag of ${project} / ${env}`)),
        close),
      keyInput && field('Flag key', keyInput, 'The name your code asks for. It cannot be renamed later.'),
      h('div', { class: 'field' },
        h('label', { for: text.id }, 'Definition (flagd JSON)'),
        text,
        h('p', { class: 'hint', id: 'flag-json-help' },
          'state, variants, defaultVariant, targeting and metadata, in ',
          h('a', { href: 'https://flagd.dev/reference/flag-definitions/', target: '_blank', rel: 'noopener noreferrer' }, 'flagd’s format'),
          '. FlagBridge checks the whole flag set when you save.')),
      errors,
      h('div', { class: 'editor-actions' }, save, format, remove, status));
    editorSlot.append(form);
    editor = {
      key,
      el: form,
      // After a toggle: show the new definition unless the text was edited.
      refreshIfUnchanged: () => { if (text.value === loadedText) loadDefinition(); },
    };

    async function loadDefinition() {
      clearError(errors);
      status.textContent = '';
      if (isNew) {
        text.value = NEW_FLAG;
        loadedText = text.value;
        editorVersion = version;
        return;
      }
      text.disabled = true;
      status.textContent = 'Loading…';
      try {
        const ans = await request('GET', flagPath(key));
        text.value = (ans.text || '').trim();
        loadedText = text.value;
        editorVersion = etagVersion(ans.headers);
        status.textContent = '';
      } catch (err) {
        status.textContent = '';
        showError(errors, err);
      } finally {
        text.disabled = false;
      }
    }

    close.addEventListener('click', () => closeEditor());
    format.addEventListener('click', () => {
      clearError(errors);
      try {
        text.value = JSON.stringify(JSON.parse(text.value), null, 2);
      } catch (err) {
        showError(errors, `Not valid JSON: ${err.message}`);
      }
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearError(errors);
      status.textContent = '';
      const flagKey = isNew ? keyInput.value.trim() : key;
      if (!flagKey) {
        showError(errors, 'Enter the flag key.');
        keyInput.focus();
        return;
      }
      if (isNew && doc.flags && Object.hasOwn(doc.flags, flagKey)) {
        showError(errors, `A flag “${flagKey}” exists already in ${env}; edit it instead.`);
        return;
      }
      let def;
      try {
        def = JSON.parse(text.value);
      } catch (err) {
        showError(errors, `Not valid JSON: ${err.message}`);
        text.focus();
        return;
      }
      if (def === null || typeof def !== 'object' || Array.isArray(def)) {
        showError(errors, 'The definition must be a JSON object, such as {"state": "ENABLED", …}.');
        return;
      }
      try {
        const ans = await withBusy(save, 'Saving…', () => request('PUT', flagPath(flagKey), {
          body: def,
          headers: { 'If-Match': `"${editorVersion}"` },
        }), [text, format, remove, keyInput]);
        editorVersion = etagVersion(ans.headers) ?? editorVersion;
        toast(isNew ? `Flag “${flagKey}” created in ${env}` : `Flag “${flagKey}” saved`);
        await loadFlags();
        if (isNew) {
          openEditor(flagKey);
        } else {
          loadedText = text.value;
          status.textContent = `Saved · version ${editorVersion}`;
        }
      } catch (err) {
        if (err instanceof ApiError && err.status === 412) {
          const latest = button('Load the latest version', { kind: 'secondary', small: true });
          latest.addEventListener('click', async () => { await loadFlags(); await loadDefinition(); });
          showError(errors, `${STALE} Load the latest version and apply your change again; your text is still in the editor until then.`, latest);
          return;
        }
        showError(errors, err);
      }
    });
    if (remove) {
      remove.addEventListener('click', async () => {
        const done = await confirm({
          id: 'delete-flag-dialog',
          title: `Delete “${key}”?`,
          message: `Code asking for “${key}” in ${env} gets its default value from now on.`,
          confirmLabel: 'Delete flag',
          busyLabel: 'Deleting…',
          onConfirm: () => request('DELETE', flagPath(key), { headers: { 'If-Match': `"${editorVersion}"` } }),
        });
        if (!done) return;
        toast(`Flag “${key}” deleted from ${env}`);
        closeEditor();
        await loadFlags();
      });
    }
    await loadDefinition();
    (keyInput || text).focus();
  }

  /**
   * openHistory shows the set's versions next to the list: who wrote each
   * and when, what each changed, and a revert to any of them (a new
   * version, conditional on the one shown).
   */
  async function openHistory() {
    closeEditor();
    const close = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close history', id: 'history-close' }, '×');
    const content = h('div', { id: 'history-list' }, loading('Loading versions…'));
    const alert = errorBox();
    alert.id = 'history-error';
    const panel = h('section', { class: 'card editor', id: 'flag-history-panel', 'aria-labelledby': 'flag-history-title' },
      h('header', { class: 'card-header' },
        h('div', {},
          h('h2', { class: 'card-title', id: 'flag-history-title' }, 'History'),
          h('p', { class: 'card-meta' }, `Versions of the flags of ${project} / ${env}`)),
        close),
      alert, content);
    editorSlot.append(panel);
    const historyPath = (...rest) => v1('projects', project, 'environments', env, 'flags', 'versions', ...rest);
    const current = () => version ?? 0;

    async function load() {
      let versions;
      try {
        versions = (await get(historyPath())).data;
      } catch (err) {
        replace(content, loadFailed('the history', err, load));
        return;
      }
      if (versions.length === 0) {
        replace(content, empty('No versions yet', 'Every save of these flags is kept here.'));
        return;
      }
      replace(content, table(`Versions of ${project} / ${env}`, ['Version', 'Saved', 'By', h('span', { class: 'visually-hidden' }, 'Actions')],
        versions.flatMap(row), { className: 'history-table' }));
    }

    function row(v) {
      const diff = h('tr', { class: 'history-diff', hidden: true }, h('td', { colspan: '4' }));
      const showChanges = button('Changes', { kind: 'ghost', small: true, className: 'show-changes', 'aria-expanded': 'false',
        'aria-label': `Changes of version ${v.version}` });
      showChanges.addEventListener('click', () => toggleDiff(v, diff, showChanges));
      const revert = v.version === current() ? badge('Current', 'accent') : button('Revert to this', {
        kind: 'secondary', small: true, className: 'revert-version', 'aria-label': `Revert to version ${v.version}`,
        onClick: () => revertTo(v.version),
      });
      const by = !v.author || !v.author.type ? h('span', { class: 'muted' }, 'unknown')
        : v.author.type === 'api_key' ? h('code', { title: `${v.author.key_type} key ${v.author.id}` }, v.author.id)
          : v.author.type === 'member' ? h('span', {}, 'member ', h('code', { title: v.author.id }, v.author.id)) : v.author.type;
      return [h('tr', { dataset: { version: String(v.version) } },
        h('td', {}, h('span', { class: 'cell-strong' }, String(v.version)),
          v.revert_of ? h('span', { class: 'cell-note' }, `restores ${v.revert_of}`) : null),
        h('td', { class: 'cell-nowrap' }, time(v.updated_at, { rel: true })),
        h('td', {}, by),
        h('td', { class: 'cell-actions' }, v.version > 1 ? showChanges : null, revert)), diff];
    }

    async function toggleDiff(v, tr, btn) {
      if (!tr.hidden) {
        tr.hidden = true;
        btn.setAttribute('aria-expanded', 'false');
        return;
      }
      const cell = tr.firstChild;
      replace(cell, loading('Comparing…'));
      tr.hidden = false;
      btn.setAttribute('aria-expanded', 'true');
      try {
        const d = await get(historyPath(String(v.version), 'diff'));
        const items = d.flags.map((f) => h('li', { dataset: { flag: f.key, change: f.change } },
          h('code', {}, f.key), ` ${f.change}`, f.fields && f.fields.length ? h('span', { class: 'muted' }, `: ${f.fields.join(', ')}`) : null));
        if (d.set_fields && d.set_fields.length) items.push(h('li', {}, `the set's ${d.set_fields.join(', ')}`));
        replace(cell, items.length ? h('ul', { class: 'diff-list' }, items) : h('p', { class: 'muted' }, `No change from version ${d.from}.`));
      } catch (err) {
        replace(cell, h('p', { role: 'alert' }, err.message));
      }
    }

    async function revertTo(n) {
      clearError(alert);
      const done = await confirm({
        id: 'revert-dialog',
        title: `Revert to version ${n}?`,
        message: `The flags of ${env} become what they were in version ${n}, as a new version; code evaluating them sees it at once.`,
        confirmLabel: `Revert to version ${n}`,
        busyLabel: 'Reverting…',
        onConfirm: () => request('POST', v1('projects', project, 'environments', env, 'flags', 'revert'), {
          body: { version: n },
          headers: { 'If-Match': `"${current()}"` },
        }),
      });
      if (!done) return;
      toast(`Flags of ${env} reverted to version ${n}`);
      await loadFlags();
    }

    close.addEventListener('click', () => closeEditor());
    editor = { key: null, el: panel, history: true, refresh: load, refreshIfUnchanged: load };
    await load();
    close.focus();
  }

  newFlag.addEventListener('click', () => openEditor(null));
  historyBtn.addEventListener('click', () => openHistory());
  await loadEnvironments();
}

function variantType(variants) {
  if (!variants || typeof variants !== 'object') return '';
  const values = Object.values(variants);
  if (values.length === 0) return '';
  const v = values[0];
  if (typeof v === 'boolean') return 'Boolean';
  if (typeof v === 'number') return 'Number';
  if (typeof v === 'string') return 'String';
  return 'Object';
}

function cssSafe(s) {
  return s.replace(/[^A-Za-z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16)}`);
}
