// Health charts: availability and latency from the history API, drawn with uPlot.
(function () {
  "use strict";
  function draw(section, range) {
    var url = section.dataset.historyUrl + "&range=" + encodeURIComponent(range);
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        var pts = data.points || [];
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
          new uPlot({ width: el.clientWidth || 600, height: 200, series: s[1] }, s[0], el);
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
