// Members of the organization. Owners and admins invite people (with a
// link that is shown once) and remove members.

import { del, get, post, v1 } from '../api.js';
import { append, h, replace, time } from '../dom.js';
import {
  badge, button, confirm, dialog, empty, field, loading, notice, pageHeader, roleLabel, secret, select, table, toast,
} from '../ui.js';
import { loadFailed } from './common.js';

const ROLES = [
  { value: 'MEMBER', label: 'Member: read-only' },
  { value: 'ADMIN', label: 'Admin: manages everything except owners' },
  { value: 'OWNER', label: 'Owner: manages everything, including owners' },
];
const ROLE_BADGE = { OWNER: 'accent', ADMIN: 'info', MEMBER: 'neutral' };

export async function render(root, ctx) {
  const me = ctx.session.member;
  const org = ctx.session.organization;
  const manages = me.role === 'OWNER' || me.role === 'ADMIN';
  const invite = manages ? button('Invite member', { kind: 'primary', id: 'invite-member' }) : null;
  append(root, [
    pageHeader('Members', `The people of ${org.name}. Invited people appear here once they accept.`, ...(invite ? [invite] : [])),
    manages ? null : notice('Only owners and admins invite and remove members.', 'info'),
  ]);
  const list = h('div', { class: 'card', id: 'members-list', 'aria-live': 'polite' });
  root.append(h('div', { class: 'page-body' }, list));

  async function load() {
    replace(list, loading('Loading members…'));
    let members;
    try {
      members = (await get(v1('members'))).data;
    } catch (err) {
      replace(list, loadFailed('members', err, load));
      return;
    }
    if (members.length === 0) {
      replace(list, empty('No members', 'Invite people to work on flags with you.'));
      return;
    }
    replace(list, table(`Members of ${org.name}`,
      ['Name', 'E-mail address', 'Role', 'Joined', h('span', { class: 'visually-hidden' }, 'Actions')],
      members.map(row)));
  }

  function row(m) {
    const self = m.id === me.id;
    const removable = manages && !self && (m.role !== 'OWNER' || me.role === 'OWNER');
    return h('tr', { dataset: { memberId: m.id, email: m.email } },
      h('td', { class: 'cell-strong' }, m.name || m.email, self && h('span', { class: 'muted' }, ' (you)')),
      h('td', {}, m.email),
      h('td', {}, badge(roleLabel(m.role), ROLE_BADGE[m.role] || 'neutral')),
      h('td', {}, time(m.created_at, { dateOnly: true })),
      h('td', { class: 'cell-actions' }, removable
        ? button('Remove', { kind: 'danger-ghost', small: true, 'aria-label': `Remove ${m.name || m.email}`, onClick: () => remove(m), className: 'remove-member' })
        : null));
  }

  async function inviteMember() {
    const email = h('input', { id: 'invitee-email', type: 'email', required: true, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
    const name = h('input', { id: 'invitee-name', type: 'text', required: true, maxlength: '100', autocomplete: 'off' });
    const role = select(ROLES.filter((r) => r.value !== 'OWNER' || me.role === 'OWNER'), 'MEMBER', { id: 'invitee-role' });
    const inv = await dialog({
      id: 'invite-dialog',
      title: 'Invite a member',
      intro: `You get a link to send to the person; with it they set a password and join ${org.name}.`,
      submitLabel: 'Create invitation',
      busyLabel: 'Creating…',
      body: [field('E-mail address', email), field('Name', name), field('Role', role)],
      onSubmit: () => post(v1('members', 'invitations'), { email: email.value.trim(), name: name.value.trim(), role: role.value }),
    });
    if (!inv) return;
    await secret({
      id: 'invite-link-dialog',
      title: 'Invitation link',
      label: `Invitation for ${inv.name} <${inv.email}>`,
      value: inv.invite_url,
      lead: `Send this link to ${inv.name}. It lets them join ${org.name} as ${roleLabel(inv.role).toLowerCase()}.`,
      warning: 'The link is shown only now and works once.',
      details: h('p', { class: 'modal-intro' }, 'It expires ', time(inv.expires_at), '.'),
    });
  }

  async function remove(m) {
    const done = await confirm({
      id: 'remove-member-dialog',
      title: `Remove ${m.name || m.email}?`,
      message: `They lose access to ${org.name} at once: their sessions end and every API key whose secret they hold is revoked.`,
      confirmLabel: 'Remove member',
      busyLabel: 'Removing…',
      onConfirm: () => del(v1('members', m.id)),
    });
    if (!done) return;
    toast(`${m.name || m.email} removed`);
    load();
  }

  if (invite) invite.addEventListener('click', () => inviteMember());
  await load();
}
