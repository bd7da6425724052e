// Gotthard's account pages work without this script; it only improves them.
(function () {
  "use strict";
  // Times in the browser's time zone: tell the server once (a cookie), then show the page again.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var shown = document.body.getAttribute("data-zone");
    var sent = document.cookie.split("; ").some(function (c) { return c.indexOf("gotthard_tz=") === 0; });
    if (zone && /^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) {
      document.cookie = "gotthard_tz=" + zone + "; path=/; max-age=31536000; samesite=lax";
      if (!sent && zone !== shown) { window.location.reload(); }
    }
  } catch (e) { /* no Intl: the profile's zone stays */ }
  // Buttons that end something ask first.
  document.addEventListener("submit", function (event) {
    var button = event.submitter || event.target.querySelector("[data-confirm]");
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
  // The account menu closes on Escape and on a click elsewhere.
  var menu = document.getElementById("user-menu");
  if (menu) {
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && menu.open) { menu.open = false; menu.querySelector("summary").focus(); }
    });
    document.addEventListener("click", function (event) {
      if (menu.open && !menu.contains(event.target)) { menu.open = false; }
    });
  }
})();
