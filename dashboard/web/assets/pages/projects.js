// Projects and their environments: list, create a project, add an
// environment.

import { get, post, v1 } from '../api.js';
import { append, h, plural, replace, slugify, time } from '../dom.js';
import { button, dialog, empty, field, loading, pageHeader, table, toast } from '../ui.js';
import { loadFailed, readOnlyBanner } from './common.js';

const SLUG_HINT = 'Lower-case letters, digits and hyphens. It appears in URLs and API paths and cannot be changed later.';

export async function render(root, ctx) {
  const newProject = button('New project', { kind: 'primary', id: 'new-project' });
  append(root, [
    pageHeader('Projects', 'A project holds the flags and keys of one application, per environment.', newProject),
    readOnlyBanner(ctx.session, 'creating projects and environments'),
  ]);
  const list = h('div', { class: 'page-body', id: 'projects-list', 'aria-live': 'polite' });
  root.append(list);
  newProject.addEventListener('click', () => createProject());

  async function load() {
    replace(list, loading('Loading projects…'));
    let projects;
    try {
      const summaries = (await get(v1('projects'))).data;
      // The list has no environments; each project's own answer does.
      projects = await Promise.all(summaries.map((p) => get(v1('projects', p.slug))));
    } catch (err) {
      replace(list, loadFailed('projects', err, load));
      return;
    }
    if (projects.length === 0) {
      replace(list, empty('No projects yet',
        'Create a project for each application. It starts with production, staging and development environments.',
        button('New project', { kind: 'primary', onClick: () => createProject() })));
      return;
    }
    replace(list, projects.map(card));
  }

  function card(p) {
    const envs = p.environments || [];
    const add = button('New environment', { kind: 'secondary', small: true, 'aria-label': `New environment in ${p.name || p.slug}`, onClick: () => createEnvironment(p), className: 'new-environment' });
    return h('section', { class: 'card project-card', 'aria-labelledby': `project-${p.slug}`, dataset: { project: p.slug } },
      h('header', { class: 'card-header' },
        h('div', {},
          h('h2', { id: `project-${p.slug}`, class: 'card-title' }, p.name || p.slug),
          h('p', { class: 'card-meta' },
            h('code', {}, p.slug), ' · ', plural(envs.length, 'environment'), ' · created ', time(p.created_at, { dateOnly: true }))),
        h('div', { class: 'card-actions' },
          h('a', { class: 'btn btn-ghost btn-small', href: `#/keys?project=${encodeURIComponent(p.slug)}` }, 'API keys'),
          add)),
      envs.length === 0
        ? h('p', { class: 'card-empty' }, 'No environments yet.')
        : table(`Environments of ${p.slug}`, ['Environment', 'Slug', 'Created', h('span', { class: 'visually-hidden' }, 'Links')],
          envs.map((e) => h('tr', { dataset: { environment: e.slug } },
            h('td', { class: 'cell-strong' }, e.name || e.slug),
            h('td', {}, h('code', {}, e.slug)),
            h('td', {}, time(e.created_at, { dateOnly: true })),
            h('td', { class: 'cell-actions' },
              h('a', { href: `#/flags?project=${encodeURIComponent(p.slug)}&env=${encodeURIComponent(e.slug)}` }, 'Flags')))),
          { className: 'table-compact' }));
  }

  // nameAndSlug is a name field whose slug follows it until edited.
  function nameAndSlug(prefix, namePlaceholder) {
    const name = h('input', { id: `${prefix}-name`, type: 'text', required: true, maxlength: '100', placeholder: namePlaceholder, autocomplete: 'off' });
    const slug = h('input', {
      id: `${prefix}-slug`, type: 'text', required: true, maxlength: '63', pattern: '[a-z0-9]([a-z0-9\\-]*[a-z0-9])?',
      autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none',
    });
    let slugEdited = false;
    name.addEventListener('input', () => { if (!slugEdited) slug.value = slugify(name.value); });
    slug.addEventListener('input', () => { slugEdited = slug.value !== ''; });
    return { name, slug, fields: [field('Name', name), field('Slug', slug, SLUG_HINT)] };
  }

  async function createProject() {
    const f = nameAndSlug('project', 'e.g. Web shop');
    const created = await dialog({
      id: 'new-project-dialog',
      title: 'New project',
      intro: 'The project starts with production, staging and development environments.',
      submitLabel: 'Create project',
      busyLabel: 'Creating…',
      body: f.fields,
      onSubmit: () => post(v1('projects'), { slug: f.slug.value.trim(), name: f.name.value.trim() }),
    });
    if (!created) return;
    toast(`Project “${created.name || created.slug}” created`);
    load();
  }

  async function createEnvironment(p) {
    const f = nameAndSlug('environment', 'e.g. QA');
    const created = await dialog({
      id: 'new-environment-dialog',
      title: `New environment in ${p.name || p.slug}`,
      intro: 'Each environment has its own flags and its own live and test keys.',
      submitLabel: 'Create environment',
      busyLabel: 'Creating…',
      body: f.fields,
      onSubmit: () => post(v1('projects', p.slug, 'environments'), { slug: f.slug.value.trim(), name: f.name.value.trim() }),
    });
    if (!created) return;
    toast(`Environment “${created.name || created.slug}” created`);
    load();
  }

  await load();
}
