// The views. Each is `async (ctx) => ({ el, title, refresh })`: `el` is shown, `refresh()` is
// called on every live change of the mesh and redraws the parts that show it, keeping what
// the user typed, chose and paged to.

const COLUMNS_PER_PAGE = 12;
const ROWS_PER_PAGE = 50;

// Kept across refreshes and view changes.
const ui = {
  matrix: { clusterFilter: '', osFilter: '', page: 0 },
  clusters: { filter: '', page: 0 },
  nodes: { filter: '' },
};

function field(h, id, label, control, help) {
  return h('div', {}, h('label', { for: id }, label), control, help ? h('span', { class: 'help', id: `${id}-help` }, help) : null);
}

function problem(h, err) {
  return h('p', { class: 'error', role: 'alert' }, `${err.message}${err.code ? ` (${err.code})` : ''}`);
}

// A pager over `total` items: "Clusters 1–12 of 1,000", previous / next.
function pager(h, label, state, total, perPage, onChange) {
  const pages = Math.max(1, Math.ceil(total / perPage));
  state.page = Math.min(state.page, pages - 1);
  const first = total === 0 ? 0 : state.page * perPage + 1;
  const last = Math.min(total, (state.page + 1) * perPage);
  const id = label.toLowerCase().replace(/[^a-z]+/g, '-');
  // The buttons are drawn anew on every move: keep the keyboard focus on the one pressed.
  const move = (delta, which) => () => {
    state.page += delta;
    onChange();
    const again = document.getElementById(`${id}-${which}`);
    if (again && !again.disabled) again.focus();
  };
  return h('div', { class: 'pager', role: 'group', 'aria-label': `${label} pages` },
    h('button', { type: 'button', class: 'secondary', id: `${id}-prev`, disabled: state.page === 0,
      onclick: move(-1, 'prev') }, '‹ Previous'),
    h('span', { 'aria-live': 'polite' }, `${label} ${first}–${last} of ${total.toLocaleString('en')}`),
    h('button', { type: 'button', class: 'secondary', id: `${id}-next`, disabled: state.page >= pages - 1,
      onclick: move(1, 'next') }, 'Next ›'));
}

function includes(list, id) {
  return Array.isArray(list) && list.includes(id);
}

// Per arch, the purposes `cluster` holds in an availability map.
function holdings(availability, cluster) {
  const out = [];
  for (const [arch, byCluster] of Object.entries(availability || {})) {
    if (byCluster[cluster]) out.push([arch, byCluster[cluster]]);
  }
  return out;
}

function reason(noAnswer) {
  if (!noAnswer) return '';
  if (typeof noAnswer === 'string') return noAnswer === 'NotConnected' ? 'not connected' : noAnswer === 'Timeout' ? 'timed out' : noAnswer;
  if (noAnswer.Error !== undefined) return `error: ${noAnswer.Error}`;
  return JSON.stringify(noAnswer);
}

function clusterState(ctx, part) {
  const { h, age, when } = ctx;
  if (part.connected) {
    return h('span', { class: 'state-connected' }, 'connected');
  }
  const since = part.disconnected_since_ms;
  return h('span', { class: 'state-disconnected' },
    since ? `disconnected since ${when(since)} (${age(Date.now() - since)})` : 'disconnected');
}

// ---- mesh matrix -----------------------------------------------------------------------------

