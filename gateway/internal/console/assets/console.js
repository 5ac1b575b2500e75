// ArtCafe PubSub console. Plain script, no dependencies, served under
// "Content-Security-Policy: default-src 'self'": no inline code, no eval, and every
// piece of server or user data goes into the page with textContent, never as HTML.
// The token lives in the `state` object only (no web storage, no cookie): reloading
// the page forgets it.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const maxShown = 500; // messages kept on screen

  const state = {
    token: '',
    tenant: '',
    ws: null, // the open WebSocket, if any
    channel: '', // the channel the session watches
    lastSeq: 0, // last seq seen on that channel: a reconnect resumes after it
    frameId: 0,
  };

  function setStatus(text) {
    $('status').textContent = text;
  }

  function showError(text) {
    const el = $('error');
    el.textContent = text;
    el.hidden = false;
  }

  function clearError() {
    const el = $('error');
    el.textContent = '';
    el.hidden = true;
  }

  function setConnected(open) {
    $('disconnect').disabled = !open;
  }

  // api calls the REST API with the pasted credentials and returns the parsed reply,
  // or throws an Error whose message carries the status, code and detail.
  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + state.token };
    if (state.tenant) headers['X-Tenant-Id'] = state.tenant;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      throw new Error('network error: ' + e.message);
    }
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (e) {
      json = null;
    }
    if (!res.ok) {
      const code = json && json.code ? json.code : 'http_' + res.status;
      const detail = json && json.detail ? json.detail : text.slice(0, 300);
      const rid = json && json.request_id ? ' (request ' + json.request_id + ')' : '';
      throw new Error(res.status + ' ' + code + ': ' + detail + rid);
    }
    return json;
  }

  async function loadChannels(ev) {
    ev.preventDefault();
    clearError();
    disconnect();
    state.token = $('token').value.trim();
    state.tenant = $('tenant').value.trim().toLowerCase();
    const select = $('channel');
    select.replaceChildren();
    select.disabled = true;
    $('connect').disabled = true;
    $('publish').disabled = true;
    setStatus('loading channels…');
    let count = 0;
    try {
      let next = null;
      // At most 10 pages of 100: a console, not a browser for huge tenants.
      for (let page = 0; page < 10; page++) {
        const q = new URLSearchParams({ limit: '100' });
        if (next) q.set('next_token', next);
        const reply = await api('GET', '/api/v1/channels?' + q.toString());
        for (const ch of reply.channels || []) {
          const opt = document.createElement('option');
          opt.value = ch.id;
          opt.textContent = ch.name + ' (' + ch.type + ', ' + ch.id + ')';
          select.append(opt);
          count++;
        }
        next = reply.next_token;
        if (!next) break;
      }
    } catch (e) {
      setStatus('not connected');
      showError('Loading channels failed: ' + e.message);
      return;
    }
    select.disabled = count === 0;
    $('connect').disabled = count === 0;
    $('publish').disabled = count === 0;
    setStatus(count === 0 ? 'no channels in this tenant' : count + ' channel(s) loaded; pick one and connect');
  }

  function send(frame) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify(frame));
    }
  }

  function nextId() {
    state.frameId++;
    return 'c' + state.frameId;
  }

  function subscribe() {
    const frame = { type: 'subscribe', channel_id: state.channel, id: nextId() };
    if (state.lastSeq > 0) frame.since_seq = state.lastSeq; // resume without a gap
    send(frame);
  }

  // connect opens a session for the selected channel, or moves the open session to it.
  function connect() {
    clearError();
    const channel = $('channel').value;
    if (!channel) return;
    if (channel !== state.channel) state.lastSeq = 0;
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      if (state.channel && state.channel !== channel) {
        send({ type: 'unsubscribe', channel_id: state.channel, id: nextId() });
      }
      state.channel = channel;
      subscribe();
      return;
    }
    disconnect();
    state.channel = channel;
    const q = new URLSearchParams({ token: state.token });
    if (state.tenant) q.set('tenant_id', state.tenant);
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    const ws = new WebSocket(scheme + location.host + '/api/v1/ws?' + q.toString());
    state.ws = ws;
    setStatus('connecting…');
    ws.addEventListener('message', (ev) => {
      if (state.ws === ws) handleFrame(ev.data);
    });
    ws.addEventListener('close', (ev) => {
      if (state.ws !== ws) return;
      state.ws = null;
      setConnected(false);
      let why = 'closed ' + ev.code + (ev.reason ? ' ' + ev.reason : '');
      if (ev.code === 1006) why += ' (refused or lost: check the token and tenant)';
      setStatus('not connected (' + why + ')');
      if (ev.code !== 1000 && ev.code !== 1001) showError('WebSocket ' + why);
    });
  }

  function disconnect() {
    const ws = state.ws;
    state.ws = null;
    setConnected(false);
    if (ws) {
      ws.close(1000, 'bye');
      setStatus('not connected');
    }
  }

  function handleFrame(text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch (e) {
      showError('the server sent a frame that is not JSON');
      return;
    }
    switch (f.type) {
      case 'connected':
        setConnected(true);
        setStatus('connected (session ' + f.session_id + ')');
        subscribe();
        break;
      case 'subscribed':
        if (f.channel_id === state.channel) setStatus('subscribed to ' + f.channel_id + ': live');
        break;
      case 'unsubscribed':
        if (f.channel_id === state.channel) {
          setStatus('unsubscribed from ' + f.channel_id + (f.reason ? ' (' + f.reason + ')' : ''));
        }
        break;
      case 'message':
        if (f.channel_id === state.channel) showMessage(f);
        break;
      case 'error':
        showError('Server error ' + f.code + ': ' + f.detail);
        break;
      default: // pong, ack, event: nothing to show
    }
  }

  function showMessage(m) {
    if (m.seq <= state.lastSeq) return; // already shown (a resumed subscription)
    state.lastSeq = m.seq;
    const li = document.createElement('li');
    li.value = m.seq;
    const meta = document.createElement('div');
    meta.className = 'meta';
    const sender = m.sender ? m.sender.type + ' ' + m.sender.id : 'unknown sender';
    meta.textContent = '#' + m.seq + ' · ' + m.timestamp + ' · ' + sender + ' · ' + m.message_id;
    const data = document.createElement('pre');
    data.className = 'data';
    data.textContent = JSON.stringify(m.data); // text, never HTML
    li.append(meta, data);
    const list = $('messages');
    list.prepend(li);
    while (list.childElementCount > maxShown) list.lastElementChild.remove();
  }

  async function publish(ev) {
    ev.preventDefault();
    clearError();
    const channel = $('channel').value;
    const text = $('data').value;
    try {
      JSON.parse(text); // only a syntax check: the text is sent as typed
    } catch (e) {
      showError('The message is not valid JSON: ' + e.message);
      return;
    }
    $('published').textContent = 'publishing…';
    try {
      const r = await api('POST', '/api/v1/channels/' + encodeURIComponent(channel) + '/messages', text);
      $('published').textContent = 'published seq ' + r.seq + ' (' + r.message_id + ')';
    } catch (e) {
      $('published').textContent = '';
      showError('Publishing failed: ' + e.message);
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('auth-form').addEventListener('submit', loadChannels);
    $('connect').addEventListener('click', connect);
    $('disconnect').addEventListener('click', disconnect);
    $('publish-form').addEventListener('submit', publish);
    $('clear').addEventListener('click', () => $('messages').replaceChildren());
  });
})();
