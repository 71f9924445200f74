// Keeps each text field's "12 of 200 characters" count current as one types. The server
// draws the count and checks the limit again on submit; this only saves a round trip, so a
// browser without scripts loses nothing but the live count.
(function () {
  'use strict';
  function update(field) {
    var counter = document.getElementById(field.id + '-count');
    if (!counter) return;
    var limit = Number(field.getAttribute('data-limit'));
    var used = Array.from(field.value).length;
    counter.textContent = used + ' of ' + limit + ' characters';
    if (used > limit) counter.setAttribute('data-over', 'yes');
    else counter.removeAttribute('data-over');
  }
  document.addEventListener('input', function (event) {
    var field = event.target;
    if (field && field.hasAttribute && field.hasAttribute('data-limit')) update(field);
  });
})();