async function matrix(ctx) {
  const { h, api, age } = ctx;
  const st = ui.matrix;
  const el = h('section', { 'aria-labelledby': 'matrix-title' });
  const summary = h('p', { id: 'matrix-summary' });
  // Scrolls sideways on narrow screens: focusable, so the keyboard can scroll it too.
  const table = h('div', { class: 'matrix-wrap', id: 'matrix-wrap', tabindex: 0, role: 'region', 'aria-label': 'Matrix' });
  const conflicts = h('div', { id: 'conflicts' });
  let data = null;
  let settings = {};

  const clusterFilter = h('input', { id: 'cluster-filter', type: 'search', value: st.clusterFilter,
    oninput: (e) => { st.clusterFilter = e.target.value; st.page = 0; draw(); } });
  const osFilter = h('input', { id: 'os-filter', type: 'search', value: st.osFilter,
    oninput: (e) => { st.osFilter = e.target.value; draw(); } });
  const pagerSlot = h('div', {});

  el.append(
    h('h1', { id: 'matrix-title' }, 'Mesh: what every cluster can install'),
    summary,
    h('div', { class: 'controls' },
      field(h, 'cluster-filter', 'Clusters', clusterFilter),
      field(h, 'os-filter', 'OS or release', osFilter),
      pagerSlot),
    h('p', { class: 'help' },
      'Each cell: available (images held, per architecture, with their purposes), supported ',
      '(listed, no images), last known (the cluster is not answering; its last report, with its age), or —.'),
    table,
    conflicts);

  function draw() {
    if (!data) return;
    const parts = [...data.clusters].sort((a, b) => a.name.localeCompare(b.name) || a.cluster.localeCompare(b.cluster));
    const cf = st.clusterFilter.trim().toLowerCase();
    const shown = parts.filter((p) => !cf || p.name.toLowerCase().includes(cf) || p.cluster.toLowerCase().includes(cf));
    pagerSlot.replaceChildren(pager(h, 'Clusters', st, shown.length, COLUMNS_PER_PAGE, draw));
    const cols = shown.slice(st.page * COLUMNS_PER_PAGE, (st.page + 1) * COLUMNS_PER_PAGE);
    const view = data.view;
    const answered = view.answered.length;
    const missing = Object.entries(view.not_answered);
    summary.replaceChildren(
      `${parts.length} clusters · ${answered} answered · ${missing.length} not answering`,
      missing.length ? ` (${missing.map(([c, r]) => `${c}: ${reason(r)}`).join('; ')})` : '',
      ` · source: ${data.source}`);

    const head = h('tr', {}, h('th', { scope: 'col' }, 'OS / release'),
      cols.map((p) => h('th', { scope: 'col', class: p.connected ? '' : 'col-disconnected',
        dataset: { cluster: p.cluster } },
      h('div', {}, p.name), h('div', { class: 'col-state' }, clusterState(ctx, p)),
      h('div', { class: 'muted' }, p.age_ms === null || p.age_ms === undefined ? 'no snapshot' : `snapshot ${age(p.age_ms)} old`))));
    const bodies = [];
    const of = st.osFilter.trim().toLowerCase();
    const conflictKeys = new Set(view.conflicts.map((c) => `${c.osystem}/${c.release || ''}`));
    for (const os of view.osystems) {
      const releases = os.releases.filter((r) => !of || os.name.includes(of) || os.title.toLowerCase().includes(of)
        || r.name.toLowerCase().includes(of) || r.title.toLowerCase().includes(of));
      if (!releases.length) continue;
      const rows = [h('tr', {}, h('th', { scope: 'rowgroup', class: 'os', colspan: cols.length + 1 },
        `${os.title} (${os.name})`,
        os.default_release ? h('span', { class: 'badge default' }, `default release: ${os.default_release}`) : null,
        os.default_commissioning_release ? h('span', { class: 'badge default' }, `commissioning: ${os.default_commissioning_release}`) : null,
        settings.default_osystem === os.name ? h('span', { class: 'badge default' }, 'region default OS') : null,
        conflictKeys.has(`${os.name}/`) ? h('span', { class: 'badge conflict' }, 'conflict') : null,
        h('span', { class: 'muted' }, ` · supported by ${os.supported_by.length}`)))];
      for (const r of releases) {
        const badges = [
          r.name === os.default_release ? h('span', { class: 'badge default' }, 'default') : null,
          settings.default_osystem === os.name && settings.default_distro_series === r.name ? h('span', { class: 'badge default' }, 'region default') : null,
          r.requires_license_key ? h('span', { class: 'badge key' }, 'needs key') : null,
          r.end_of_life ? h('span', { class: 'badge bad' }, 'end of life') : null,
          conflictKeys.has(`${os.name}/${r.name}`) ? h('span', { class: 'badge conflict' }, 'conflict') : null,
        ];
        rows.push(h('tr', { dataset: { release: `${os.name}/${r.name}` } },
          h('th', { scope: 'row' }, r.title || r.name, h('span', { class: 'muted' }, ` ${r.name}`), badges),
          cols.map((p) => cell(ctx, r, p))));
      }
      bodies.push(h('tbody', {}, rows));
    }
    table.replaceChildren(h('table', { class: 'matrix', id: 'matrix' },
      h('caption', { class: 'sr-only' }, 'Operating systems and releases by cluster'),
      h('thead', {}, head), bodies));
    conflicts.replaceChildren(
      h('h2', {}, `Conflicts (${view.conflicts.length})`),
      view.conflicts.length === 0 ? h('p', { class: 'muted' }, 'The clusters agree on every field.') :
        h('ul', {}, view.conflicts.map((c) => h('li', {},
          `${c.osystem}${c.release ? `/${c.release}` : ''} · ${c.field}: shown ${c.chosen ?? '—'}; `,
          c.values.map((v) => `${v.value ?? '—'} by ${v.clusters.join(', ')}`).join('; ')))));
  }

  async function refresh() {
    const [answer, s] = await Promise.all([api('GET', '/api/v1/osystems'), api('GET', '/api/v1/settings')]);
    data = answer;
    fetched = Date.now();
    settings = s || {};
    draw();
  }
  let fetched = Date.now();
  // Ages as of now: the fetched age plus the time since the fetch.
  const aged = () => data && data.clusters.map((p) => ({ ...p, age_ms: p.age_ms == null ? p.age_ms : p.age_ms + Date.now() - fetched }));
  const tick = () => { if (data) { const kept = data.clusters; data.clusters = aged(); draw(); data.clusters = kept; } };
  await refresh();
  return { el, title: 'Mesh', refresh, tick };
}

