// The live character counter under each limited text field of the case page's forms: the
// field names its limit (data-limit) and its counter (data-counter); the counter reads
// "N of LIMIT characters" and is marked when the text is over. Served by the node
// (`/assets/counter.js`); without it the counter still shows the count the page was drawn
// with, and the server still refuses an over-long text next to its field.
(function () {
  "use strict";
  function update(field) {
    var counter = document.getElementById(field.getAttribute("data-counter"));
    var limit = parseInt(field.getAttribute("data-limit"), 10);
    if (!counter || !limit) return;
    // Characters as the server counts them (Unicode scalar values), not UTF-16 units.
    var count = Array.from(field.value).length;
    counter.textContent = count + " of " + limit + " characters" +
      (count > limit ? ": " + (count - limit) + " too many" : "");
    counter.classList.toggle("over", count > limit);
  }
  function start() {
    var fields = document.querySelectorAll("textarea[data-limit][data-counter]");
    Array.prototype.forEach.call(fields, function (field) {
      field.addEventListener("input", function () { update(field); });
      update(field);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
