// The smallest honest example of a web frontend using mdegraph.
//
// It sends one GraphQL query with fetch, as JSON, and renders the answer with
// textContent, never as HTML: device and account names come from Defender
// and must not be able to inject markup into the page.
//
// The page's Content-Security-Policy forbids inline scripts, so the server
// passes its settings in <script type="application/json" id="mdegraph-config">.
//
// One query asks for the whole graph around the device: its details, its
// logon users, the other devices each of those accounts logs on to (one
// Defender call per distinct account, however many devices it appears on),
// and its alerts.
//
// Answers can be partial and can be stale. Partial: a device comes with
// errors when one of its parts could not be fetched (its alerts, or one
// user's other devices, say); each error's path says which part, and that
// part is null. Stale: when
// Defender cannot give a fresh answer (quota spent, Defender down), mdegraph
// serves the last good one and lists it in extensions.stale, with its age;
// the page shows a "stale (N s old)" badge on that part.
'use strict';

(() => {
  // Ask for exactly the fields the page shows.
  const QUERY = `query Machine($id: ID!) {
  machine(id: $id) {
    id
    computerDnsName
    osPlatform
    healthStatus
    riskScore
    lastSeen
    logonUsers {
      id
      accountName
      accountDomain
      isDomainAdmin
      isOnlyNetworkUser
      logonTypes
      firstSeen
      lastSeen
      machines {
        id
        computerDnsName
      }
    }
    alerts(first: 20) {
      id
      title
      severity
      status
      mitreTechniques
      alertCreationTime
    }
  }
}`;

  // How many of a user's other devices a row names; the rest are counted.
  const MAX_DEVICES_SHOWN = 5;

  // How often a RATE_LIMITED answer is retried by itself before the page
  // leaves the next try to the user.
  const MAX_AUTO_RETRIES = 3;

  const config = { endpoint: '/query' };
  try {
    Object.assign(config, JSON.parse(document.getElementById('mdegraph-config').textContent));
  } catch (err) {
    console.error('example: unreadable #mdegraph-config, using /query', err);
  }

  const $ = (id) => document.getElementById(id);
  const form = $('lookup-form');
  const input = $('device-id');
  const button = $('lookup');
  const authorization = $('authorization');
  const message = $('message');
  const device = $('device');
  const users = $('users').tBodies[0];
  const noUsers = $('no-users');
  const usersUnavailable = $('users-unavailable');
  const deviceStale = $('device-stale');
  const usersStale = $('users-stale');
  const alerts = $('alerts').tBodies[0];
  const noAlerts = $('no-alerts');
  const alertsUnavailable = $('alerts-unavailable');
  const alertsStale = $('alerts-stale');

  let inFlight = null; // AbortController of the lookup under way
  let countdown = null; // interval timer of a rate-limit countdown
  let autoRetries = 0;

  // queryMachine POSTs the query and returns the HTTP status, the
  // Retry-After header and the decoded JSON body (null when the answer is
  // not JSON, such as a proxy's error page). It throws on network failure.
  async function queryMachine(id, signal) {
    const headers = {
      'Content-Type': 'application/json',
      Accept: 'application/json',
    };
    // The Authorization header goes here: when mdegraph sits behind a
    // gateway that wants an API key or a bearer token, send it with every
    // request, e.g. headers.Authorization = 'Bearer ' + token.
    const token = authorization.value.trim();
    if (token) headers.Authorization = token;

    const res = await fetch(config.endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query: QUERY, variables: { id } }),
      signal,
    });
    let body = null;
    try {
      body = await res.json();
    } catch {
      // Not JSON; reported below from the status.
    }
    return { status: res.status, retryAfter: res.headers.get('Retry-After'), body };
  }

  async function lookup(rawID, isAutoRetry) {
    stopCountdown();
    if (!isAutoRetry) autoRetries = 0;
    if (inFlight) inFlight.abort();
    clearDevice();

    const id = rawID.trim();
    if (id === '') {
      fail('bad-input', '', 'Enter a device id (40 hex digits) or a computer DNS name.');
      return;
    }

    const ctrl = new AbortController();
    inFlight = ctrl;
    setState('loading');
    let answer;
    try {
      answer = await queryMachine(id, ctrl.signal);
    } catch (err) {
      if (ctrl.signal.aborted) return; // a newer lookup replaced this one
      inFlight = null;
      fail('network', '', `Network error: could not reach ${config.endpoint} (${err.message}). Check your connection and that the server is running.`);
      return;
    }
    if (ctrl.signal.aborted) return;
    inFlight = null;
    show(id, answer);
  }

  function show(id, { status, retryAfter, body }) {
    if (body === null || typeof body !== 'object') {
      fail('error', '', `Unexpected answer from the server (HTTP ${status}).`);
      return;
    }
    const errors = Array.isArray(body.errors) ? body.errors : [];
    const machine = body.data ? body.data.machine : null;
    if (machine) {
      renderDevice(machine);
      showStale(body.extensions);
    }
    if (errors.length > 0 && machine) {
      // A partial answer: the device is there, and each error's path names
      // the part that could not be fetched (that part is null).
      partial(errors, machine);
    } else if (errors.length > 0) {
      showError(id, errors, retryAfter);
    } else if (!machine) {
      fail('not-found', 'NOT_FOUND', notFound(id));
    } else {
      setState('ok');
    }
  }

  // partOf names the part of the device an error or extensions.stale path
  // points at: ['machine'] its details, ['machine', 'logonUsers'] its users,
  // ['machine', 'logonUsers', i, 'machines'] user i's other devices,
  // ['machine', 'alerts'] its alerts.
  function partOf(path) {
    if (!Array.isArray(path) || path.length < 2) return { kind: 'details' };
    if (path[1] === 'alerts') return { kind: 'alerts' };
    if (path[1] === 'logonUsers' && path.length >= 4 && path[3] === 'machines') return { kind: 'user-machines', index: path[2] };
    return { kind: 'users' };
  }

  // showStale puts a "stale (N s old)" badge on each part of the device
  // that extensions.stale lists.
  function showStale(extensions) {
    const stale = extensions && Array.isArray(extensions.stale) ? extensions.stale : [];
    for (const s of stale) {
      if (!s || !Array.isArray(s.path)) continue;
      const part = partOf(s.path);
      let badge = { details: deviceStale, users: usersStale, alerts: alertsStale }[part.kind];
      if (part.kind === 'user-machines') {
        const cell = users.rows[part.index] && users.rows[part.index].querySelector('[data-testid="user-machines"]');
        if (!cell) continue;
        badge = document.createElement('span');
        badge.className = 'stale';
        badge.dataset.testid = 'user-machines-stale';
        cell.append(badge);
      }
      const age = Number.isFinite(s.ageSeconds) ? s.ageSeconds : '?';
      badge.textContent = `stale (${age} s old)`;
      badge.title = `Defender could not give a fresh answer (${s.reason}); this is the last good one, ${age} s old.`;
      badge.dataset.reason = String(s.reason);
      badge.hidden = false;
    }
  }

  // partial says which parts of a device could not be fetched, and why.
  function partial(errors, machine) {
    const lines = errors.map((e) => {
      const part = partOf(e.path);
      const user = part.kind === 'user-machines' && Array.isArray(machine.logonUsers) ? machine.logonUsers[part.index] : null;
      const what = {
        details: "The device's details",
        users: 'The logged-on users',
        alerts: 'The alerts',
        'user-machines': `The other devices of ${user ? user.accountName : 'a user'}`,
      }[part.kind];
      const ext = e.extensions || {};
      const why = ext.code === 'RATE_LIMITED' && Number.isFinite(Number(ext.retryAfter))
        ? `Defender's rate limit is reached; retry in ${Math.max(1, Math.ceil(Number(ext.retryAfter)))} s`
        : String(e.message || 'unknown error');
      return `${what} could not be fetched: ${why}.`;
    });
    const first = errors[0].extensions || {};
    setState('partial');
    message.dataset.kind = 'partial';
    message.dataset.code = typeof first.code === 'string' ? first.code : '';
    message.textContent = lines.join(' ');
    message.hidden = false;
  }

  const notFound = (id) => `No device with id “${id}” in Defender.`;

  function showError(id, errors, retryAfterHeader) {
    const first = errors[0] || {};
    const ext = first.extensions || {};
    const code = typeof ext.code === 'string' ? ext.code : '';
    const text = typeof first.message === 'string' ? first.message : 'unknown error';
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
    switch (code) {
      case 'NOT_FOUND':
        fail('not-found', code, notFound(id));
        break;
      case 'RATE_LIMITED':
        rateLimited(id, ext.retryAfter ?? retryAfterHeader);
        break;
      case 'BAD_USER_INPUT':
        fail('bad-input', code, `“${id}” is not a valid device id: ${text}`);
        break;
      case 'FORBIDDEN':
        fail('forbidden', code, `Access denied: ${text}`);
        break;
      case 'UPSTREAM_UNAUTHORIZED':
        fail('upstream', code, `mdegraph could not sign in to Defender: ${text}`);
        break;
      case 'UPSTREAM_UNAVAILABLE':
        fail('upstream', code, `Defender is unavailable right now; try again later. (${text})`);
        break;
      default:
        fail('error', code, `Error${code ? ` ${code}` : ''}: ${text}${more}`);
    }
  }

  // rateLimited shows "retry in N s" counting down, and looks the device up
  // again when it reaches zero, MAX_AUTO_RETRIES times in a row at most.
  function rateLimited(id, retryAfter) {
    const wait = Math.ceil(Number(retryAfter));
    if (retryAfter === null || retryAfter === undefined || retryAfter === '' || !Number.isFinite(wait)) {
      fail('rate-limited', 'RATE_LIMITED', "Defender's rate limit is reached; retry later.");
      return;
    }
    let seconds = Math.max(1, wait);
    const auto = autoRetries < MAX_AUTO_RETRIES;
    const text = () =>
      `Defender's rate limit is reached; retry in ${seconds} s.` + (auto ? ' The page retries by itself.' : '');
    fail('rate-limited', 'RATE_LIMITED', text());
    message.dataset.retryAfter = String(seconds);
    countdown = setInterval(() => {
      seconds -= 1;
      message.dataset.retryAfter = String(seconds);
      if (seconds > 0) {
        message.textContent = text();
        return;
      }
      stopCountdown();
      if (auto) {
        autoRetries += 1;
        lookup(id, true);
      } else {
        message.textContent = "Defender's rate limit was reached; you can retry now.";
      }
    }, 1000);
  }

  function stopCountdown() {
    if (countdown !== null) clearInterval(countdown);
    countdown = null;
  }

  function renderDevice(m) {
    $('device-name').textContent = m.computerDnsName || m.id || '(unnamed device)';
    $('device-value-id').textContent = text(m.id);
    $('device-os').textContent = text(m.osPlatform);
    $('device-health').textContent = text(m.healthStatus);
    $('device-risk').textContent = text(m.riskScore);
    $('device-last-seen').replaceChildren(time(m.lastSeen));

    // null: the logon users could not be fetched (an error says why);
    // []: Defender reports none.
    const list = Array.isArray(m.logonUsers) ? m.logonUsers : [];
    users.replaceChildren(...list.map((u) => userRow(u, m.id)));
    usersUnavailable.hidden = m.logonUsers !== null;
    noUsers.hidden = m.logonUsers === null || list.length > 0;

    // null: the alerts could not be fetched; []: Defender reports none.
    const alertList = Array.isArray(m.alerts) ? m.alerts : [];
    alerts.replaceChildren(...alertList.map(alertRow));
    alertsUnavailable.hidden = m.alerts !== null;
    noAlerts.hidden = m.alerts === null || alertList.length > 0;
    device.hidden = false;
  }

  // otherDevices is the cell naming the devices an account logs on to,
  // besides this one: the first few by name, the rest counted.
  function otherDevices(u, deviceID) {
    const cell = document.createElement('td');
    cell.dataset.testid = 'user-machines';
    if (!Array.isArray(u.machines)) {
      cell.textContent = 'could not be fetched';
      cell.dataset.unavailable = 'true';
      return cell;
    }
    const others = u.machines.filter((d) => d.id !== deviceID);
    cell.dataset.count = String(others.length);
    if (others.length === 0) {
      cell.textContent = 'none';
      return cell;
    }
    const names = others.map((d) => d.computerDnsName || d.id);
    const shown = names.slice(0, MAX_DEVICES_SHOWN).join(', ');
    const more = names.length - MAX_DEVICES_SHOWN;
    cell.textContent = more > 0 ? `${shown} and ${more} more` : shown;
    cell.title = names.join('\n');
    return cell;
  }

  function alertRow(a) {
    const tr = row('alert-row', [text(a.severity), text(a.title), text(a.status), list(a.mitreTechniques), time(a.alertCreationTime)]);
    tr.dataset.id = String(a.id);
    return tr;
  }

  function userRow(u, deviceID) {
    const tr = row('user-row', [
      text(u.accountName),
      text(u.accountDomain),
      yesNo(u.isDomainAdmin),
      yesNo(u.isOnlyNetworkUser),
      list(u.logonTypes),
      time(u.firstSeen),
      time(u.lastSeen),
    ]);
    tr.append(otherDevices(u, deviceID));
    return tr;
  }

  // row is a table row marked data-testid=testid, with one cell per content:
  // a string (set as text, never parsed as HTML) or an element.
  function row(testid, contents) {
    const tr = document.createElement('tr');
    tr.dataset.testid = testid;
    for (const content of contents) {
      const td = document.createElement('td');
      if (typeof content === 'string') td.textContent = content;
      else td.append(content);
      tr.append(td);
    }
    return tr;
  }

  const text = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));
  const list = (v) => (Array.isArray(v) && v.length > 0 ? v.join(', ') : '—');
  const yesNo = (v) => (v === true ? 'yes' : v === false ? 'no' : '—');

  // time renders a timestamp in UTC, keeping the exact value in datetime.
  function time(v) {
    const el = document.createElement('time');
    const d = typeof v === 'string' ? new Date(v) : null;
    if (d === null || Number.isNaN(d.getTime())) {
      el.textContent = text(v);
      return el;
    }
    el.dateTime = v;
    el.textContent = d.toISOString().replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC');
    return el;
  }

  function clearDevice() {
    device.hidden = true;
    users.replaceChildren();
    noUsers.hidden = true;
    usersUnavailable.hidden = true;
    alerts.replaceChildren();
    noAlerts.hidden = true;
    alertsUnavailable.hidden = true;
    for (const badge of [deviceStale, usersStale, alertsStale]) {
      badge.hidden = true;
      badge.textContent = '';
      delete badge.dataset.reason;
    }
    message.hidden = true;
    message.textContent = '';
    delete message.dataset.kind;
    delete message.dataset.code;
    delete message.dataset.retryAfter;
  }

  function fail(kind, code, text) {
    setState('error');
    message.dataset.kind = kind;
    message.dataset.code = code;
    message.textContent = text;
    message.hidden = false;
  }

  function setState(state) {
    document.body.dataset.state = state;
    const busy = state === 'loading';
    button.setAttribute('aria-busy', String(busy));
    button.textContent = busy ? 'Looking up…' : 'Look up';
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    lookup(input.value, false);
  });
})();
