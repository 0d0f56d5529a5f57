// osmesh page: session, routing, API calls and the live feed. The views are in views.js.
// Everything is built with DOM calls (no innerHTML), so no text from the API is ever parsed as
// markup.
import { VIEWS } from './views.js';

const ROLES = ['reader', 'operator', 'admin'];

// An element: h('td', {class: 'x', onclick: f}, 'text', child, [more children]).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  const add = (c) => {
    if (c === undefined || c === null || c === false) return;
    if (Array.isArray(c)) c.forEach(add);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  };
  children.forEach(add);
  return el;
}

// An API refusal, with its code and message.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const session = { name: '', role: 'reader', csrf: null };

// Reads started before the session is known (the first view's data), each used once.
const prefetched = new Map();

// Calls the API as the session: the cookie goes along (same origin), writes carry the CSRF token.
export async function api(method, path, body) {
  if (method === 'GET' && prefetched.has(path)) {
    const early = prefetched.get(path);
    prefetched.delete(path);
    return early;
  }
  return call(method, path, body);
}

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = session.csrf || '';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    location.assign('/login?error=expired');
    throw new ApiError(401, 'session_ended', 'the session has ended');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { code: 'bad_answer', message: text.slice(0, 200) }; }
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.code || String(response.status), data?.message || response.statusText);
  }
  return data;
}

export function can(role) {
  return ROLES.indexOf(session.role) >= ROLES.indexOf(role);
}

export function toast(message) {
  const el = document.getElementById('toast');
  el.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.textContent = ''; }, 6000);
}

// "3 s", "4 min", "2 h", "5 d".
export function age(ms) {
  if (ms === null || ms === undefined) return 'never';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

export function when(ms) {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

const ctx = { api, h, can, toast, age, when, session, ApiError };
let current = null; // { name, refresh }

function route() {
  const name = (location.hash.replace(/^#\/?/, '').split('/')[0]) || 'matrix';
  return VIEWS[name] ? name : 'matrix';
}

async function show() {
  const name = route();
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const main = document.getElementById('main');
  const view = VIEWS[name];
  const token = {};
  current = { name, token, refresh: null };
  try {
    const built = await view(ctx);
    if (current.token !== token) return; // another view was chosen meanwhile
    main.replaceChildren(built.el);
    current.refresh = built.refresh || null;
    current.tick = built.tick || null;
    document.title = `${built.title} · osmesh`;
    // For tests and for the curious: when the first view was on screen.
    if (!performance.getEntriesByName('osmesh:first-view').length) performance.mark('osmesh:first-view');
  } catch (err) {
    if (current.token !== token) return;
    main.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Cannot show this view: ${err.message}`));
  }
}

// Server-sent events: on every change of the mesh the current view refreshes itself.
function listen() {
  const live = document.getElementById('live');
  const events = new EventSource('/ui/events');
  let refreshing = false;
  let again = false;
  const refresh = async () => {
    if (!current?.refresh) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    try { await current.refresh(); } catch (err) { toast(`Refresh failed: ${err.message}`); }
    refreshing = false;
    if (again) { again = false; refresh(); }
  };
  events.addEventListener('open', () => {
    live.textContent = 'live';
    live.classList.remove('down');
  });
  events.addEventListener('mesh', (event) => {
    const { version } = JSON.parse(event.data);
    live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    live.classList.remove('down');
    live.dataset.version = String(version);
    refresh();
  });
  events.addEventListener('ended', () => {
    events.close();
    location.assign('/login?error=expired');
  });
  events.addEventListener('error', () => {
    live.textContent = 'reconnecting…';
    live.classList.add('down');
  });
}

async function start() {
  if (route() === 'matrix') {
    // The matrix's reads go out beside the session's, not after it.
    for (const path of ['/api/v1/osystems', '/api/v1/settings']) {
      const early = call('GET', path);
      early.catch(() => {}); // a failure is seen where the view awaits it
      prefetched.set(path, early);
    }
  }
  const me = await api('GET', '/ui/session');
  Object.assign(session, me);
  document.getElementById('who').textContent = `${me.name} (${me.role})`;
  for (const a of document.querySelectorAll('#nav a[data-role]')) {
    if (!can(a.dataset.role)) a.parentElement.remove();
  }
  document.getElementById('logout').addEventListener('click', async () => {
    await api('POST', '/ui/logout');
    location.assign('/login');
  });
  window.addEventListener('hashchange', show);
  // Ages shown keep moving between changes (no request: the view redraws what it holds).
  setInterval(() => { if (current?.tick && !document.hidden) current.tick(); }, 5000);
  await show();
  listen();
}

start().catch((err) => {
  if (!(err instanceof ApiError && err.status === 401)) {
    document.getElementById('main').replaceChildren(
      h('p', { class: 'error', role: 'alert' }, `Cannot start: ${err.message}`));
  }
});
