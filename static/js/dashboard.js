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
  // on the time axis by static/js/markers.js (rollouts, instance count changes, incidents).
  var RANGE_SECONDS = { "1h": 3600, "24h": 86400, "7d": 604800, "30d": 2592000 };
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
            plugins: [window.SignalboxMarkers.plugin(markers)]
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
    if (!section || typeof uPlot === "undefined" || !window.SignalboxMarkers) { return; }
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
