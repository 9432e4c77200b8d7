// Pieces shared by the pages: picking a project and an environment, the
// error state of a page that could not load, the read-only banner.

import { get, v1 } from '../api.js';
import { h, replace } from '../dom.js';
import { remember, remembered } from '../prefs.js';
import { button, field, notice, select } from '../ui.js';

/**
 * pickProject chooses the project to show: the one in the URL, else the
 * one picked last time, else the first.
 */
export function pickProject(projects, query) {
  const wanted = query.get('project') || remembered('project');
  const found = projects.find((p) => p.slug === wanted);
  return (found || projects[0]).slug;
}

/** pickEnvironment does the same for an environment of the project. */
export function pickEnvironment(envs, query, project) {
  if (envs.length === 0) return '';
  const fromURL = query.get('project') === project ? query.get('env') : '';
  const wanted = fromURL || remembered(`env.${project}`);
  const found = envs.find((e) => e.slug === wanted)
    || envs.find((e) => e.slug === 'production')
    || envs[0];
  return found.slug;
}

/** projectSelect is the labelled project picker. */
export function projectSelect(projects, value, onChange) {
  const el = select(projects.map((p) => ({ value: p.slug, label: p.name && p.name !== p.slug ? `${p.name} (${p.slug})` : p.slug })),
    value, { id: 'project-select', name: 'project' });
  el.addEventListener('change', () => {
    remember('project', el.value);
    onChange(el.value);
  });
  return field('Project', el);
}

/** environmentSelect is the labelled environment picker. */
export function environmentSelect(envs, value, project, onChange) {
  const el = select(envs.map((e) => ({ value: e.slug, label: e.name && e.name !== e.slug ? `${e.name} (${e.slug})` : e.slug })),
    value, { id: 'environment-select', name: 'environment' });
  el.addEventListener('change', () => {
    remember(`env.${project}`, el.value);
    onChange(el.value);
  });
  return field('Environment', el);
}

/** loadFailed is the state of a part of a page that could not load. */
export function loadFailed(what, err, retry) {
  return h('div', { class: 'empty empty-error', role: 'alert' },
    h('p', { class: 'empty-title' }, `Could not load ${what}`),
    h('p', { class: 'empty-text' }, err.message),
    retry && button('Try again', { kind: 'secondary', onClick: retry }));
}

/** readOnlyBanner tells a MEMBER that changes will be refused. */
export function readOnlyBanner(session, what) {
  if (session.member.role !== 'MEMBER') return null;
  return notice(`Your role (Member) is read-only: ${what} needs an owner or admin.`, 'info');
}

/** noProjects is what pages that work inside a project show without one. */
export function noProjects(what) {
  return h('div', { class: 'empty' },
    h('p', { class: 'empty-title' }, 'No projects yet'),
    h('p', { class: 'empty-text' }, `${what} belong to a project. Create a project first.`),
    h('a', { class: 'btn btn-primary', href: '#/projects' }, 'Go to Projects'));
}

/**
 * loadProjects fetches the projects for a page that works inside one. On
 * failure or when there are none, it shows that state in body and returns
 * null.
 */
export async function loadProjects(body, ctx, what) {
  let projects;
  try {
    projects = (await get(v1('projects'))).data;
  } catch (err) {
    replace(body, loadFailed('projects', err, () => ctx.navigate(location.hash)));
    return null;
  }
  if (projects.length === 0) {
    replace(body, noProjects(what));
    return null;
  }
  return projects;
}
