// What happened, marked on a uPlot chart's time axis (shared by the dashboard's service
// page, the health service page and the circuit page; see docs/dashboard.md): a dashed line
// where each rollout started (its version beside it), a dotted one where the instance count
// changed ("2→3"), and each incident as a shaded span from when it fired until it was
// resolved ("#12"). Each marker also gets a transparent element over the plot whose title
// says what it is and when (the tooltip), with class sb-chart-marker and data-kind.
(function () {
  "use strict";
  var MARKER_COLOURS = { succeeded: "#2e7d32", rolled_back: "#c62828", failed: "#c62828", aborted: "#c62828" };
  var KIND_COLOURS = { scale: "#6a1b9a", incident: "#c62828" };
  var KIND_DASHES = { deploy: [4, 3], scale: [1, 3], incident: [] };

  function when(seconds) { return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC"; }

  function title(m) {
    var kind = m.kind || "deploy";
    if (kind === "scale") { return "scaled " + m.label + " at " + when(m.at); }
    if (kind === "incident") {
      return "incident " + m.label + " (" + m.state + ") from " + when(m.at) + (m.until ? " to " + when(m.until) : ", not resolved");
    }
    return "rollout of " + m.version + " (" + m.state + ") from " + when(m.at) + (m.until ? " to " + when(m.until) : "");
  }

  function titles(u, markers, min, max) {
    u.over.querySelectorAll(".sb-chart-marker").forEach(function (el) { el.remove(); });
    markers.forEach(function (m) {
      var kind = m.kind || "deploy";
      var until = kind === "incident" ? (m.until || max) : m.at;
      if (until < min || m.at > max) { return; }
      var x = u.valToPos(Math.max(m.at, min), "x"), x2 = u.valToPos(Math.min(until, max), "x");
      var el = document.createElement("div");
      el.className = "sb-chart-marker";
      el.dataset.kind = kind;
      el.title = title(m);
      el.style.cssText = "position:absolute;top:0;bottom:0;left:" + (Math.min(x, x2 - 3) - 2) + "px;width:" + Math.max(x2 - x + 4, 5) + "px";
      u.over.appendChild(el);
    });
  }

  function plugin(markers) {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx, dpr = window.devicePixelRatio || 1;
          var min = u.scales.x.min, max = u.scales.x.max;
          ctx.save();
          ctx.lineWidth = dpr;
          ctx.font = 11 * dpr + "px sans-serif";
          markers.forEach(function (m) {
            var kind = m.kind || "deploy";
            var until = kind === "incident" ? (m.until || max) : m.at;
            if (until < min || m.at > max) { return; }
            var x = Math.round(u.valToPos(Math.max(m.at, min), "x", true));
            var colour = KIND_COLOURS[kind] || MARKER_COLOURS[m.state] || "#1565c0";
            ctx.strokeStyle = colour;
            ctx.fillStyle = colour;
            if (kind === "incident") {
              var x2 = Math.round(u.valToPos(Math.min(until, max), "x", true));
              ctx.globalAlpha = 0.12;
              ctx.fillRect(x, u.bbox.top, Math.max(x2 - x, dpr), u.bbox.height);
              ctx.globalAlpha = 1;
            }
            ctx.setLineDash((KIND_DASHES[kind] || []).map(function (d) { return d * dpr; }));
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            // labels stagger by kind so a deploy and its scale-up at one moment both read
            var row = { deploy: 1, scale: 2, incident: 3 }[kind] || 1;
            ctx.fillText(m.version || m.label || "", x + 3 * dpr, u.bbox.top + 12 * row * dpr);
          });
          ctx.restore();
          titles(u, markers, min, max);
        }]
      }
    };
  }

  // The dashboard's markers endpoint (dashboard:service-markers) from `since` (unix
  // seconds): a promise of the list, empty when it cannot be read (the chart still draws).
  function load(url, since) {
    if (!url) { return Promise.resolve([]); }
    var sep = url.indexOf("?") < 0 ? "?" : "&";
    return fetch(url + sep + "since=" + Math.floor(since), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) { return data.markers || []; })
      .catch(function () { return []; });
  }

  window.SignalboxMarkers = { plugin: plugin, load: load };
})();
