// The console's one script of its own: it puts the browser's IANA time zone
// ("America/New_York") into the sign-in form's hidden field, so that the console shows
// times in the zone the staff member lives in until they choose one in their settings.
// Served by the node as a file, since the Content-Security-Policy refuses inline scripts.
(function () {
  var field = document.getElementById("time-zone");
  if (!field) {
    return;
  }
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (e) {
    field.value = "";
  }
})();
