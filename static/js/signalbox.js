// Signalbox's page shell: the colour theme toggle, and the live connection (one websocket per
// page, opened by htmx's ws extension) with its indicator, keepalive and re-sync.
// See docs/live.md for how pages use it.
(function () {
  "use strict";

  // -- colour theme: auto (follow the system) -> light -> dark, kept in a cookie so the
  // server renders the right one and nothing flashes on load.
  var THEMES = {
    auto: { next: "light", icon: "◐", label: "Auto", spoken: "automatic" },
    light: { next: "dark", icon: "☀", label: "Light", spoken: "light" },
    dark: { next: "auto", icon: "☾", label: "Dark", spoken: "dark" }
  };

  function applyTheme(choice) {
    var root = document.documentElement;
    if (choice === "auto") { root.removeAttribute("data-theme"); } else { root.setAttribute("data-theme", choice); }
    var secure = window.location.protocol === "https:" ? "; Secure" : "";
    document.cookie = "theme=" + (choice === "auto" ? "; max-age=0" : choice + "; max-age=31536000") +
      "; path=/; SameSite=Lax" + secure;
    var button = document.getElementById("theme-toggle");
    if (!button) { return; }
    var theme = THEMES[choice];
    button.dataset.themeChoice = choice;
    button.setAttribute("aria-label", "Colour theme: " + theme.spoken + " (change)");
    button.querySelector(".sb-theme-icon").textContent = theme.icon;
    button.querySelector(".sb-theme-label").textContent = theme.label;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#theme-toggle");
    if (button) { applyTheme(THEMES[button.dataset.themeChoice || "auto"].next); }
  });

  // -- live indicator: an icon and a word for each state, never colour alone.
  var STATES = {
    "static": ["○", "Not live", "This page does not update by itself; reload to refresh."],
    connecting: ["◌", "Connecting", "Connecting to live updates."],
    live: ["●", "Live", "This page updates as things happen."],
    reconnecting: ["↻", "Reconnecting", "Lost the live connection; retrying. The page will catch up."],
    offline: ["✕", "Offline", "Live updates are off for this page; reload to refresh."],
    "signed-out": ["✕", "Signed out", "Your session ended; log in again for live updates."]
  };

  function setState(state) {
    var el = document.getElementById("live-status");
    if (!el || el.dataset.state === state) { return; }
    var parts = STATES[state];
    el.dataset.state = state;
    el.title = parts[2];
    el.querySelector(".sb-live-icon").textContent = parts[0];
    var label = el.querySelector(".sb-live-label");
    if (state === "signed-out") {
      label.innerHTML = "";
      var link = document.createElement("a");
      link.href = "/login/?next=" + encodeURIComponent(window.location.pathname + window.location.search);
      link.textContent = parts[1] + ": log in";
      label.appendChild(link);
    } else {
      label.textContent = parts[1];
    }
  }

  // -- pushed messages. One websocket message carries a whole batch: page sections and table
  // rows together. Parsed as one, an HTML parser keeps only one kind (a <tbody> after a
  // <section> is dropped, and htmx then reports target "#null"), so rows come wrapped in
  // <template> (whose content parses on its own) and such a message is swapped here part by
  // part, each an out-of-band swap of its own (as the ws extension does for plain messages).
  function swapParts(text) {
    var holder = document.createElement("template");
    holder.innerHTML = text;
    Array.prototype.slice.call(holder.content.children).forEach(function (child) {
      var parts = child.tagName === "TEMPLATE" ? child.content.children : [child];
      Array.prototype.slice.call(parts).forEach(function (part) {
        if (!part.hasAttribute("hx-swap-oob")) { part.setAttribute("hx-swap-oob", "true"); }
        htmx.swap(document.body, part.outerHTML, { swapStyle: "none" });
      });
    });
  }

  // -- the connection
  var PING_EVERY_MS = 25000; // under common proxy idle timeouts (60 s); see live.CLIENT_TTL_SECONDS
  var PONG_WITHIN_MS = 10000;
  var RETRIED_BY_HTMX = [1006, 1011, 1012, 1013]; // the ws extension retries only these
  var socket = null; // the current WebSocket; closes of older ones are ignored
  var wrapper = null; // the extension's handle: send(), reconnect()
  var everOpened = false;
  var awaitingPong = null;
  var retries = 0;

  function liveTopics() {
    var meta = document.querySelector('meta[name="sb-live-topics"]');
    if (!meta) { return null; }
    return meta.content.split(",").map(function (t) { return t.trim(); }).filter(Boolean);
  }

  // Retry soon, then back off to at most ~15 s, with jitter so a restarted server is not
  // met by every page at once (htmx's default waits up to 64 s).
  function reconnectDelay(retryCount) {
    var base = Math.min(15000, 500 * Math.pow(2, Math.min(retryCount, 5)));
    return base / 2 + Math.random() * base / 2;
  }

  function connect(topics) {
    htmx.config.wsReconnectDelay = reconnectDelay;
    var previous = htmx.createWebSocket;
    htmx.createWebSocket = function (url) {
      socket = previous ? previous(url) : new WebSocket(url, []);
      return socket;
    };
    var holder = document.createElement("div");
    holder.id = "sb-live-socket";
    holder.hidden = true;
    holder.setAttribute("hx-ext", "ws");
    holder.setAttribute("ws-connect", "/ws/live/?topics=" + encodeURIComponent(topics.join(",")));
    document.body.appendChild(holder);
    htmx.process(holder);
    setInterval(ping, PING_EVERY_MS);
  }

  function ping() {
    if (!socket || socket.readyState !== WebSocket.OPEN) { return; }
    socket.send("ping");
    var sent = awaitingPong = Date.now();
    setTimeout(function () {
      // No answer: the connection is dead without having said so (a laptop slept, a
      // proxy dropped it). Open a new one rather than wait for TCP to notice.
      if (awaitingPong === sent && wrapper) { setState("reconnecting"); wrapper.reconnect(); }
    }, PONG_WITHIN_MS);
  }

  document.addEventListener("htmx:wsConnecting", function () {
    setState(everOpened ? "reconnecting" : "connecting");
  });

  document.addEventListener("htmx:wsOpen", function (event) {
    wrapper = event.detail.socketWrapper;
    retries = 0;
    awaitingPong = null;
    setState("live");
    // A page that was away may have missed pushes; so may one that took long to load
    // (the page was rendered before the socket subscribed): fetch the truth again.
    if (everOpened || performance.now() > 3000) { resync(); }
    everOpened = true;
  });

  document.addEventListener("htmx:wsClose", function (event) {
    var closed = event.detail.event;
    if (closed && closed.target && closed.target !== socket) { return; }
    wrapper = event.detail.socketWrapper || wrapper;
    var code = closed ? closed.code : 1006;
    if (code === 4401) { setState("signed-out"); return; }
    if (code === 4400) { setState("offline"); return; }
    setState("reconnecting");
    if (RETRIED_BY_HTMX.indexOf(code) < 0 && wrapper) {
      // A clean close (a proxy or server restart): htmx would stop here, a dashboard must not.
      retries += 1;
      setTimeout(function () { wrapper.reconnect(); }, reconnectDelay(retries));
    }
  });

  document.addEventListener("htmx:wsError", function () { setState("reconnecting"); });

  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    awaitingPong = null; // any message proves the connection alive
    var message = event.detail.message;
    if (message === "pong") { event.preventDefault(); return; }
    if (typeof message === "string" && message.indexOf("<template") >= 0) {
      event.preventDefault();
      swapParts(message);
    }
  });

  // -- pushed rows into a list: skip ones already shown, mark new ones, keep the newest N.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    if (!target.hasAttribute("data-live-limit")) { return; }
    var fresh = [];
    Array.prototype.slice.call(event.detail.fragment.children || []).forEach(function (row) {
      if (row.id && document.getElementById(row.id)) { row.remove(); return; }
      row.classList.add("sb-new");
      fresh.push(row);
    });
    setTimeout(function () {
      fresh.forEach(function (row) { row.classList.remove("sb-new"); });
    }, 2500);
  });

  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var target = event.detail.target;
    var limit = parseInt(target.getAttribute("data-live-limit"), 10);
    if (!limit) { return; }
    var rows = target.querySelectorAll(":scope > :not(.sb-empty)");
    for (var i = rows.length - 1; i >= limit; i--) { rows[i].remove(); }
  });

  // -- re-sync: replace every element marked data-live-refresh with a fresh copy. An empty
  // value means "the same element (by id) in this page, fetched again"; a URL means "that
  // fragment". One request per distinct URL.
  function resync() {
    var groups = {};
    document.querySelectorAll("[data-live-refresh]").forEach(function (el) {
      var url = el.getAttribute("data-live-refresh") || window.location.href;
      (groups[url] = groups[url] || []).push(el);
    });
    Object.keys(groups).forEach(function (url) {
      fetch(url, { credentials: "same-origin", headers: { "X-Signalbox-Resync": "1" } })
        .then(function (response) {
          if (response.redirected && response.url.indexOf("/login/") >= 0) { setState("signed-out"); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html === null) { return; }
          var template = document.createElement("template");
          var parsed;
          if (url === window.location.href) {
            parsed = new DOMParser().parseFromString(html, "text/html");
          } else {
            template.innerHTML = html; // keeps table parts (<tr>, <tbody>) a full page parse would drop
            parsed = template.content;
          }
          groups[url].forEach(function (el) {
            var fresh = (el.id && parsed.getElementById(el.id)) ||
              (url !== window.location.href && parsed.firstElementChild);
            if (!fresh) { return; }
            var node = document.importNode(fresh, true);
            el.replaceWith(node);
            htmx.process(node);
          });
          document.dispatchEvent(new CustomEvent("signalbox:resynced", { detail: { url: url } }));
        })
        .catch(function () { /* the next reconnect tries again; the page says "Reconnecting" meanwhile */ });
    });
  }

  window.Signalbox = { resync: resync, setState: setState };

  document.addEventListener("DOMContentLoaded", function () {
    var topics = liveTopics();
    if (topics && topics.length) { setState("connecting"); connect(topics); }
  });
})();
