// The header's search box: results as you type (htmx fetches /search?q=), "/" focuses it from
// anywhere, arrow keys walk the results, Escape closes them. See docs/dashboard.md.
(function () {
  "use strict";

  function box() { return document.getElementById("site-search"); }
  function area() { var input = box(); return input && input.closest(".sb-search"); }
  function results() { return document.getElementById("search-results"); }
  function hits() { var r = results(); return r ? Array.prototype.slice.call(r.querySelectorAll("a.sb-search-hit")) : []; }
  function close() { var r = results(); if (r) { r.innerHTML = ""; } }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  document.addEventListener("keydown", function (event) {
    var input = box();
    if (!input) { return; }
    if (event.key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey && !typing(event.target)) {
      event.preventDefault();
      input.focus();
      input.select();
      return;
    }
    var around = area();
    if (!around || !around.contains(event.target)) { return; }
    var list = hits();
    var at = list.indexOf(document.activeElement);
    if (event.key === "Escape") {
      close();
      input.focus();
    } else if (event.key === "ArrowDown" && list.length) {
      event.preventDefault();
      list[Math.min(at + 1, list.length - 1)].focus();
    } else if (event.key === "ArrowUp" && list.length) {
      event.preventDefault();
      if (at <= 0) { input.focus(); } else { list[at - 1].focus(); }
    } else if (event.key === "Enter" && event.target === input && list.length === 1) {
      // One match: go straight there (several: the full results page, the form's default).
      event.preventDefault();
      window.location.href = list[0].href;
    }
  });

  // Results close when focus leaves the search box and its results (a click elsewhere, Tab
  // past the end); a click on a result lands first (hence the short delay).
  document.addEventListener("focusout", function (event) {
    var around = area();
    if (!around || !around.contains(event.target)) { return; }
    setTimeout(function () {
      if (!around.contains(document.activeElement)) { close(); }
    }, 150);
  });
})();