function cell(ctx, release, part) {
  const { h, age } = ctx;
  const id = part.cluster;
  const held = holdings(release.available, id);
  const label = (list) => list.map(([arch, purposes]) => h('div', {}, `${arch}: ${purposes.join(', ')}`));
  if (held.length) {
    return h('td', { class: 'cell-available', dataset: { cluster: id, state: 'available' } },
      h('strong', {}, 'available'), label(held));
  }
  if (includes(release.supported_by, id)) {
    return h('td', { class: 'cell-supported', dataset: { cluster: id, state: 'supported' } }, 'supported, no images');
  }
  if (includes(release.last_known_by, id)) {
    const last = holdings(release.last_known, id);
    return h('td', { class: 'cell-stale', dataset: { cluster: id, state: 'stale' } },
      h('strong', {}, 'last known'), ` (${age(part.age_ms)} old)`, label(last));
  }
  return h('td', { class: 'cell-none', dataset: { cluster: id, state: 'none' } },
    h('span', { 'aria-hidden': 'true' }, '—'), h('span', { class: 'sr-only' }, 'not listed'));
}

// ---- clusters --------------------------------------------------------------------------------

// An admin enrolls a cluster by name: the one-time token is shown here once (only its hash is
// kept), to be handed to the cluster's `clusterd --enroll-token-file`.
function enrollForm(ctx) {
  const { h, api, when } = ctx;
  const name = h('input', { id: 'enroll-name', name: 'name', required: true, autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': 'enroll-name-help' });
  const result = h('div', { id: 'enroll-result', 'aria-live': 'polite' });
  return h('form', { class: 'inline', id: 'enroll-form', 'aria-labelledby': 'enroll-title',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        const issued = await api('POST', `/api/v1/clusters/${encodeURIComponent(name.value)}/enroll`);
        const token = h('input', { id: 'enroll-token', readonly: true, value: issued.token, spellcheck: 'false',
          'aria-label': `Enrollment token for ${issued.cluster}`, onfocus: (ev) => ev.target.select() });
        result.replaceChildren(h('p', { class: 'ok' },
          `Token for ${issued.cluster}: one use, valid until ${when(issued.expires_at_ms)}. Shown once; `,
          'give it to the cluster with clusterd --enroll-token-file.'), token);
        name.value = '';
      } catch (err) { result.replaceChildren(problem(h, err)); }
    } },
  h('h2', { id: 'enroll-title' }, 'Enroll a cluster'),
  field(h, 'enroll-name', 'Cluster name', name, 'Lower-case letters, digits, ".", "_" and "-", up to 64.'),
  h('button', { type: 'submit' }, 'Enroll'), result);
}

