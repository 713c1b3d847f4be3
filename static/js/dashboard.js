// The dashboard's pages (home, team, service): the problem count in the tab title, and the
// service page's latency and uptime charts with deploy, scale and incident markers. See docs/dashboard.md.
(function () {
  "use strict";

  // -- "(3) Home · Signalbox": the count comes from the summary's data-problems, which the
  // server renders and pushes; the title follows every push and re-sync.
  function syncTitle() {
    var summary = document.querySelector("[data-problems]");
    if (!summary) { return; }
    var count = parseInt(summary.getAttribute("data-problems"), 10) || 0;
    var base = document.title.replace(/^\(\d+\)\s+/, "");
    document.title = count > 0 ? "(" + count + ") " + base : base;
  }
  document.addEventListener("htmx:oobAfterSwap", syncTitle);
  document.addEventListener("signalbox:resynced", syncTitle);

  // -- charts: the health history API's series, drawn with uPlot, with what happened marked
  // on the time axis: a dashed line where each rollout of this environment started (its
  // version beside it), a dotted one where the instance count changed ("2→3"), and each
  // incident as a shaded span from when it fired until it was resolved ("#12").
  var RANGE_SECONDS = { "1h": 3600, "24h": 86400, "7d": 604800, "30d": 2592000 };
  var MARKER_COLOURS = { succeeded: "#2e7d32", rolled_back: "#c62828", failed: "#c62828", aborted: "#c62828" };
  var KIND_COLOURS = { scale: "#6a1b9a", incident: "#c62828" };
  var KIND_DASHES = { deploy: [4, 3], scale: [1, 3], incident: [] };

  function markerPlugin(markers) {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx, dpr = window.devicePixelRatio || 1;
          var min = u.scales.x.min, max = u.scales.x.max;
          ctx.save();
          ctx.lineWidth = dpr;
          ctx.font = 11 * dpr + "px sans-serif";
          markers.forEach(function (m, n) {
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
        }]
      }
    };
  }

  function draw(section, range, markers) {
    var url = section.dataset.historyUrl + "&range=" + encodeURIComponent(range);
    var now = Date.now() / 1000, from = now - RANGE_SECONDS[range];
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) {
        var pts = data.points || [];
        var t = pts.map(function (p) { return Date.parse(p.at) / 1000; });
        var series = {
          availability: [[t, pts.map(function (p) { return p.availability === null ? null : p.availability * 100; })],
            [{}, { label: "availability %", stroke: "#2e7d32", width: 2 }]],
          latency: [[t, pts.map(function (p) { return p.p50_ms; }), pts.map(function (p) { return p.p95_ms; }), pts.map(function (p) { return p.max_ms; })],
            [{}, { label: "p50 ms", stroke: "#1565c0" }, { label: "p95 ms", stroke: "#ef6c00" }, { label: "max ms", stroke: "#c62828" }]]
        };
        section.querySelectorAll("[data-chart]").forEach(function (el) {
          var s = series[el.dataset.chart];
          el.innerHTML = "";
          if (!t.length) { el.textContent = "No probes in this range yet."; return; }
          new uPlot({
            width: el.clientWidth || 600, height: 200, series: s[1],
            scales: { x: { time: true, range: function () { return [from, now]; } } },
            plugins: [markerPlugin(markers)]
          }, s[0], el);
        });
      })
      .catch(function () {
        section.querySelectorAll("[data-chart]").forEach(function (el) { el.textContent = "Could not load the history; reload to try again."; });
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    syncTitle();
    var section = document.querySelector(".sb-service-charts");
    if (!section || typeof uPlot === "undefined") { return; }
    var holder = document.getElementById(section.dataset.markers);
    var markers = holder ? JSON.parse(holder.textContent) : [];
    var buttons = section.querySelectorAll("[data-range]");
    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        buttons.forEach(function (b) { b.setAttribute("aria-pressed", b === button ? "true" : "false"); });
        draw(section, button.dataset.range, markers);
      });
    });
    draw(section, "24h", markers);
  });
})();
