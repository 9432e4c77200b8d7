// The dashboard's JSON API client. The session cookie is HttpOnly: the page
// never sees it. What the page keeps (in memory only) is the session's CSRF
// token, sent in X-CSRF-Token on every request that changes something.

const BASE = '/dashboard/api';

/** ApiError is a refused or failed request, with the server's message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

let session = null; // {member, organization} of the logged-in member
let csrfToken = '';
let onLoggedOut = () => {};

/** currentSession returns who is logged in, or null. */
export function currentSession() {
  return session;
}

/** setSession keeps a login answer: the member, organization and CSRF token. */
export function setSession(answer) {
  session = answer ? { member: answer.member, organization: answer.organization } : null;
  csrfToken = answer ? answer.csrf_token : '';
}

/** whenLoggedOut registers what to do when the server says the session ended. */
export function whenLoggedOut(fn) {
  onLoggedOut = fn;
}

/**
 * request calls the API and resolves to {status, headers, data}. It throws
 * an ApiError for every answer that is not 2xx, carrying the server's
 * message. A 401 on a request that needed a session also reports the
 * logout, so that the page returns to the login form.
 */
export async function request(method, path, { body, headers = {}, raw = false, anonymous = false } = {}) {
  const h = { Accept: 'application/json', ...headers };
  const init = { method, headers: h, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = raw ? body : JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) {
    h['X-CSRF-Token'] = csrfToken;
  }
  let resp;
  try {
    resp = await fetch(BASE + path, init);
  } catch {
    throw new ApiError(0, 'NETWORK', 'Cannot reach FlagBridge. Check your connection and try again.');
  }
  let data = null;
  const text = resp.status === 204 ? '' : await resp.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const code = data && data.error ? data.error : `HTTP_${resp.status}`;
    const message = data && data.message ? data.message : describeStatus(resp.status);
    const err = new ApiError(resp.status, code, message);
    if (resp.status === 401 && !anonymous && session) {
      setSession(null);
      onLoggedOut('Your session has ended. Please log in again.');
    }
    throw err;
  }
  return { status: resp.status, headers: resp.headers, data, text };
}

function describeStatus(status) {
  if (status >= 500) return `FlagBridge could not answer (HTTP ${status}). Try again shortly.`;
  return `The request was refused (HTTP ${status}).`;
}

/** get, post, put, patch and del return the answer's JSON. */
export const get = async (path, opts) => (await request('GET', path, opts)).data;
export const post = async (path, body, opts) => (await request('POST', path, { ...opts, body })).data;
export const put = async (path, body, opts) => (await request('PUT', path, { ...opts, body })).data;
export const patch = async (path, body, opts) => (await request('PATCH', path, { ...opts, body })).data;
export const del = async (path, opts) => (await request('DELETE', path, opts)).data;

/** v1 is the REST API's path under the dashboard, with encoded segments. */
export function v1(...segments) {
  return '/v1/' + segments.map((s) => encodeURIComponent(s)).join('/');
}

/** etagVersion reads a flag-set version from an ETag such as "3". */
export function etagVersion(headers) {
  const etag = headers.get('ETag') || headers.get('FlagBridge-Flag-Set-Version') || '';
  const n = Number.parseInt(etag.replace(/^W\//, '').replaceAll('"', ''), 10);
  return Number.isNaN(n) ? null : n;
}
