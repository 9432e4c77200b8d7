// FlagBridge dashboard: a single-page app with hash routes.
//
//   #/login            log in
//   #/invite/<token>   accept an invitation
//   #/flags            flags of a project's environment
//   #/projects         projects and their environments
//   #/members          the organization's members
//   #/audit            the audit log
//   #/keys             Settings → API Keys
//
// Routes may carry a query (#/flags?project=shop&env=production).

import { ApiError, currentSession, get, post, setSession, whenLoggedOut } from './api.js';
import { h, replace } from './dom.js';
import { badge, button, closeDialogs, loading, roleLabel, toast } from './ui.js';
import * as audit from './pages/audit.js';
import * as flags from './pages/flags.js';
import * as invite from './pages/invite.js';
import * as keys from './pages/keys.js';
import * as login from './pages/login.js';
import * as members from './pages/members.js';
import * as projects from './pages/projects.js';

const app = document.getElementById('app');

// Pages of the logged-in app, in the order of the navigation.
const NAV = [
  { section: 'Feature flags', items: [{ route: 'flags', label: 'Flags', page: flags }] },
  {
    section: 'Organization',
    items: [
      { route: 'projects', label: 'Projects', page: projects },
      { route: 'members', label: 'Members', page: members },
      { route: 'audit', label: 'Audit log', page: audit },
    ],
  },
  { section: 'Settings', items: [{ route: 'keys', label: 'API Keys', page: keys }] },
];
const PAGES = new Map(NAV.flatMap((s) => s.items).map((i) => [i.route, i]));
const HOME = '#/flags';

let shell = null; // the logged-in layout: {root, main, links}
let flash = ''; // a message for the login page (e.g. "session ended")
let afterLogin = ''; // the route asked for before logging in

/** parseHash splits "#/keys?project=x" into ["keys"] and its query. */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

/** navigate goes to a route, rendering it even if it is the current one. */
function navigate(hash) {
  if (location.hash === hash) {
    render();
  } else {
    location.hash = hash;
  }
}

/** setQuery records page state (project, environment) in the URL, without re-rendering. */
function setQuery(route, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  history.replaceState(null, '', `#/${route}${s ? `?${s}` : ''}`);
}

async function logout(btn) {
  btn.disabled = true;
  btn.textContent = 'Logging out…';
  try {
    await post('/logout');
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) {
      btn.disabled = false;
      btn.textContent = 'Log out';
      toast(`Could not log out: ${err.message}`, 'error');
      return;
    }
  }
  setSession(null);
  shell = null;
  flash = 'You have logged out.';
  navigate('#/login');
}

function buildShell(session) {
  const { member, organization } = session;
  const links = new Map();
  const nav = h('nav', { class: 'sidebar', 'aria-label': 'Main' },
    NAV.map((s) => h('div', { class: 'nav-group' },
      h('p', { class: 'nav-section' }, s.section),
      h('ul', {}, s.items.map((i) => {
        const a = h('a', { href: `#/${i.route}`, class: 'nav-link', id: `nav-${i.route}` }, i.label);
        // The link of the current page shows it afresh.
        a.addEventListener('click', (e) => {
          if (parseHash().parts[0] === i.route) {
            e.preventDefault();
            navigate(`#/${i.route}`);
          }
        });
        links.set(i.route, a);
        return h('li', {}, a);
      })))));
  const logoutBtn = button('Log out', { kind: 'ghost', id: 'logout', small: true });
  logoutBtn.addEventListener('click', () => logout(logoutBtn));
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  const root = h('div', { class: 'shell' },
    h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: HOME },
        h('img', { src: 'assets/favicon.svg', alt: '', width: '28', height: '28' }),
        h('span', {}, 'FlagBridge')),
      h('span', { class: 'org', id: 'org-name', title: 'Organization' }, organization.name),
      h('div', { class: 'user' },
        h('span', { class: 'user-name', id: 'user-name', title: member.email }, member.name || member.email),
        badge(roleLabel(member.role), member.role === 'MEMBER' ? 'neutral' : 'accent'),
        logoutBtn)),
    nav,
    main);
  return { root, main, links, memberId: member.id };
}

async function render({ focus = false } = {}) {
  closeDialogs();
  const { parts, query } = parseHash();
  const route = parts[0] || '';
  const session = currentSession();

  if (route === 'invite' && parts[1]) {
    shell = null;
    const root = h('div', { class: 'auth-page' });
    replace(app, root);
    app.className = '';
    await invite.render(root, {
      token: parts[1],
      navigate,
      onJoined: () => { shell = null; },
    });
    return;
  }

  if (!session) {
    shell = null;
    if (route && route !== 'login' && PAGES.has(route)) afterLogin = location.hash;
    if (route !== 'login') {
      history.replaceState(null, '', '#/login');
    }
    const root = h('div', { class: 'auth-page' });
    replace(app, root);
    app.className = '';
    login.render(root, {
      flash: consumeFlash(),
      onLoggedIn: () => {
        const next = afterLogin || HOME;
        afterLogin = '';
        navigate(next);
      },
    });
    document.title = 'Log in · FlagBridge';
    return;
  }

  const item = PAGES.get(route);
  if (!item) {
    history.replaceState(null, '', HOME);
    render();
    return;
  }
  if (!shell || shell.memberId !== session.member.id) {
    shell = buildShell(session);
    replace(app, shell.root);
    app.className = '';
  }
  for (const [r, a] of shell.links) {
    if (r === route) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${item.label} · FlagBridge`;
  const pageRoot = h('div', { class: 'page', id: `page-${route}` });
  replace(shell.main, pageRoot);
  const done = item.page.render(pageRoot, {
    query,
    session,
    navigate,
    setQuery: (params) => setQuery(route, params),
  });
  // After moving to another page, tell screen readers where they are.
  if (focus) document.getElementById('page-title')?.focus({ preventScroll: true });
  await done;
}

function consumeFlash() {
  const f = flash;
  flash = '';
  return f;
}

whenLoggedOut((message) => {
  shell = null;
  flash = message;
  if (location.hash.startsWith('#/') && !location.hash.startsWith('#/login')) afterLogin = location.hash;
  navigate('#/login');
});

async function boot() {
  replace(app, loading('Loading FlagBridge…'));
  try {
    // 204 (and so no session) until someone logs in.
    setSession(await get('/session', { anonymous: true }));
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) {
      const retry = button('Try again', { kind: 'primary', onClick: boot });
      replace(app, h('div', { class: 'auth-page' },
        h('div', { class: 'auth-card' },
          h('h1', {}, 'FlagBridge is unavailable'),
          h('p', { class: 'alert alert-error', role: 'alert' }, err.message),
          retry)));
      return;
    }
    setSession(null);
  }
  window.addEventListener('hashchange', () => {
    // In-page anchors (the skip link) are not routes.
    if (location.hash.startsWith('#/') || location.hash === '') render({ focus: true });
  });
  render();
}

document.addEventListener('click', (e) => {
  const skip = e.target.closest('.skip-link');
  if (skip) {
    e.preventDefault();
    document.getElementById('main')?.focus();
  }
});

boot();
