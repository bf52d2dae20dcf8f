// credtool's few behaviours that HTML and htmx do not cover. No inline scripts:
// the Content-Security-Policy allows only files from our own origin.
(function () {
  "use strict";

  // Ctrl+Enter (Cmd+Enter on a Mac) in a query or code box submits its form.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var box = event.target.closest("[data-run-shortcut]");
    if (!box || !box.form) return;
    event.preventDefault();
    var button = box.form.querySelector("button[type=submit], button:not([type])");
    box.form.requestSubmit(button || undefined);
  });

  // Elapsed time of running things, ticking between server polls.
  function formatElapsed(ms) {
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + " s";
    return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-elapsed-since]").forEach(function (el) {
      var since = parseInt(el.getAttribute("data-elapsed-since"), 10);
      if (!isNaN(since)) el.textContent = formatElapsed(Math.max(0, now - since));
    });
  }
  setInterval(tick, 100);
  document.addEventListener("htmx:afterSwap", tick);

  // An answer shown where a button asked for it (Test connection) is scrolled into view if needed.
  document.addEventListener("htmx:afterSettle", function (event) {
    var box = event.target.closest && event.target.closest("[data-keep-in-view]");
    if (box && box.textContent.trim()) box.scrollIntoView({block: "nearest"});
  });

  // A failed request (server down, 500) must not leave a spinner turning forever.
  document.addEventListener("htmx:responseError", function (event) {
    showRequestError("The server answered " + event.detail.xhr.status + ". Try again.", event);
  });
  document.addEventListener("htmx:sendError", function (event) {
    showRequestError("The server could not be reached. Check your connection and try again.", event);
  });
  function showRequestError(text, event) {
    var target = event.detail.target;
    if (target && target.removeAttribute) target.removeAttribute("hx-trigger");
    var box = document.getElementById("request-error");
    if (!box) {
      box = document.createElement("div");
      box.id = "request-error";
      box.className = "alert alert-error toast";
      box.setAttribute("role", "alert");
      document.body.appendChild(box);
    }
    box.textContent = text;
  }

  // A Copy button copies the field it names (data-copy="<id>"), e.g. a new API token.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    field.select();
    function said(text) {
      button.textContent = text;
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    }
    // The clipboard API exists only on HTTPS and localhost: elsewhere the text stays selected.
    if (!navigator.clipboard) return said("Press Ctrl+C");
    navigator.clipboard.writeText(field.value).then(function () { said("Copied"); },
                                                    function () { said("Press Ctrl+C"); });
  });
})();
