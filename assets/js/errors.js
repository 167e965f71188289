// A classic (non-module) script loaded first: any uncaught error in the UI, including a module
// that fails to load, shows up as a visible banner instead of a silently broken page.
(function () {
  function show(message) {
    var banner = document.getElementById("ui-error");
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "ui-error";
      banner.className = "error";
      banner.setAttribute("role", "alert");
      (document.body || document.documentElement).prepend(banner);
    }
    banner.textContent = "The UI hit an error: " + message;
  }
  window.addEventListener("error", function (event) {
    show(event.message || (event.target && event.target.src ? "could not load " + event.target.src : "unknown error"));
  }, true);
  window.addEventListener("unhandledrejection", function (event) {
    show(event.reason && event.reason.message ? event.reason.message : String(event.reason));
  });
})();
