// Scaling pages: a control's refusal (400 bad input, 409 a conflict with the group's state)
// comes back as the form with the reason next to its field. htmx swaps only 2xx answers by
// default, so forms marked data-sb-refusals let these two swap in as well.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    // The element that sent the request (the event itself fires on the swap's target).
    var sender = event.detail.requestConfig && event.detail.requestConfig.elt;
    if ((status === 400 || status === 409) && sender && sender.closest && sender.closest("[data-sb-refusals]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
