// Accepting an invitation: the invited person sets a password (or, if the
// address already has one, proves it) and is logged in to the organization.

import { post, setSession } from '../api.js';
import { formatDateTime, h, replace } from '../dom.js';
import { button, clearError, errorBox, field, loading, roleLabel, showError, toast, withBusy } from '../ui.js';

const MIN_PASSWORD = 10;

export async function render(root, { token, navigate, onJoined }) {
  const card = h('div', { class: 'auth-card' });
  root.append(card);
  const brand = () => h('div', { class: 'auth-brand' },
    h('img', { src: 'assets/favicon.svg', alt: '', width: '40', height: '40' }),
    h('span', {}, 'FlagBridge'));
  replace(card, brand(), loading('Checking your invitation…'));
  document.title = 'Invitation · FlagBridge';

  let inv;
  try {
    inv = await post('/invites/lookup', { token }, { anonymous: true });
  } catch (err) {
    replace(card, brand(),
      h('h1', {}, 'Invitation not available'),
      h('p', { class: 'alert alert-error', role: 'alert', id: 'invite-error' }, err.message),
      h('p', { class: 'auth-footnote' }, 'Ask the person who invited you for a new link, or ',
        h('a', { href: '#/login' }, 'log in'), ' if you already joined.'));
    return;
  }

  const email = h('input', { id: 'invite-email', type: 'email', autocomplete: 'username', readOnly: true, value: inv.email });
  const password = h('input', {
    id: 'invite-password', type: 'password', autocomplete: 'new-password', required: true, minlength: String(MIN_PASSWORD),
  });
  const confirmPw = h('input', { id: 'invite-password-confirm', type: 'password', autocomplete: 'new-password', required: true });
  const submit = button('Accept invitation', { kind: 'primary', type: 'submit', id: 'invite-accept', block: true });
  const errors = errorBox();
  errors.id = 'invite-error';

  const form = h('form', { class: 'auth-form' },
    field('E-mail address', email),
    field('Password', password,
      `At least ${MIN_PASSWORD} characters. If this address already has a FlagBridge password, enter that one.`),
    field('Repeat the password', confirmPw),
    errors,
    submit);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError(errors);
    if (password.value !== confirmPw.value) {
      showError(errors, 'The two passwords differ.');
      confirmPw.focus();
      return;
    }
    try {
      const answer = await withBusy(submit, 'Joining…',
        () => post('/invites/accept', { token, password: password.value }, { anonymous: true }),
        [password, confirmPw]);
      setSession(answer);
      onJoined();
      toast(`Welcome to ${answer.organization.name}!`);
      navigate('#/flags');
    } catch (err) {
      showError(errors, err);
    }
  });

  replace(card, brand(),
    h('h1', {}, `Join ${inv.organization}`),
    h('p', { class: 'auth-lead', id: 'invite-summary' },
      `${inv.name ? `${inv.name}, you` : 'You'} have been invited to join `,
      h('strong', {}, inv.organization), ' on FlagBridge as ', h('strong', {}, roleLabel(inv.role)), '.'),
    form,
    h('p', { class: 'auth-footnote' }, `This invitation expires ${formatDateTime(inv.expires_at)}.`));
  password.focus();
}
