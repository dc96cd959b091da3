// Confab web client: plain JavaScript, no build step, no external code.
//
// Safety rule: text that comes from users (messages, handles, titles) is only ever put into the page
// with textContent or setAttribute, never innerHTML, so a message cannot inject markup or script.
//
// Transport: a WebSocket to the user's home server (asked from /api/route) with reconnect and
// exponential backoff; when the WebSocket cannot be opened twice in a row, long polling
// (/api/poll) takes over and a WebSocket is tried again every 30 s. After every (re)connect the
// client catches up per chat from the seq up to which it holds every message (docs/chat_protocol.md,
// "Catch-up") and re-sends every message still waiting for its ack with the same clientId and
// retry: true, so the server stores it once. A live message whose prev is not the chat's cursor is
// a gap: the client syncs that chat. Seqs are decimal strings above 2^53: compared as BigInt.
"use strict";

(() => {
  const SESSION_KEY = "confab.session";
  const params = new URLSearchParams(location.search);
  // ?transport=poll forces long polling (tests and clients behind proxies that drop WebSockets).
  const forcedTransport = params.get("transport");
  const ACK_TIMEOUT_MS = 5000;
  const TYPING_SEND_EVERY_MS = 3000;
  const TYPING_SHOW_MS = 5000;
  const WS_FAILURES_BEFORE_POLLING = 2;
  const WS_PROBE_WHILE_POLLING_MS = 30000;
  const MAX_BACKOFF_MS = 15000;
  // The server's limit (docs/chat_protocol.md): Unicode scalars, which is what [...text] counts.
  const MAX_MESSAGE_SCALARS = 100000;
  const COUNT_SHOWN_FROM = 90000;
  // Messages from one sender closer together than this share one name and one time.
  const GROUP_GAP_MS = 5 * 60 * 1000;

  const $ = (id) => document.getElementById(id);

  const state = {
    session: null, // {userId, token, expiresAt}
    home: location.origin, // base URL of this user's chat server
    serverId: null,
    chats: new Map(), // chatId -> chat JSON + {activity}
    stores: new Map(), // chatId -> {byId, sorted, more, loaded, loading}
    pending: new Map(), // clientId -> {chatId, clientId, text, state, attempts, timer, error}
    readCursors: new Map(), // chatId -> Map(userId -> seq as BigInt)
    presence: new Map(), // userId -> {online, lastSeen}
    typing: new Map(), // chatId -> Map(userId -> expiry ms)
    openChatId: null,
    cursors: new Map(), // chatId -> BigInt: the seq up to which this tab holds every message
    syncing: false, // a sync request is under way
    syncAgain: false, // another one was asked for meanwhile
    lastTypingSent: 0,
  };

  const transport = {
    generation: 0, // bumped on sign-out: loops of an older generation stop
    kind: "none", // "websocket" | "polling" | "none"
    ws: null,
    wsFailures: 0,
    backoffMs: 500,
    reconnectTimer: null,
    probeTimer: null,
    polling: false,
    pollAbort: null,
    pollCursor: null,
  };

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
    get permanent() {
      return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
    }
  }

  async function api(method, path, body, options = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.session) headers.Authorization = "Bearer " + state.session.token;
    let response;
    try {
      // Signed in, every call goes to the user's home server (CORS allows it when that is not
      // the server that served the page); signing up and logging in go to the page's server.
      const base = options.base !== undefined ? options.base : state.session ? state.home : "";
      response = await fetch(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: options.signal,
      });
    } catch (e) {
      if (e && e.name === "AbortError") throw e;
      throw new ApiError(0, "network", "Cannot reach the chat server (" + (e && e.message) + ").");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!response.ok) {
      const err = (data && data.error) || {};
      const error = new ApiError(response.status, err.code || "http_" + response.status,
        err.message || response.status + " " + response.statusText);
      error.details = err;
      if (response.status === 401 && state.session && path !== "/api/login") {
        signOut("Your session ended (" + error.code + "). Log in again.", { keepUnsent: true });
      }
      throw error;
    }
    return data;
  }

  const chatPath = (chatId) => "/api/chats/" + encodeURIComponent(chatId);

  // ---------------------------------------------------------------- small helpers

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function newClientId() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // Pages served over plain http from a non-local address are not a secure context and have no
    // randomUUID; getRandomValues is there in every context.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const jitter = (ms) => Math.round(ms * (0.8 + Math.random() * 0.4));

  // Message order everywhere: the chat's seq (a decimal string; BigInt compares it exactly).
  const seqOf = (m) => { try { return BigInt(m.seq || "0"); } catch (e) { return 0n; } };
  function compareMessages(a, b) {
    const x = seqOf(a), y = seqOf(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }

  function cursorsObject() {
    const out = {};
    for (const [chatId, seq] of state.cursors) out[chatId] = seq.toString();
    return out;
  }

  /** Milliseconds since the epoch from a server time that may be in s, ms or µs. */
  function toMillis(t) {
    const n = Number(t);
    if (!isFinite(n) || n <= 0) return 0;
    if (n > 1e14) return n / 1000;
    if (n > 1e11) return n;
    return n * 1000;
  }

  function formatTime(tsMicros) {
    const d = new Date(toMillis(tsMicros));
    const now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    return sameDay ? clockTime(d) : d.toLocaleDateString([], { month: "short", day: "numeric" });
  }

  /** "9:05", not "09:05". */
  function clockTime(d) {
    return d.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  }

  function dayLabel(d) {
    const today = new Date();
    const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (d.toDateString() === today.toDateString()) return "Today";
    if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
    const options = { weekday: "long", month: "long", day: "numeric" };
    if (d.getFullYear() !== today.getFullYear()) options.year = "numeric";
    return d.toLocaleDateString([], options);
  }

  function formatAgo(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(ms).toLocaleDateString();
  }

  const memberId = (m) => (m && typeof m === "object" ? m.userId : m);

  function chatMembers(chat) {
    return (chat.members || []).map(memberId).filter(Boolean);
  }

  function chatTitle(chat) {
    if (chat.kind === "direct") {
      const other = chatMembers(chat).find((u) => u !== state.session.userId);
      return other || chat.title || "(just you)";
    }
    return chat.title || "Untitled group";
  }

  function showError(id, message) {
    const node = $(id);
    node.textContent = message || "";
    node.hidden = !message;
  }

  // ---------------------------------------------------------------- session

  function loadSession() {
    try {
      const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      if (s && s.token && s.userId && !(s.expiresAt && toMillis(s.expiresAt) < Date.now())) return s;
    } catch (_) { /* a damaged entry means signed out */ }
    sessionStorage.removeItem(SESSION_KEY);
    return null;
  }

  async function authenticate(kind, handle, password) {
    showError("auth-error", "");
    const button = $(kind === "register" ? "signup-button" : "login-button");
    button.disabled = true;
    try {
      const data = await api("POST", "/api/" + kind, { handle: handle.trim(), password });
      state.session = { userId: data.userId, token: data.token, expiresAt: data.expiresAt };
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
      // Messages left unsent when the previous session of this user ended: sent again (same
      // clientIds, retry: true) once connected.
      if (state.unsent && state.unsent.userId === data.userId) {
        for (const u of state.unsent.list) {
          state.pending.set(u.clientId, { chatId: u.chatId, clientId: u.clientId, text: u.text, state: "pending", attempts: 1, timer: null });
        }
      }
      state.unsent = null;
      enterApp();
    } catch (e) {
      showError("auth-error", e.message);
    } finally {
      button.disabled = false;
    }
  }

  /** Ends the session. When it ended by itself (token expired or refused), messages not yet
   * acknowledged are kept and sent, with their clientIds, once the same user logs in again. */
  function signOut(reason, options) {
    const keep = options && options.keepUnsent && state.session;
    const unsent = keep ? [...state.pending.values()].filter((p) => p.state === "pending") : [];
    if (keep && unsent.length) {
      state.unsent = { userId: state.session.userId, list: unsent.map((p) => ({ chatId: p.chatId, clientId: p.clientId, text: p.text })) };
      reason += " " + unsent.length + " unsent message" + (unsent.length === 1 ? "" : "s") + " will be sent when you do.";
    } else if (!keep) {
      state.unsent = null;
    }
    transport.generation += 1;
    disconnect();
    for (const p of state.pending.values()) clearTimeout(p.timer);
    state.session = null;
    state.chats.clear();
    state.stores.clear();
    state.pending.clear();
    state.readCursors.clear();
    state.presence.clear();
    state.typing.clear();
    state.openChatId = null;
    state.cursors.clear();
    state.syncing = false;
    state.syncAgain = false;
    state.home = location.origin;
    sessionStorage.removeItem(SESSION_KEY);
    $("chat-list").replaceChildren();
    clearConversation();
    $("app-view").hidden = true;
    $("auth-view").hidden = false;
    document.title = "Confab";
    showError("auth-error", reason || "");
  }

  async function enterApp() {
    $("auth-view").hidden = true;
    $("app-view").hidden = false;
    $("me").textContent = state.session.userId;
    document.title = "Confab — " + state.session.userId;
    updateNotifyButton();
    const generation = transport.generation;
    try {
      await loadChats();
    } catch (e) {
      if (generation !== transport.generation) return;
      showError("sidebar-error", e.message);
    }
    if (generation !== transport.generation) return;
    connect();
  }

  // ---------------------------------------------------------------- transport

  function setConnection(kind) {
    const node = $("connection-status");
    node.dataset.state = kind;
    node.textContent = kind === "websocket" ? "live" : kind;
  }

  function disconnect() {
    clearTimeout(transport.reconnectTimer);
    clearTimeout(transport.probeTimer);
    stopPolling();
    if (transport.ws) {
      const ws = transport.ws;
      transport.ws = null;
      ws.close(1000, "bye");
    }
    transport.kind = "none";
    setConnection("offline");
  }

  /** Asks where this user belongs: the page's server first, then the last known home (any
   * server answers, and either may be the one that died). */
  async function resolveHome() {
    const bases = [location.origin];
    if (state.home && state.home !== location.origin) bases.push(state.home);
    for (const base of bases) {
      try {
        const data = await api("GET", "/api/route?user=" + encodeURIComponent(state.session.userId), undefined, { base });
        if (data && data.server) state.home = String(data.server).replace(/\/+$/, "");
        if (data && data.serverId) state.serverId = data.serverId;
        return;
      } catch (_) { /* try the next one; the caller backs off when none answers */ }
    }
  }

  async function connect() {
    const generation = transport.generation;
    clearTimeout(transport.reconnectTimer);
    setConnection("connecting");
    await resolveHome();
    if (generation !== transport.generation || !state.session) return;
    if (forcedTransport === "poll" || transport.wsFailures >= WS_FAILURES_BEFORE_POLLING) {
      startPolling();
      scheduleProbe();
    } else {
      openWebSocket(generation);
    }
  }

  function scheduleReconnect() {
    clearTimeout(transport.reconnectTimer);
    const delay = jitter(transport.backoffMs);
    transport.backoffMs = Math.min(transport.backoffMs * 2, MAX_BACKOFF_MS);
    transport.reconnectTimer = setTimeout(connect, delay);
  }

  function scheduleProbe() {
    clearTimeout(transport.probeTimer);
    if (forcedTransport === "poll") return;
    transport.probeTimer = setTimeout(() => {
      if (transport.polling && !transport.ws) openWebSocket(transport.generation);
    }, WS_PROBE_WHILE_POLLING_MS);
  }

  function wsURL(base) {
    const u = new URL("/ws", base);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.searchParams.set("token", state.session.token);
    return u.toString();
  }

  function openWebSocket(generation) {
    let ws;
    try {
      ws = new WebSocket(wsURL(state.home));
    } catch (e) {
      transport.wsFailures += 1;
      scheduleReconnect();
      return;
    }
    let opened = false;
    transport.ws = ws;
    ws.onopen = () => {
      if (transport.ws !== ws) return;
      opened = true;
      transport.wsFailures = 0;
      transport.backoffMs = 500;
      transport.kind = "websocket";
      stopPolling();
      clearTimeout(transport.probeTimer);
      setConnection("websocket");
      onConnected();
    };
    ws.onmessage = (event) => {
      if (transport.ws !== ws) return;
      let frame;
      try { frame = JSON.parse(event.data); } catch (_) { return; }
      handleEvent(frame);
    };
    ws.onclose = (event) => {
      if (transport.ws !== ws) return;
      transport.ws = null;
      if (generation !== transport.generation || !state.session) return;
      if (event.code === 4001) {
        signOut("Your session ended. Log in again.", { keepUnsent: true });
        return;
      }
      if (transport.polling) { // a probe failed; polling carries on
        scheduleProbe();
        return;
      }
      transport.kind = "none";
      if (!opened) transport.wsFailures += 1;
      if (!opened && transport.wsFailures >= WS_FAILURES_BEFORE_POLLING) {
        startPolling();
        scheduleProbe();
        return;
      }
      setConnection("connecting");
      scheduleReconnect();
    };
  }

  function sendFrame(frame) {
    if (transport.ws && transport.ws.readyState === WebSocket.OPEN && transport.kind === "websocket") {
      transport.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function startPolling() {
    if (transport.polling) return;
    transport.polling = true;
    transport.kind = "polling";
    setConnection("polling");
    pollLoop(transport.generation);
  }

  function stopPolling() {
    transport.polling = false;
    if (transport.pollAbort) transport.pollAbort.abort();
    transport.pollAbort = null;
  }

  /** Long polling: the first poll opens a session on the server (`reset: true`), then the
   * client catches up over HTTP from its cursor, so nothing between the two is missed. */
  async function pollLoop(generation) {
    let backoff = 500;
    const alive = () => transport.polling && generation === transport.generation && state.session;
    while (alive()) {
      try {
        const abort = new AbortController();
        transport.pollAbort = abort;
        let q = "/api/poll?timeout=25";
        if (transport.pollCursor !== null && transport.pollCursor !== undefined) {
          q += "&cursor=" + encodeURIComponent(transport.pollCursor);
        }
        const data = await api("GET", q, undefined, { base: state.home, signal: abort.signal });
        if (!alive()) return;
        if (data && data.cursor !== undefined) transport.pollCursor = data.cursor;
        for (const event of (data && data.events) || []) handleEvent(event);
        // A new session (first poll, or the old one expired): events may have been missed.
        if (!data || data.reset || transport.pollCursor === undefined) await onConnectedOverHTTP();
        backoff = 500;
        setConnection("polling");
      } catch (e) {
        if (!alive() || (e && e.name === "AbortError")) return;
        setConnection("connecting");
        if (e.code === "wrong_server" && e.details && (e.details.server || e.details.address)) {
          state.home = e.details.server || e.details.address;
        } else {
          await sleep(jitter(backoff));
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
          await resolveHome();
        }
        transport.pollCursor = null;
      }
    }
  }

  /** After a WebSocket opens: the chat list (it seeds cursors of chats this tab never saw), catch
   * up from the cursors, re-send what waits for an ack (retry: true). */
  async function onConnected() {
    try { await loadChats(); } catch (e) { /* catch-up below still runs */ }
    state.syncing = false;
    requestSync();
    for (const p of state.pending.values()) if (p.state === "pending") trySend(p);
    if (state.openChatId) markRead(state.openChatId);
  }

  async function onConnectedOverHTTP() {
    await loadChats();
    state.syncing = false;
    requestSync();
    for (const p of state.pending.values()) if (p.state === "pending") trySend(p);
  }

  /** Catch-up from the per-chat cursors: one sync at a time; pages follow while `more`. Over
   * HTTP a failed page is retried with backoff (never dropped: the cursors stay where they were). */
  function requestSync() {
    if (state.syncing) { state.syncAgain = true; return; }
    state.syncing = true;
    state.syncAgain = false;
    if (sendFrame({ type: "sync", cursors: cursorsObject(), limit: 500 })) return;
    const generation = transport.generation;
    (async () => {
      let delay = 500;
      for (;;) {
        if (generation !== transport.generation) return;
        try {
          const data = await api("POST", "/api/sync", { cursors: cursorsObject(), limit: 500 });
          applySync(data);
          if (!data.more) break;
          delay = 500;
        } catch (e) {
          if (e instanceof ApiError && e.status === 401) return;
          showError("app-error", "Catching up failed (" + e.message + "); retrying…");
          await sleep(jitter(delay));
          delay = Math.min(delay * 2, MAX_BACKOFF_MS);
        }
      }
      showError("app-error", "");
      state.syncing = false;
      if (state.syncAgain) requestSync();
    })();
  }

  /** One page of catch-up: its messages, then the cursors it vouches for. */
  function applySync(page) {
    for (const m of page.messages || []) addMessage(m, { live: false });
    for (const [chatId, seq] of Object.entries(page.cursors || {})) {
      let v;
      try { v = BigInt(seq); } catch (e) { continue; }
      const old = state.cursors.get(chatId);
      if (old === undefined || v > old) state.cursors.set(chatId, v);
    }
  }

  // ---------------------------------------------------------------- events (WebSocket and poll)

  function handleEvent(frame) {
    switch (frame && frame.type) {
      case "hello":
        state.serverId = frame.serverId || state.serverId;
        break;
      case "ack":
        resolvePending(frame);
        break;
      case "message":
        if (frame.message) addMessage(frame.message, { live: true });
        break;
      case "typing":
        onTyping(frame.chatId, frame.userId);
        break;
      case "read":
        onRead(frame);
        break;
      case "presence":
        onPresence(frame);
        break;
      case "chat":
        if (frame.chat) {
          upsertChat(frame.chat);
          renderChatList();
          if (String(frame.chat.chatId) === state.openChatId) renderConversationHeader();
        }
        break;
      case "chat_removed": {
        const chatId = String(frame.chatId);
        state.chats.delete(chatId);
        state.stores.delete(chatId);
        if (state.openChatId === chatId) {
          state.openChatId = null;
          clearConversation();
        }
        renderChatList();
        break;
      }
      case "sync":
        applySync(frame);
        state.syncing = false;
        if (frame.more || state.syncAgain) requestSync();
        break;
      case "resync":
        requestSync();
        break;
      case "error":
        onServerError(frame);
        break;
      default:
        break; // pong and anything newer than this client
    }
  }

  function onServerError(frame) {
    if (frame.code === "wrong_server") {
      const target = frame.server || frame.address || frame.url;
      if (target) state.home = String(target).replace(/\/+$/, "");
      if (transport.ws) {
        const ws = transport.ws;
        transport.ws = null;
        ws.close(1000, "moving");
      }
      transport.kind = "none";
      transport.backoffMs = 500;
      // Two servers whose views of the live set differ for a moment (≤ 2 s) may send a device
      // back and forth: pause briefly before each hop.
      clearTimeout(transport.reconnectTimer);
      const generation = transport.generation;
      transport.reconnectTimer = setTimeout(() => {
        if (generation !== transport.generation || !state.session) return;
        if (target) openWebSocket(generation); else connect();
      }, jitter(250));
      return;
    }
    const p = frame.ref ? state.pending.get(frame.ref) : null;
    if (p) {
      clearTimeout(p.timer);
      if (frame.code === "rate_limited") {
        p.timer = setTimeout(() => trySend(p), jitter(1000 * Math.min(8, p.attempts)));
      } else {
        markFailed(p, frame.message || frame.code);
      }
      return;
    }
    if (state.syncing && transport.ws) {
      // A sync frame has no ref: an error while one is under way may be its answer (the ring
      // did not answer, or too many syncs waited). Ask again after a pause rather than wait for
      // an answer that will not come; an extra sync is harmless.
      state.syncing = false;
      const generation = transport.generation;
      setTimeout(() => { if (generation === transport.generation) requestSync(); }, jitter(1000));
    }
    showError("sidebar-error", (frame.message || frame.code || "error") + "");
  }

  // ---------------------------------------------------------------- chats

  function upsertChat(chat) {
    const chatId = String(chat.chatId);
    const old = state.chats.get(chatId);
    const merged = Object.assign({}, old || {}, chat, { chatId });
    if (!merged.lastMessage && old && old.lastMessage) merged.lastMessage = old.lastMessage;
    if (old && old.lastMessage && (!chat.lastMessage || compareMessages(old.lastMessage, normalize(chat.lastMessage)) > 0)) {
      // This tab already holds newer messages than the answer knew of: its own count is newer too.
      merged.lastMessage = old.lastMessage;
      merged.unread = old.unread;
    }
    if (merged.lastMessage) merged.lastMessage = normalize(merged.lastMessage);
    merged.activity = merged.lastMessage ? Number(merged.lastMessage.ts) : (old && old.activity) || Date.now() * 1000;
    if (typeof merged.unread !== "number") merged.unread = (old && old.unread) || 0;
    if (chatId === state.openChatId) merged.unread = 0;
    state.chats.set(chatId, merged);
    // A chat this tab has no cursor for starts at its newest message: older ones load as history
    // when it opens (everything up to lastMessage is readable, so nothing between is skipped).
    if (!state.cursors.has(chatId)) state.cursors.set(chatId, merged.lastMessage ? seqOf(merged.lastMessage) : 0n);
    if (chat.readers) {
      let cursors = state.readCursors.get(chatId);
      if (!cursors) { cursors = new Map(); state.readCursors.set(chatId, cursors); }
      for (const [userId, seq] of Object.entries(chat.readers)) {
        try {
          const v = BigInt(seq);
          if (!cursors.has(userId) || cursors.get(userId) < v) cursors.set(userId, v);
        } catch (e) { /* not a seq */ }
      }
    }
    return merged;
  }

  let loadingChats = null;
  function loadChats() {
    if (loadingChats) return loadingChats;
    loadingChats = (async () => {
      try {
        const data = await api("GET", "/api/chats");
        const first = !state.listLoaded;
        for (const chat of data.chats || []) upsertChat(chat);
        state.listLoaded = true;
        if (first) refreshPresence(allContacts());
        renderChatList();
        if (state.openChatId) renderConversationHeader();
      } finally {
        loadingChats = null;
      }
    })();
    return loadingChats;
  }

  function allContacts() {
    const users = new Set();
    for (const chat of state.chats.values()) {
      for (const u of chatMembers(chat)) if (u !== state.session.userId) users.add(u);
    }
    return Array.from(users);
  }

  function renderChatList() {
    const list = $("chat-list");
    const chats = Array.from(state.chats.values()).sort((a, b) => b.activity - a.activity ||
      (a.chatId < b.chatId ? -1 : 1));
    const items = chats.map((chat) => {
      const li = el("li", "chat-item" + (chat.chatId === state.openChatId ? " active" : ""));
      li.dataset.testid = "chat-item";
      li.dataset.chatId = chat.chatId;
      li.dataset.kind = chat.kind || "";
      li.dataset.unread = String(chat.unread || 0);
      const title = el("span", "chat-title");
      title.dataset.testid = "chat-title";
      if (chat.kind === "direct") {
        const other = chatTitle(chat);
        const p = state.presence.get(other);
        title.append(el("span", "dot" + (p && p.online ? " online" : "")));
      }
      title.append(document.createTextNode(chatTitle(chat)));
      const time = el("span", "chat-time", chat.lastMessage ? formatTime(chat.lastMessage.ts) : "");
      const preview = el("span", "chat-preview",
        chat.lastMessage ? (chat.kind === "group" ? chat.lastMessage.sender + ": " : "") + chat.lastMessage.text : "No messages yet");
      preview.dataset.testid = "chat-preview";
      const unread = el("span", "unread", chat.unread > 99 ? "99+" : chat.unread > 0 ? String(chat.unread) : "");
      unread.dataset.testid = "unread-count";
      li.append(title, time, preview, unread);
      // Reachable and usable from the keyboard, announced as a button.
      li.tabIndex = 0;
      li.setAttribute("role", "button");
      li.setAttribute("aria-label", chatTitle(chat) + (chat.unread ? ", " + chat.unread + " unread" : ""));
      if (chat.chatId === state.openChatId) li.setAttribute("aria-current", "true");
      li.addEventListener("click", () => openChat(chat.chatId));
      li.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openChat(chat.chatId); }
      });
      return li;
    });
    list.replaceChildren(...items);
    const total = chats.reduce((n, c) => n + (c.unread || 0), 0);
    document.title = (total ? "(" + (total > 99 ? "99+" : total) + ") " : "") + "Confab — " + state.session.userId;
  }

  async function startDirect(handle) {
    showError("sidebar-error", "");
    const chat = await api("POST", "/api/chats/direct", { with: handle.trim().toLowerCase() });
    upsertChat(chat);
    renderChatList();
    openChat(String(chat.chatId));
  }

  async function startGroup(title, membersText) {
    showError("sidebar-error", "");
    const me = state.session.userId;
    const members = Array.from(new Set(membersText.split(/[\s,]+/).map((s) => s.trim().toLowerCase())
      .filter((s) => s && s !== me)));
    const chat = await api("POST", "/api/chats/group", { title: title.trim(), members });
    upsertChat(chat);
    renderChatList();
    openChat(String(chat.chatId));
  }

  // ---------------------------------------------------------------- messages

  function storeFor(chatId) {
    let s = state.stores.get(chatId);
    if (!s) {
      s = { byId: new Map(), sorted: [], more: true, loaded: false, loading: false };
      state.stores.set(chatId, s);
    }
    return s;
  }

  function normalize(m) {
    return {
      chatId: String(m.chatId),
      messageId: String(m.messageId),
      seq: m.seq === undefined || m.seq === null ? "0" : String(m.seq),
      prev: m.prev === undefined || m.prev === null ? null : String(m.prev),
      ts: Number(m.ts),
      sender: m.sender,
      text: m.text === undefined || m.text === null ? "" : String(m.text),
      clientId: m.clientId,
    };
  }

  /** Adds a message once (de-duplicated by messageId) at its seq. A live one moves the chat's cursor
   * when its prev is the cursor, and asks for a sync when it is not (a gap). The same messageId at a
   * higher seq replaces the lower one (a placement the server retracted after an ownership change). */
  function addMessage(raw, options) {
    const m = normalize(raw);
    const live = options && options.live;
    if (live && m.prev !== null) {
      const last = state.cursors.get(m.chatId);
      const seq = seqOf(m);
      if (last === undefined || seq <= last) {
        // Already vouched for (or a chat this tab has no cursor for yet: the list load seeds it).
      } else if (BigInt(m.prev) === last) {
        state.cursors.set(m.chatId, seq);
      } else {
        requestSync();
      }
    }
    if (!state.chats.has(m.chatId)) {
      state.chats.set(m.chatId, { chatId: m.chatId, kind: "", members: [], unread: 0, activity: m.ts });
      loadChats().catch(() => {}); // a chat this tab has not seen yet: fetch its title and members
    }
    const s = storeFor(m.chatId);
    if (m.clientId && m.sender === state.session.userId && state.pending.has(m.clientId)) {
      dropPending(m.clientId);
    }
    const held = s.byId.get(m.messageId);
    if (held) {
      if (seqOf(held) >= seqOf(m) || m.seq === "0") return false;
      s.byId.delete(held.messageId);
      s.sorted.splice(s.sorted.indexOf(held), 1);
      if (m.chatId === state.openChatId) { const node = messageNode(held.messageId); if (node) node.remove(); }
    }
    s.byId.set(m.messageId, m);
    let lo = 0;
    let hi = s.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareMessages(s.sorted[mid], m) < 0) lo = mid + 1; else hi = mid;
    }
    s.sorted.splice(lo, 0, m);

    const chat = state.chats.get(m.chatId);
    if (!chat.lastMessage || compareMessages(chat.lastMessage, m) < 0) {
      chat.lastMessage = m;
      chat.activity = m.ts;
      if (live && m.sender !== state.session.userId) {
        if (m.chatId === state.openChatId && pageVisible()) {
          scheduleMarkRead(m.chatId);
        } else {
          chat.unread = (chat.unread || 0) + 1;
          notify(m);
        }
        clearTyping(m.chatId, m.sender);
      }
    }
    if (m.chatId === state.openChatId) {
      const list = $("message-list");
      const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
      const next = s.sorted[lo + 1];
      const before = next ? messageNode(next.messageId) : firstPendingNode();
      list.insertBefore(renderMessage(m), before || null);
      scheduleLayout();
      if (live && (nearBottom || m.sender === state.session.userId)) list.scrollTop = list.scrollHeight;
    }
    scheduleChatListRender();
    return true;
  }

  let chatListRenderQueued = false;
  function scheduleChatListRender() {
    if (chatListRenderQueued) return;
    chatListRenderQueued = true;
    queueMicrotask(() => {
      chatListRenderQueued = false;
      if (state.session) renderChatList();
    });
  }

  function messageNode(messageId) {
    return $("message-list").querySelector('[data-message-id="' + CSS.escape(messageId) + '"]');
  }

  function firstPendingNode() {
    return $("message-list").querySelector('[data-state="pending"], [data-state="failed"]');
  }

  function renderMessage(m, pending) {
    const mine = m.sender === state.session.userId;
    const node = el("div", "message" + (mine ? " mine" : ""));
    node.dataset.testid = "message";
    node.dataset.messageId = pending ? "" : m.messageId;
    node.dataset.clientId = m.clientId || "";
    node.dataset.sender = m.sender || "";
    node.dataset.state = pending ? pending.state : "acked";
    if (!pending) node.dataset.ts = String(m.ts);
    const sender = el("span", "sender", m.sender);
    const bubble = el("div", "bubble", m.text);
    bubble.dataset.testid = "message-text";
    const meta = el("span", "meta");
    meta.dataset.testid = "message-meta";
    node.append(sender, bubble, meta);
    updateMeta(node, m, pending);
    return node;
  }

  function updateMeta(node, m, pending) {
    const meta = node.querySelector(".meta");
    meta.replaceChildren();
    if (pending) {
      if (pending.state === "failed") {
        meta.append(document.createTextNode("Not sent: " + (pending.error || "error") + " "));
        const retry = el("button", "link", "Retry");
        retry.type = "button";
        retry.dataset.testid = "retry";
        retry.addEventListener("click", () => {
          pending.state = "pending";
          pending.attempts = 0;
          replacePendingNode(pending);
          trySend(pending);
        });
        meta.append(retry);
      } else {
        meta.textContent = "sending…";
      }
      return;
    }
    meta.append(el("span", "time", clockTime(new Date(toMillis(m.ts)))));
    if (m.sender === state.session.userId) meta.append(el("span", "receipt"));
  }

  let layoutQueued = false;
  function scheduleLayout() {
    if (layoutQueued) return;
    layoutQueued = true;
    queueMicrotask(() => {
      layoutQueued = false;
      if (state.session && state.openChatId) layoutMessages();
    });
  }

  /** Day separators; runs of one sender's messages grouped (one name at the top, one time at the
   * bottom); "Seen" on the newest of my messages someone has read, "Sent" on my newest after it.
   * Recomputed from the list in one pass, so messages can arrive in any order. */
  function layoutMessages() {
    const list = $("message-list");
    for (const sep of list.querySelectorAll(".day-separator")) sep.remove();
    const s = storeFor(state.openChatId);
    const chat = state.chats.get(state.openChatId);
    let prev = null;
    let prevTs = 0;
    let prevDay = "";
    let lastMine = null;
    let lastSeen = null;
    let lastSeenReaders = [];
    for (const node of list.querySelectorAll("[data-testid=message]")) {
      const acked = node.dataset.state === "acked";
      const ts = acked ? toMillis(Number(node.dataset.ts)) : Date.now();
      const d = new Date(ts);
      const day = d.toDateString();
      if (day !== prevDay) {
        const sep = el("div", "day-separator", dayLabel(d));
        sep.setAttribute("role", "separator");
        list.insertBefore(sep, node);
        prev = null;
      }
      const continued = !!prev && acked && prev.dataset.state === "acked" &&
        prev.dataset.sender === node.dataset.sender && ts - prevTs < GROUP_GAP_MS;
      node.classList.toggle("continued", continued);
      if (prev) prev.classList.toggle("followed", continued);
      node.classList.remove("followed");
      if (acked && node.classList.contains("mine")) {
        lastMine = node;
        const m = s.byId.get(node.dataset.messageId);
        const readers = m ? seenBy(m) : [];
        if (readers.length) { lastSeen = node; lastSeenReaders = readers; }
        const receipt = node.querySelector(".receipt");
        if (receipt) receipt.textContent = "";
      }
      prev = node;
      prevTs = ts;
      prevDay = day;
    }
    if (lastSeen) {
      lastSeen.querySelector(".receipt").textContent = chat && chat.kind === "group"
        ? "Seen by " + lastSeenReaders.join(", ") : "Seen";
    }
    if (lastMine && lastMine !== lastSeen) lastMine.querySelector(".receipt").textContent = "Sent";
    // A new chat's prompt gives way to the first message.
    const status = $("history-status");
    const any = list.querySelector("[data-testid=message]") !== null;
    if (any && status.dataset.empty === "true") { status.textContent = "Beginning of the conversation"; status.dataset.empty = ""; }
  }

  function notify(m) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const chat = state.chats.get(m.chatId);
    const title = chat && chat.kind === "group" ? m.sender + " in " + chatTitle(chat) : m.sender;
    try {
      const note = new Notification(title, { body: m.text.slice(0, 200), tag: m.chatId });
      note.onclick = () => {
        window.focus();
        openChat(m.chatId);
        if (note.close) note.close();
      };
    } catch (_) { /* some browsers allow notifications only from a service worker */ }
  }

  function updateNotifyButton() {
    $("notify-button").hidden = !("Notification" in window) || Notification.permission !== "default";
  }

  function seenBy(m) {
    const cursors = state.readCursors.get(m.chatId);
    if (!cursors) return [];
    const readers = [];
    for (const [userId, c] of cursors) {
      if (userId !== m.sender && c >= seqOf(m)) {
        readers.push(userId);
      }
    }
    return readers;
  }

  // ---------------------------------------------------------------- sending

  function sendMessage(chatId, text) {
    const p = { chatId, clientId: newClientId(), text, state: "pending", attempts: 0, timer: null };
    state.pending.set(p.clientId, p);
    if (chatId === state.openChatId) {
      const list = $("message-list");
      list.append(renderMessage({ chatId, clientId: p.clientId, text, sender: state.session.userId }, p));
      scheduleLayout();
      list.scrollTop = list.scrollHeight;
    }
    trySend(p);
  }

  /** Sends (or re-sends) with the same clientId: the server stores and delivers it once. */
  function trySend(p) {
    if (!state.pending.has(p.clientId) || p.state !== "pending") return;
    clearTimeout(p.timer);
    p.attempts += 1;
    const retryLater = () => {
      clearTimeout(p.timer);
      p.timer = setTimeout(() => trySend(p), jitter(Math.min(500 * 2 ** Math.min(p.attempts, 5), MAX_BACKOFF_MS)));
    };
    // Every attempt after the first may repeat one the server stored: say so (it then looks the
    // clientId up in the ring instead of trusting its memory).
    const retry = p.attempts > 1;
    const frame = { type: "send", chatId: p.chatId, clientId: p.clientId, text: p.text };
    if (retry) frame.retry = true;
    if (sendFrame(frame)) {
      p.timer = setTimeout(() => trySend(p), ACK_TIMEOUT_MS);
      return;
    }
    api("POST", chatPath(p.chatId) + "/messages", retry ? { clientId: p.clientId, text: p.text, retry: true } : { clientId: p.clientId, text: p.text })
      .then((ack) => resolvePending(Object.assign({ chatId: p.chatId, clientId: p.clientId }, ack)))
      .catch((e) => {
        if (!state.pending.has(p.clientId)) return;
        if (e instanceof ApiError && e.permanent) markFailed(p, e.message); else retryLater();
      });
  }

  function resolvePending(ack) {
    const p = state.pending.get(ack.clientId);
    if (!p) return;
    dropPending(ack.clientId);
    addMessage({ chatId: ack.chatId || p.chatId, messageId: ack.messageId, seq: ack.seq, ts: ack.ts,
      sender: state.session.userId, text: p.text, clientId: p.clientId }, { live: true });
  }

  function dropPending(clientId) {
    const p = state.pending.get(clientId);
    if (!p) return;
    clearTimeout(p.timer);
    state.pending.delete(clientId);
    const node = pendingNode(clientId);
    if (node) { node.remove(); scheduleLayout(); }
  }

  function pendingNode(clientId) {
    return $("message-list").querySelector('[data-client-id="' + CSS.escape(clientId) + '"][data-message-id=""]');
  }

  function markFailed(p, error) {
    clearTimeout(p.timer);
    p.state = "failed";
    p.error = error;
    replacePendingNode(p);
  }

  function replacePendingNode(p) {
    const node = pendingNode(p.clientId);
    if (node) node.replaceWith(renderMessage({ chatId: p.chatId, clientId: p.clientId, text: p.text,
      sender: state.session.userId }, p));
    scheduleLayout();
  }

  // ---------------------------------------------------------------- conversation view

  function clearConversation() {
    $("conversation").dataset.chatId = "";
    $("conversation-title").textContent = "No chat open";
    $("chat-info").open = false;
    showError("composer-error", "");
    $("composer-count").textContent = "";
    $("conversation-members").textContent = "";
    $("group-details").hidden = true;
    $("presence").textContent = "";
    $("typing-indicator").textContent = "";
    const status = $("history-status");
    status.textContent = "";
    status.dataset.empty = "";
    $("message-list").replaceChildren(status);
    $("composer").disabled = true;
    $("send-button").disabled = true;
  }

  function openChat(chatId) {
    chatId = String(chatId);
    state.openChatId = chatId;
    $("app-view").classList.add("show-conversation");
    const chat = state.chats.get(chatId);
    if (chat) chat.unread = 0;
    clearConversation();
    $("conversation").dataset.chatId = chatId;
    renderConversationHeader();
    renderChatList();
    const list = $("message-list");
    const s = storeFor(chatId);
    for (const m of s.sorted) list.append(renderMessage(m));
    for (const p of state.pending.values()) {
      if (p.chatId === chatId) list.append(renderMessage({ chatId, clientId: p.clientId, text: p.text,
        sender: state.session.userId }, p));
    }
    scheduleLayout();
    list.scrollTop = list.scrollHeight;
    $("composer").disabled = false;
    $("send-button").disabled = false;
    $("composer").focus();
    renderTyping();
    if (chat) refreshPresence(chatMembers(chat).filter((u) => u !== state.session.userId));
    if (!s.loaded) loadOlder(chatId).then(() => markRead(chatId)); else markRead(chatId);
  }

  function renderConversationHeader() {
    const chat = state.chats.get(state.openChatId);
    if (!chat) return;
    $("conversation-title").textContent = chatTitle(chat);
    const members = chatMembers(chat);
    $("conversation-members").textContent = chat.kind === "group" ? members.length + (members.length === 1 ? " member" : " members") : "";
    // The id `confab chat history CHAT_ID` takes: the same chat read straight from the ring.
    $("conversation-id").textContent = chat.chatId;
    renderGroupDetails(chat, members);
    renderPresence();
  }

  /** Group management: the members (the owner may remove anyone), add by handle, leave. */
  function renderGroupDetails(chat, members) {
    const details = $("group-details");
    details.hidden = chat.kind !== "group";
    if (details.hidden) return;
    const me = state.session.userId;
    const items = members.map((userId) => {
      const li = el("li", "group-member", userId + (userId === chat.createdBy ? " (owner)" : ""));
      li.dataset.userId = userId;
      if (chat.createdBy === me && userId !== me) {
        const remove = el("button", "link", "Remove");
        remove.type = "button";
        remove.setAttribute("aria-label", "Remove " + userId + " from the group");
        remove.addEventListener("click", () => groupAction("DELETE", chatPath(chat.chatId) + "/members/" + encodeURIComponent(userId)));
        li.append(" ", remove);
      }
      return li;
    });
    $("group-member-list").replaceChildren(...items);
  }

  async function groupAction(method, path, body) {
    showError("group-error", "");
    try {
      const answer = await api(method, path, body);
      if (answer && answer.chatId) { upsertChat(answer); renderChatList(); renderConversationHeader(); }
      return true;
    } catch (e) {
      showError("group-error", e.message);
      return false;
    }
  }

  /** Pages backwards through history: newest first from the server, placed in order locally. */
  async function loadOlder(chatId) {
    const s = storeFor(chatId);
    if (s.loading || (s.loaded && !s.more)) return;
    s.loading = true;
    const status = $("history-status");
    if (chatId === state.openChatId) status.textContent = "Loading…";
    try {
      let q = chatPath(chatId) + "/messages?limit=50";
      const oldest = s.loaded ? s.sorted[0] : null;
      if (oldest) q += "&before=" + encodeURIComponent(oldest.seq);
      const data = await api("GET", q);
      const list = $("message-list");
      const first = !s.loaded;
      const fromBottom = list.scrollHeight - list.scrollTop;
      for (const m of data.messages || []) addMessage(m, { live: false });
      s.more = !!data.more;
      s.loaded = true;
      if (chatId === state.openChatId) {
        // Keep the view anchored: older messages grow the list above what the user is reading.
        list.scrollTop = first ? list.scrollHeight : list.scrollHeight - fromBottom;
        const empty = !s.more && s.sorted.length === 0;
        status.textContent = s.more ? "" : empty ? "No messages yet. Say hello!" : "Beginning of the conversation";
        status.dataset.empty = String(empty);
        if (empty) scheduleLayout();
      }
    } catch (e) {
      if (chatId === state.openChatId) status.textContent = "Could not load history: " + e.message;
    } finally {
      s.loading = false;
    }
    // Not enough to scroll yet: keep filling the view.
    const list = $("message-list");
    if (chatId === state.openChatId && s.more && list.scrollHeight <= list.clientHeight + 10) loadOlder(chatId);
  }

  // ---------------------------------------------------------------- read receipts

  const pageVisible = () => document.visibilityState !== "hidden";

  let markReadTimer = null;
  function scheduleMarkRead(chatId) {
    clearTimeout(markReadTimer);
    markReadTimer = setTimeout(() => markRead(chatId), 300);
  }

  function markRead(chatId) {
    if (chatId !== state.openChatId || !pageVisible()) return;
    const s = storeFor(chatId);
    const last = s.sorted[s.sorted.length - 1];
    const chat = state.chats.get(chatId);
    if (chat) { chat.unread = 0; scheduleChatListRender(); }
    if (!last) return;
    if (s.readSent && compareMessages(s.readSent, last) >= 0) return;
    s.readSent = last;
    if (!sendFrame({ type: "read", chatId, seq: last.seq })) {
      api("POST", chatPath(chatId) + "/read", { seq: last.seq }).catch(() => { s.readSent = null; });
    }
  }

  function onRead(frame) {
    const chatId = String(frame.chatId);
    if (frame.userId === state.session.userId) {
      // Read on another device of mine.
      const chat = state.chats.get(chatId);
      if (chat && chat.lastMessage && compareMessages({ seq: frame.seq }, chat.lastMessage) >= 0) {
        chat.unread = 0;
        scheduleChatListRender();
      }
      return;
    }
    let cursors = state.readCursors.get(chatId);
    if (!cursors) { cursors = new Map(); state.readCursors.set(chatId, cursors); }
    try {
      const v = BigInt(frame.seq);
      if (!cursors.has(frame.userId) || cursors.get(frame.userId) < v) cursors.set(frame.userId, v);
    } catch (e) { return; }
    if (chatId === state.openChatId) scheduleLayout();
  }

  // ---------------------------------------------------------------- typing

  function updateComposerCount() {
    const text = $("composer").value;
    const node = $("composer-count");
    if (text.length < COUNT_SHOWN_FROM) { node.textContent = ""; return; }
    const scalars = [...text].length;
    node.textContent = scalars >= COUNT_SHOWN_FROM ? scalars.toLocaleString() + " / " + MAX_MESSAGE_SCALARS.toLocaleString() : "";
    node.classList.toggle("over", scalars > MAX_MESSAGE_SCALARS);
    if (scalars <= MAX_MESSAGE_SCALARS) showError("composer-error", "");
  }

  function sendTyping() {
    const chatId = state.openChatId;
    if (!chatId || Date.now() - state.lastTypingSent < TYPING_SEND_EVERY_MS) return;
    state.lastTypingSent = Date.now();
    if (!sendFrame({ type: "typing", chatId })) api("POST", chatPath(chatId) + "/typing", {}).catch(() => {});
  }

  function onTyping(chatId, userId) {
    if (!userId || userId === state.session.userId) return;
    chatId = String(chatId);
    let users = state.typing.get(chatId);
    if (!users) { users = new Map(); state.typing.set(chatId, users); }
    users.set(userId, Date.now() + TYPING_SHOW_MS);
    renderTyping();
    setTimeout(renderTyping, TYPING_SHOW_MS + 50);
  }

  function clearTyping(chatId, userId) {
    const users = state.typing.get(chatId);
    if (users && users.delete(userId)) renderTyping();
  }

  function renderTyping() {
    const node = $("typing-indicator");
    const users = state.typing.get(state.openChatId);
    const now = Date.now();
    const who = [];
    if (users) for (const [u, until] of users) { if (until > now) who.push(u); else users.delete(u); }
    node.textContent = who.length === 0 ? "" : who.join(", ") + (who.length === 1 ? " is typing…" : " are typing…");
  }

  // ---------------------------------------------------------------- presence

  async function refreshPresence(users) {
    if (!users.length) return;
    try {
      for (let i = 0; i < users.length; i += 100) {
        const batch = users.slice(i, i + 100);
        const data = await api("GET", "/api/presence?users=" + batch.map(encodeURIComponent).join(","));
        for (const p of data.presence || []) state.presence.set(p.userId, { online: !!p.online, lastSeen: p.lastSeen });
      }
      renderPresence();
      scheduleChatListRender();
    } catch (_) { /* presence is a nicety: the chat works without it */ }
  }

  function onPresence(frame) {
    if (!frame.userId || frame.userId === state.session.userId) return;
    state.presence.set(frame.userId, { online: !!frame.online, lastSeen: frame.lastSeen });
    renderPresence();
    scheduleChatListRender();
  }

  function describePresence(userId) {
    const p = state.presence.get(userId);
    if (!p) return "";
    if (p.online) return "online";
    const ms = toMillis(p.lastSeen);
    return ms ? "last seen " + formatAgo(ms) : "offline";
  }

  function renderPresence() {
    const node = $("presence");
    const chat = state.chats.get(state.openChatId);
    if (!chat) { node.textContent = ""; return; }
    const others = chatMembers(chat).filter((u) => u !== state.session.userId);
    if (chat.kind === "direct") {
      node.textContent = others.length ? describePresence(others[0]) : "";
      node.dataset.online = String(!!(state.presence.get(others[0]) || {}).online);
    } else {
      const online = others.filter((u) => (state.presence.get(u) || {}).online).length;
      node.textContent = others.length === 0 ? "only you" : online + " of " + others.length + " others online";
    }
  }

  // ---------------------------------------------------------------- wiring

  function bind() {
    $("signup-form").addEventListener("submit", (e) => {
      e.preventDefault();
      authenticate("register", $("signup-handle").value, $("signup-password").value);
    });
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      authenticate("login", $("login-handle").value, $("login-password").value);
    });
    $("logout-button").addEventListener("click", () => signOut(""));
    // Phones show one pane at a time: back to the chat list.
    $("back-button").addEventListener("click", () => {
      $("app-view").classList.remove("show-conversation");
      state.openChatId = null;
      clearConversation();
      renderChatList();
    });
    $("add-member-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const chatId = state.openChatId;
      const handle = $("add-member-handle").value.trim().toLowerCase();
      if (!chatId || !handle) return;
      if (await groupAction("POST", chatPath(chatId) + "/members", { userId: handle })) $("add-member-handle").value = "";
    });
    $("leave-group-button").addEventListener("click", async () => {
      const chatId = state.openChatId;
      if (!chatId || !confirm("Leave this group? You will no longer get its messages.")) return;
      if (await groupAction("POST", chatPath(chatId) + "/leave", {})) {
        state.chats.delete(chatId);
        state.stores.delete(chatId);
        state.openChatId = null;
        clearConversation();
        renderChatList();
      }
    });
    $("new-direct-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("new-direct-handle");
      startDirect(input.value).then(() => { input.value = ""; }, (err) => showError("sidebar-error", err.message));
    });
    $("new-group-form").addEventListener("submit", (e) => {
      e.preventDefault();
      startGroup($("new-group-title").value, $("new-group-members").value).then(() => {
        $("new-group-title").value = "";
        $("new-group-members").value = "";
      }, (err) => showError("sidebar-error", err.message));
    });
    $("composer-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const composer = $("composer");
      const text = composer.value;
      if (!state.openChatId || text.trim() === "") return;
      const scalars = text.length > MAX_MESSAGE_SCALARS ? [...text].length : text.length;
      if (scalars > MAX_MESSAGE_SCALARS) {
        // Nothing is cleared: the text stays for the user to shorten or split.
        showError("composer-error", "This message has " + scalars.toLocaleString() + " characters; the limit is " +
          MAX_MESSAGE_SCALARS.toLocaleString() + ". Shorten it or split it into several messages. Nothing was sent.");
        return;
      }
      showError("composer-error", "");
      composer.value = "";
      updateComposerCount();
      sendMessage(state.openChatId, text);
    });
    $("composer").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $("composer-form").requestSubmit();
      }
    });
    $("composer").addEventListener("input", () => { sendTyping(); updateComposerCount(); });
    $("copy-id-button").addEventListener("click", () => {
      const id = state.openChatId;
      if (id && navigator.clipboard) navigator.clipboard.writeText(id).catch(() => {});
    });
    $("notify-button").addEventListener("click", () => {
      Notification.requestPermission().then(updateNotifyButton, updateNotifyButton);
    });
    $("message-list").addEventListener("scroll", () => {
      if (state.openChatId && $("message-list").scrollTop < 60) loadOlder(state.openChatId);
    });
    document.addEventListener("visibilitychange", () => {
      if (pageVisible() && state.openChatId) markRead(state.openChatId);
    });
    setInterval(() => { if (state.openChatId) renderPresence(); }, 30000);
  }

  bind();
  state.session = loadSession();
  if (state.session) enterApp(); else $("auth-view").hidden = false;

  // For tests and debugging from the console; nothing in the page depends on it.
  window.confab = { state, transport };
})();