async function clusters(ctx) {
  const { h, api, age, when, can, toast } = ctx;
  const st = ui.clusters;
  const el = h('section', {});
  const body = h('div', {});
  const pagerSlot = h('div', {});
  const filter = h('input', { id: 'clusters-filter', type: 'search', value: st.filter,
    oninput: (e) => { st.filter = e.target.value; st.page = 0; draw(); } });
  el.append(h('h1', {}, 'Clusters'), h('div', { class: 'controls' }, field(h, 'clusters-filter', 'Filter', filter), pagerSlot), body);
  if (can('admin')) el.append(enrollForm(ctx));
  let list = [];
  let parts = new Map();
  function draw() {
    const f = st.filter.trim().toLowerCase();
    const shown = list.filter((c) => !f || c.name.toLowerCase().includes(f) || c.id.toLowerCase().includes(f));
    pagerSlot.replaceChildren(pager(h, 'Clusters', st, shown.length, ROWS_PER_PAGE, draw));
    const rows = shown.slice(st.page * ROWS_PER_PAGE, (st.page + 1) * ROWS_PER_PAGE).map((c) => {
      const part = parts.get(c.id) || { connected: c.connected, disconnected_since_ms: c.disconnected_since_ms };
      return h('tr', { dataset: { cluster: c.id } },
        h('th', { scope: 'row' }, c.name), h('td', {}, c.id),
        h('td', { class: 'state' }, clusterState(ctx, { ...part, connected: c.connected, disconnected_since_ms: c.disconnected_since_ms })),
        h('td', {}, when(c.last_seen_ms)),
        h('td', {}, c.snapshot_age_ms === null ? 'no snapshot' : age(c.snapshot_age_ms)),
        h('td', {}, String(c.image_count)),
        h('td', {}, reason(part.no_answer) || '—'),
        can('admin') ? h('td', { class: 'actions' }, clusterActions(c)) : null);
    });
    const headings = ['Name', 'ID', 'State', 'Last heard', 'Snapshot age', 'Images', 'Last error'];
    if (can('admin')) headings.push('Actions');
    body.replaceChildren(h('table', { id: 'clusters' },
      h('thead', {}, h('tr', {}, headings.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
  }
  // Revoke cuts a cluster off at once (it must be enrolled again); remove forgets a
  // disconnected one and its snapshot. Both ask first: neither can be undone from here.
  function clusterActions(c) {
    const act = (what, method, path, done) => async () => {
      if (!window.confirm(`${what} cluster ${c.name} (${c.id})?`)) return;
      try { await api(method, path); toast(done); await refresh(); } catch (err) { toast(err.message); }
    };
    const id = encodeURIComponent(c.id);
    return [
      h('button', { type: 'button', class: 'secondary', 'aria-label': `Revoke ${c.id}`,
        onclick: act('Revoke', 'POST', `/api/v1/clusters/${id}/revoke`, `Revoked ${c.id}`) }, 'Revoke'),
      h('button', { type: 'button', class: 'secondary', 'aria-label': `Remove ${c.id}`, disabled: c.connected,
        title: c.connected ? 'Only a disconnected cluster can be removed' : '',
        onclick: act('Remove', 'DELETE', `/api/v1/clusters/${id}`, `Removed ${c.id}`) }, 'Remove'),
    ];
  }
  async function refresh() {
    const [cs, answer] = await Promise.all([api('GET', '/api/v1/clusters'), api('GET', '/api/v1/osystems')]);
    list = [...cs].sort((a, b) => a.name.localeCompare(b.name));
    parts = new Map(answer.clusters.map((p) => [p.cluster, p]));
    draw();
  }
  await refresh();
  return { el, title: 'Clusters', refresh };
}

// ---- nodes -----------------------------------------------------------------------------------

// Every (OS, release, arch) the mesh can serve now: a connected cluster holds an install image
// for it, a ready node of that arch sits on such a cluster, and a key exists where one is needed.
function servable(view, parts, nodes, keys) {
  const connected = new Set(parts.filter((p) => p.connected).map((p) => p.cluster));
  const keyed = new Set(keys.map((k) => `${k.osystem}/${k.distro_series}`));
  const out = [];
  for (const os of view.osystems) {
    for (const r of os.releases) {
      if (r.requires_license_key && !keyed.has(`${os.name}/${r.name}`)) continue;
      for (const [arch, byCluster] of Object.entries(r.available)) {
        const clusters = Object.entries(byCluster)
          .filter(([c, purposes]) => connected.has(c) && (purposes.includes('install') || purposes.includes('xinstall')))
          .map(([c]) => c);
        const ready = nodes.filter((n) => n.status === 'ready' && n.arch === arch && clusters.includes(n.cluster));
        if (ready.length) out.push({ osystem: os.name, release: r.name, title: r.title || r.name, arch, ready: ready.length });
      }
    }
  }
  return out;
}

async function nodes(ctx) {
  const { h, api, when, can, toast } = ctx;
  const st = ui.nodes;
  const el = h('section', {});
  const tableSlot = h('div', {});
  const allocSlot = h('div', {});
  const enlistSlot = h('div', {});
  const filter = h('input', { id: 'nodes-filter', type: 'search', value: st.filter,
    oninput: (e) => { st.filter = e.target.value; drawTable(); } });
  el.append(h('h1', {}, 'Nodes'), allocSlot, enlistSlot,
    h('div', { class: 'controls' }, field(h, 'nodes-filter', 'Filter', filter, 'hostname, cluster, arch, status or OS')),
    tableSlot);
  let data = { nodes: [], view: null, parts: [], keys: [], clusters: [] };

  function drawTable() {
    const f = st.filter.trim().toLowerCase();
    const shown = data.nodes.filter((n) => !f || [n.hostname, n.cluster, n.arch, n.status, n.osystem, n.distro_series, n.system_id]
      .some((v) => v && String(v).toLowerCase().includes(f)));
    tableSlot.replaceChildren(h('table', { id: 'nodes' },
      h('caption', { class: 'muted' }, `${shown.length} of ${data.nodes.length} nodes`),
      h('thead', {}, h('tr', {}, ['Hostname', 'System id', 'Cluster', 'Arch', 'Status', 'OS', 'Allocated', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, shown.map((n) => h('tr', { dataset: { node: n.hostname } },
        h('th', { scope: 'row' }, n.hostname), h('td', {}, n.system_id || '—'), h('td', {}, n.cluster),
        h('td', {}, `${n.arch}/${n.subarch}`), h('td', { class: 'status' }, n.status),
        h('td', {}, n.osystem ? `${n.osystem}/${n.distro_series}` : '—'), h('td', {}, when(n.allocated_at_ms)),
        h('td', {}, n.status === 'allocated' && can('operator') ? h('button', { type: 'button', class: 'secondary',
          'aria-label': `Release ${n.hostname}`,
          onclick: async () => {
            try { await api('POST', `/api/v1/nodes/${n.id}/release`); toast(`Released ${n.hostname}`); await refresh(); } catch (err) { toast(err.message); }
          } }, 'Release') : null))))));
  }

  function drawForms() {
    if (!can('operator')) {
      allocSlot.replaceChildren(h('p', { class: 'muted' }, 'Allocation and enlistment need the operator role.'));
      return;
    }
    const choices = servable(data.view, data.parts, data.nodes, data.keys);
    const previous = document.getElementById('alloc-choice')?.value;
    const select = h('select', { id: 'alloc-choice', name: 'choice', required: true, 'aria-describedby': 'alloc-choice-help' },
      choices.map((c) => h('option', { value: `${c.osystem}|${c.release}|${c.arch}`, selected: `${c.osystem}|${c.release}|${c.arch}` === previous },
        `${c.title} (${c.osystem}/${c.release}) · ${c.arch} · ${c.ready} ready`)));
    const message = h('div', { id: 'alloc-result', 'aria-live': 'polite' });
    const form = h('form', { class: 'inline', id: 'allocate-form', 'aria-labelledby': 'alloc-title',
      onsubmit: async (e) => {
        e.preventDefault();
        const [osystem, distro_series, arch] = select.value.split('|');
        try {
          const node = await api('POST', '/api/v1/nodes/allocate', { osystem, distro_series, arch });
          message.replaceChildren(h('p', { class: 'ok' }, `Allocated ${node.hostname} on ${node.cluster}: ${node.osystem}/${node.distro_series}`));
          await refresh();
        } catch (err) { message.replaceChildren(problem(h, err)); }
      } },
    h('h2', { id: 'alloc-title' }, 'Allocate'),
    field(h, 'alloc-choice', 'OS, release and arch', select,
      choices.length ? 'Only what a connected cluster holding an install image can serve to a ready node.' : 'Nothing can be served now: no ready node sits on a connected cluster holding an install image.'),
    h('button', { type: 'submit', disabled: !choices.length }, 'Allocate'), message);
    allocSlot.replaceChildren(form);

    if (enlistSlot.firstChild) { // keep what is being typed; refresh the cluster list only
      const cs = document.getElementById('enlist-cluster');
      const keep = cs.value;
      cs.replaceChildren(...clusterOptions(keep));
      return;
    }
    const arches = [...new Set(data.view.osystems.flatMap((os) => os.releases.flatMap((r) => Object.keys(r.available))))].sort();
    const result = h('div', { id: 'enlist-result', 'aria-live': 'polite' });
    const enlist = h('form', { class: 'inline', id: 'enlist-form', 'aria-labelledby': 'enlist-title',
      onsubmit: async (e) => {
        e.preventDefault();
        const f = new FormData(enlist);
        try {
          const node = await api('POST', '/api/v1/nodes', { hostname: f.get('hostname'), arch: f.get('arch'), cluster: f.get('cluster') });
          result.replaceChildren(h('p', { class: 'ok' }, `Enlisted ${node.hostname} on ${node.cluster}`));
          enlist.reset();
          await refresh();
        } catch (err) { result.replaceChildren(problem(h, err)); }
      } },
    h('h2', { id: 'enlist-title' }, 'Enlist a node'),
    field(h, 'enlist-hostname', 'Hostname', h('input', { id: 'enlist-hostname', name: 'hostname', required: true, maxlength: 63 })),
    field(h, 'enlist-arch', 'Arch', h('select', { id: 'enlist-arch', name: 'arch' }, (arches.length ? arches : ['amd64']).map((a) => h('option', { value: a }, a)))),
    field(h, 'enlist-cluster', 'Cluster', h('select', { id: 'enlist-cluster', name: 'cluster' }, clusterOptions())),
    h('button', { type: 'submit' }, 'Enlist'), result);
    enlistSlot.replaceChildren(enlist);
  }

  function clusterOptions(keep) {
    return data.clusters.map((c) => h('option', { value: c.id, selected: c.id === keep }, `${c.name}${c.connected ? '' : ' (disconnected)'}`));
  }

  async function refresh() {
    const [ns, answer, keys, cs] = await Promise.all([
      api('GET', '/api/v1/nodes'), api('GET', '/api/v1/osystems'), api('GET', '/api/v1/license-keys'), api('GET', '/api/v1/clusters')]);
    data = { nodes: ns, view: answer.view, parts: answer.clusters, keys, clusters: [...cs].sort((a, b) => a.name.localeCompare(b.name)) };
    drawForms();
    drawTable();
  }
  await refresh();
  return { el, title: 'Nodes', refresh };
}

// ---- license keys ----------------------------------------------------------------------------

async function licenseKeys(ctx) {
  const { h, api, when, can, toast } = ctx;
  const el = h('section', {});
  const tableSlot = h('div', {});
  const formSlot = h('div', {});
  el.append(h('h1', {}, 'License keys'),
    h('p', { class: 'help' }, 'Keys are write-only: only their last characters are ever shown. Each was validated by one connected cluster that holds the release.'),
    formSlot, tableSlot);
  let view = null;
  let keys = [];
  function drawTable() {
    tableSlot.replaceChildren(h('table', { id: 'license-keys' },
      h('thead', {}, h('tr', {}, ['OS', 'Release', 'Key', 'Validated by', 'Validated', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, keys.map((k) => h('tr', { dataset: { key: `${k.osystem}/${k.distro_series}` } },
        h('th', { scope: 'row' }, k.osystem), h('td', {}, k.distro_series), h('td', { class: 'masked' }, k.license_key),
        h('td', { class: 'validator' }, k.validated_by), h('td', {}, when(k.validated_at_ms)),
        h('td', {}, can('admin') ? h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete the key of ${k.osystem}/${k.distro_series}`,
          onclick: async () => {
            try { await api('DELETE', `/api/v1/license-keys/${encodeURIComponent(k.osystem)}/${encodeURIComponent(k.distro_series)}`); toast('Key deleted'); await refresh(); } catch (err) { toast(err.message); }
          } }, 'Delete') : null))))));
  }
  function drawForm() {
    if (!can('admin')) { formSlot.replaceChildren(h('p', { class: 'muted' }, 'Adding keys needs the admin role.')); return; }
    if (formSlot.firstChild) return;
    const needing = view.osystems.flatMap((os) => os.releases.filter((r) => r.requires_license_key)
      .map((r) => ({ os: os.name, release: r.name, title: r.title || r.name })));
    const release = h('select', { id: 'key-release', name: 'release' },
      needing.map((r) => h('option', { value: `${r.os}|${r.release}` }, `${r.title} (${r.os}/${r.release})`)));
    const key = h('input', { id: 'key-value', name: 'license_key', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
    const result = h('div', { id: 'key-result', 'aria-live': 'polite' });
    const form = h('form', { class: 'inline', id: 'key-form', 'aria-labelledby': 'key-title',
      onsubmit: async (e) => {
        e.preventDefault();
        const [osystem, distro_series] = release.value.split('|');
        try {
          const added = await api('POST', '/api/v1/license-keys', { osystem, distro_series, license_key: key.value });
          key.value = '';
          const refused = Object.entries(added.refused_by || {});
          result.replaceChildren(h('p', { class: 'ok' }, `Key for ${added.osystem}/${added.distro_series} validated by ${added.validated_by}`,
            refused.length ? ` (refused first by ${refused.map(([c, why]) => `${c}: ${why}`).join('; ')})` : ''));
          await refresh();
        } catch (err) { result.replaceChildren(problem(h, err)); }
      } },
    h('h2', { id: 'key-title' }, 'Add a key'),
    field(h, 'key-release', 'Release', release),
    field(h, 'key-value', 'Key', key, 'Sent once to a validating cluster, then stored; never shown again.'),
    h('button', { type: 'submit', disabled: !needing.length }, 'Add and validate'), result);
    formSlot.replaceChildren(form);
  }
  async function refresh() {
    const [answer, ks] = await Promise.all([api('GET', '/api/v1/osystems'), api('GET', '/api/v1/license-keys')]);
    view = answer.view;
    keys = ks;
    drawForm();
    drawTable();
  }
  await refresh();
  return { el, title: 'License keys', refresh };
}

// ---- settings --------------------------------------------------------------------------------

async function settingsView(ctx) {
  const { h, api, can } = ctx;
  const el = h('section', {});
  const [answer, current] = await Promise.all([api('GET', '/api/v1/osystems'), api('GET', '/api/v1/settings')]);
  const view = answer.view;
  const osSelect = h('select', { id: 'set-os', name: 'default_osystem', disabled: !can('operator') },
    h('option', { value: '' }, '(none)'),
    view.osystems.map((os) => h('option', { value: os.name, selected: current.default_osystem === os.name }, `${os.title} (${os.name})`)));
  const releaseSelect = h('select', { id: 'set-release', name: 'default_distro_series', disabled: !can('operator') });
  const commSelect = h('select', { id: 'set-commissioning', name: 'commissioning_distro_series', disabled: !can('operator') },
    h('option', { value: '' }, '(none)'),
    view.osystems.flatMap((os) => os.releases.filter((r) => r.can_commission && !r.end_of_life)
      .map((r) => h('option', { value: r.name, selected: current.commissioning_distro_series === r.name }, `${r.title || r.name} (${os.name}/${r.name})`))));
  const fillReleases = () => {
    const os = view.osystems.find((o) => o.name === osSelect.value);
    const keep = releaseSelect.value || current.default_distro_series;
    releaseSelect.replaceChildren(h('option', { value: '' }, '(none)'),
      (os ? os.releases : []).map((r) => h('option', { value: r.name, selected: r.name === keep },
        `${r.title || r.name}${Object.keys(r.available).length ? '' : ' (no images on a connected cluster)'}`)));
  };
  osSelect.addEventListener('change', fillReleases);
  fillReleases();
  const result = h('div', { id: 'settings-result', 'aria-live': 'polite' });
  const form = h('form', { class: 'inline', id: 'settings-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = {
        default_osystem: osSelect.value || null,
        default_distro_series: releaseSelect.value || null,
        commissioning_distro_series: commSelect.value || null,
      };
      try {
        await api('PUT', '/api/v1/settings', body);
        result.replaceChildren(h('p', { class: 'ok' }, 'Saved.'));
      } catch (err) { result.replaceChildren(problem(h, err)); }
    } },
  field(h, 'set-os', 'Default OS', osSelect),
  field(h, 'set-release', 'Default release', releaseSelect),
  field(h, 'set-commissioning', 'Commissioning release', commSelect),
  can('operator') ? h('button', { type: 'submit' }, 'Save') : h('span', { class: 'muted' }, 'Changing settings needs the operator role.'),
  result);
  el.append(h('h1', {}, 'Settings'), h('p', { class: 'help' }, 'Choices come from the mesh; the region refuses a default that no connected cluster holds, and says why here.'), form);
  return { el, title: 'Settings' };
}

// ---- preseeds --------------------------------------------------------------------------------

// A line diff (longest common subsequence), as [kind, line] with kind ' ', '+' or '-'.
export function diffLines(a, b) {
  const x = a.split('\n');
  const y = b.split('\n');
  if (x.length * y.length > 4_000_000) return [['-', '(too long to compare here)']];
  const n = x.length;
  const m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([' ', x[i]]); i += 1; j += 1; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) { out.push(['-', x[i]]); i += 1; }
    else { out.push(['+', y[j]]); j += 1; }
  }
  while (i < n) { out.push(['-', x[i]]); i += 1; }
  while (j < m) { out.push(['+', y[j]]); j += 1; }
  return out;
}

function diffView(h, a, b) {
  const cls = { ' ': 'same', '+': 'add', '-': 'del' };
  return h('pre', { class: 'diff', tabindex: 0, 'aria-label': 'Differences' },
    diffLines(a, b).map(([k, line]) => h('span', { class: cls[k] }, `${k} ${line}`)));
}

// Each cluster's templates: a name a cluster ships for the first time serves no node until an
// admin approves it, and then only that cluster's nodes.
async function clusterTemplates(ctx) {
  const { h, api, when, can, toast } = ctx;
  const rows = await api('GET', '/api/v1/cluster-templates');
  const pending = rows.filter((t) => t.state === 'pending').length;
  const decide = (t, verb) => async () => {
    try {
      await api('POST', `/api/v1/cluster-templates/${encodeURIComponent(t.cluster)}/${encodeURIComponent(t.name)}/${verb}`);
      toast(`${t.cluster}/${t.name}: ${verb === 'approve' ? 'approved' : 'refused'}`);
      location.reload();
    } catch (err) { toast(err.message); }
  };
  const buttons = (t) => (can('admin') ? [
    t.state !== 'approved' ? h('button', { type: 'button', class: 'approve', onclick: decide(t, 'approve') }, 'Approve') : null,
    t.state !== 'refused' ? h('button', { type: 'button', class: 'refuse', onclick: decide(t, 'refuse') }, 'Refuse') : null,
  ] : []);
  return h('div', { id: 'cluster-templates' },
    h('h2', {}, `Cluster templates (${pending} pending)`),
    h('p', { class: 'help' }, 'A cluster\'s template serves only that cluster\'s nodes, once an admin approved the name; an operator\'s version serves every node.'),
    h('table', {},
      h('thead', {}, h('tr', {}, ['Cluster', 'Template', 'State', 'Version', 'First seen', 'Error', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.map((t) => h('tr', { class: t.state },
        h('td', {}, t.cluster), h('th', { scope: 'row' }, t.name),
        h('td', {}, h('span', { class: `badge ${t.state}` }, t.state)),
        h('td', {}, t.version ? `v${t.version}` : '-'), h('td', {}, when(t.first_seen_ms)),
        h('td', {}, t.error || ''), h('td', {}, buttons(t)))))));
}

async function preseeds(ctx) {
  const { h, api, when, can, toast } = ctx;
  const el = h('section', {});
  const detail = h('div', { id: 'preseed-detail' });
  const list = await api('GET', '/api/v1/preseeds');
  const selected = decodeURIComponent(location.hash.split('/')[2] || '');
  el.append(h('h1', {}, 'Preseeds'),
    h('table', { id: 'preseeds' },
      h('thead', {}, h('tr', {}, ['Template', 'Version', 'Origin', 'OS', 'Updated', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, list.map((p) => h('tr', {},
        h('th', { scope: 'row' }, h('a', { href: `#/preseeds/${encodeURIComponent(p.name)}` }, p.name)),
        h('td', {}, `v${p.current.version}`),
        h('td', {}, p.current.origin_cluster ? `${p.current.origin} (${p.current.origin_cluster})` : p.current.origin),
        h('td', {}, p.current.osystem || 'any'), h('td', {}, when(p.updated_at_ms)),
        h('td', {}, p.in_conflict ? h('span', { class: 'badge conflict' }, 'conflict') : ''))))),
    await clusterTemplates(ctx),
    detail);
  if (selected) {
    const record = list.find((p) => p.name === selected);
    if (record) await showPreseed(record);
  }

  async function showPreseed(record) {
    const history = await api('GET', `/api/v1/preseeds/${encodeURIComponent(record.name)}/history?limit=100`);
    const versions = new Map(history.map((v) => [v.version, v]));
    const opts = (sel) => history.map((v) => h('option', { value: v.version, selected: v.version === sel }, `v${v.version} · ${v.origin}${v.origin_cluster ? ` ${v.origin_cluster}` : ''} · ${when(v.created_at_ms)}`));
    const last = history.length ? history[history.length - 1].version : record.current.version;
    const from = h('select', { id: 'diff-from' }, opts(Math.max(1, last - 1)));
    const to = h('select', { id: 'diff-to' }, opts(last));
    const out = h('div', { id: 'diff-out' });
    const drawDiff = () => {
      const a = versions.get(Number(from.value));
      const b = versions.get(Number(to.value));
      out.replaceChildren(a && b ? diffView(h, a.content, b.content) : h('p', {}, 'Pick two versions.'));
    };
    from.addEventListener('change', drawDiff);
    to.addEventListener('change', drawDiff);
    const parts = [h('h2', {}, `${record.name}: v${record.current.version}`), h('pre', { tabindex: 0, 'aria-label': 'Current content' }, record.current.content)];
    if (record.conflict) {
      const op = versions.get(record.conflict.operator_version);
      const cl = versions.get(record.conflict.cluster_version);
      const keep = (version) => async () => {
        try { await api('POST', `/api/v1/preseeds/${encodeURIComponent(record.name)}/resolve`, { version }); toast(`Kept v${version}`); location.reload(); } catch (err) { toast(err.message); }
      };
      parts.push(h('h2', {}, 'Conflict: the operator\'s edit and a later cluster change'),
        h('div', { class: 'side' },
          h('div', {}, h('h3', {}, `Operator v${record.conflict.operator_version}`), h('pre', {}, op ? op.content : '(not on this page)'),
            can('admin') ? h('button', { type: 'button', id: 'keep-operator', onclick: keep(record.conflict.operator_version) }, 'Keep the operator\'s') : null),
          h('div', {}, h('h3', {}, `Cluster v${record.conflict.cluster_version}`), h('pre', {}, cl ? cl.content : '(not on this page)'),
            can('admin') ? h('button', { type: 'button', id: 'keep-cluster', onclick: keep(record.conflict.cluster_version) }, 'Keep the cluster\'s') : null)));
    }
    parts.push(h('h2', {}, 'History'), h('div', { class: 'controls' }, field(h, 'diff-from', 'Compare', from), field(h, 'diff-to', 'with', to)), out);
    if (can('admin')) {
      const text = h('textarea', { id: 'preseed-edit', rows: 12, cols: 90 }, record.current.content);
      const result = h('div', { 'aria-live': 'polite' });
      parts.push(h('form', { onsubmit: async (e) => {
        e.preventDefault();
        try {
          const saved = await api('PUT', `/api/v1/preseeds/${encodeURIComponent(record.name)}`, { content: text.value, based_on_version: record.current.version });
          result.replaceChildren(h('p', { class: 'ok' }, `Saved as v${saved.current?.version ?? ''}`));
        } catch (err) { result.replaceChildren(problem(h, err)); }
      } }, h('h2', {}, 'Edit'), h('label', { for: 'preseed-edit' }, 'Template'), h('div', {}, text), h('button', { type: 'submit' }, 'Save a new version'), result));
    }
    detail.replaceChildren(...parts);
    drawDiff();
  }
  return { el, title: 'Preseeds' };
}

// ---- audit log -------------------------------------------------------------------------------

async function audit(ctx) {
  const { h, api, when, can } = ctx;
  const el = h('section', {}, h('h1', {}, 'Audit log'));
  if (!can('admin')) { el.append(h('p', {}, 'The audit log is for admins.')); return { el, title: 'Audit log' }; }
  const object = h('input', { id: 'audit-object', type: 'search' });
  const token = h('input', { id: 'audit-token', type: 'search' });
  const body = h('div', {});
  const pages = [];
  async function load(before) {
    const q = new URLSearchParams({ limit: '50' });
    if (object.value) q.set('object', object.value);
    if (token.value) q.set('token', token.value);
    if (before) q.set('before_id', String(before));
    const page = await api('GET', `/api/v1/audit?${q}`);
    body.replaceChildren(h('table', { id: 'audit' },
      h('thead', {}, h('tr', {}, ['When', 'Token', 'Role', 'Request', 'Status', 'Outcome', 'Client'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, page.entries.map((e) => h('tr', {}, h('td', {}, when(e.at_ms)), h('td', {}, e.token_name || '—'), h('td', {}, e.role || '—'),
        h('td', {}, `${e.method} ${e.object}`), h('td', {}, String(e.status)), h('td', {}, e.outcome), h('td', {}, e.client))))),
    h('div', { class: 'pager' },
      h('button', { type: 'button', class: 'secondary', disabled: !pages.length, onclick: () => load(pages.pop()) }, '‹ Newer'),
      h('button', { type: 'button', class: 'secondary', disabled: !page.next_before_id, onclick: () => { pages.push(before); load(page.next_before_id); } }, 'Older ›')));
  }
  el.append(h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); pages.length = 0; load(); } },
    field(h, 'audit-object', 'Object', object, 'e.g. /api/v1/license-keys'), field(h, 'audit-token', 'Token name', token),
    h('button', { type: 'submit' }, 'Filter')), body);
  await load();
  return { el, title: 'Audit log' };
}

export const VIEWS = {
  matrix,
  clusters,
  nodes,
  'license-keys': licenseKeys,
  settings: settingsView,
  preseeds,
  audit,
};
