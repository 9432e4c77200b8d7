// Logging in with an e-mail address and a password.

import { post, setSession } from '../api.js';
import { h } from '../dom.js';
import { button, clearError, errorBox, field, notice, showError, withBusy } from '../ui.js';

export function render(root, { flash, onLoggedIn }) {
  const email = h('input', {
    id: 'login-email', type: 'email', name: 'email', autocomplete: 'username',
    required: true, autocapitalize: 'none', spellcheck: 'false',
  });
  const password = h('input', {
    id: 'login-password', type: 'password', name: 'password', autocomplete: 'current-password', required: true,
  });
  const submit = button('Log in', { kind: 'primary', type: 'submit', id: 'login-submit', block: true });
  const errors = errorBox();
  errors.id = 'login-error';

  const form = h('form', { class: 'auth-form', 'aria-labelledby': 'login-title' },
    field('E-mail address', email),
    field('Password', password),
    errors,
    submit);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError(errors);
    try {
      const answer = await withBusy(submit, 'Logging in…',
        () => post('/login', { email: email.value.trim(), password: password.value }, { anonymous: true }),
        [email, password]);
      setSession(answer);
      onLoggedIn();
    } catch (err) {
      showError(errors, err);
      password.value = '';
      password.focus();
    }
  });

  root.append(h('div', { class: 'auth-card' },
    h('div', { class: 'auth-brand' },
      h('img', { src: 'assets/favicon.svg', alt: '', width: '40', height: '40' }),
      h('span', {}, 'FlagBridge')),
    h('h1', { id: 'login-title' }, 'Log in'),
    h('p', { class: 'auth-lead' }, 'Manage feature flags, projects and API keys.'),
    flash && notice(flash, 'info'),
    form,
    h('p', { class: 'auth-footnote' }, 'New here? Ask an owner or admin of your organization for an invitation.')));
  email.focus();
}
