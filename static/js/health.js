// Health charts: availability and latency from the history API, drawn with uPlot, with the
// service's rollouts, instance count changes and incidents marked on the time axis
// (static/js/markers.js, from the dashboard's markers endpoint named in data-markers-url).
(function () {
  "use strict";
  var RANGE_SECONDS = { "1h": 3600, "24h": 86400, "7d": 604800, "30d": 2592000 };
  function draw(section, range) {
    var url = section.dataset.historyUrl + "&range=" + encodeURIComponent(range);
    var now = Date.now() / 1000, from = now - (RANGE_SECONDS[range] || 86400);
    var marks = window.SignalboxMarkers;
    var history = fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
    var markers = marks ? marks.load(section.dataset.markersUrl, from) : Promise.resolve([]);
    Promise.all([history, markers])
      .then(function (both) {
        var pts = both[0].points || [];
        var t = pts.map(function (p) { return Date.parse(p.at) / 1000; });
        var avail = pts.map(function (p) { return p.availability === null ? null : p.availability * 100; });
        var series = {
          availability: [[t, avail], [{}, { label: "availability %", stroke: "#2e7d32" }]],
          latency: [[t, pts.map(function (p) { return p.p50_ms; }), pts.map(function (p) { return p.p95_ms; }), pts.map(function (p) { return p.max_ms; })],
                    [{}, { label: "p50", stroke: "#1565c0" }, { label: "p95", stroke: "#ef6c00" }, { label: "max", stroke: "#c62828" }]]
        };
        section.querySelectorAll("[data-chart]").forEach(function (el) {
          var s = series[el.dataset.chart];
          el.innerHTML = "";
          if (!t.length) { el.textContent = "No probes in this range yet."; return; }
          new uPlot({
            width: el.clientWidth || 600, height: 200, series: s[1],
            scales: { x: { time: true, range: function () { return [from, now]; } } },
            plugins: marks ? [marks.plugin(both[1])] : []
          }, s[0], el);
        });
      })
      .catch(function () {
        section.querySelectorAll("[data-chart]").forEach(function (el) { el.textContent = "Could not load the history."; });
      });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var section = document.querySelector(".sb-charts");
    if (!section) { return; }
    section.querySelectorAll("[data-range]").forEach(function (b) {
      b.addEventListener("click", function () { draw(section, b.dataset.range); });
    });
    draw(section, "24h");
  });
})();
