// Live status indicator and re-sync after a reconnect.
(function () {
  "use strict";
  function setState(state) {
    var el = document.getElementById("live-status");
    if (el) { el.dataset.state = state; el.textContent = state; }
  }
  var everOpened = false;
  document.addEventListener("htmx:wsOpen", function () {
    setState("live");
    // A page that reconnects may have missed pushes: fetch the truth again.
    if (everOpened) { window.location.reload(); }
    everOpened = true;
  });
  document.addEventListener("htmx:wsClose", function () { setState("reconnecting"); });
  document.addEventListener("htmx:wsError", function () { setState("reconnecting"); });
})();
