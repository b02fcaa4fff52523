// callgate dashboard: live refresh. Every few seconds, fetch this page again and swap in
// the regions marked data-live (by id), unless the tab is hidden or a form is being typed
// in. Forms and links work without this script; it only saves pressing reload.
(function () {
  "use strict";
  var every = 3000;
  function typing() {
    var el = document.activeElement;
    return el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA");
  }
  function refresh() {
    if (document.hidden || typing() || !document.querySelector("[data-live]")) return;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Callgate-Refresh": "1" } })
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          var now = old.id && fresh.getElementById(old.id);
          if (now) old.replaceWith(document.importNode(now, true));
        });
        document.documentElement.dataset.refreshed = String(Date.now());
      })
      .catch(function () { /* offline for a moment: try again next time */ });
  }
  setInterval(refresh, every);
})();
