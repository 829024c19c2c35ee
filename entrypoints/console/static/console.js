// billrun console: the little the pages need beyond HTML forms, with no library.
// - [data-poll=URL]: refetch that fragment every second and swap it in; when the
//   fresh fragment no longer polls (the job finished), reload the page so every
//   section (status, actions, invoices) shows the outcome.
// - [data-load=URL]: fetch a slow fragment once, after the page showed.
// - [data-toggle=ID]: show or hide a section (the schedule and cancel forms).
// - [data-select-all=NAME]: tick or untick every checkbox of that name.
(function () {
  "use strict";

  function fetchFragment(url) {
    return fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var box = document.createElement("div");
        box.innerHTML = html.trim();
        return box.firstElementChild;
      });
  }

  function poll(element) {
    var url = element.getAttribute("data-poll");
    setTimeout(function () {
      fetchFragment(url).then(function (fresh) {
        if (!fresh || !document.body.contains(element)) { return; }
        if (fresh.hasAttribute("data-poll")) {
          element.replaceWith(fresh);
          poll(fresh);
        } else {
          window.location.reload();
        }
      }, function () { poll(element); });
    }, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("[data-load]").forEach(function (element) {
      fetchFragment(element.getAttribute("data-load")).then(function (fresh) {
        if (fresh) { element.replaceWith(fresh); }
      });
    });
    document.querySelectorAll("[data-toggle]").forEach(function (button) {
      var target = document.getElementById(button.getAttribute("data-toggle"));
      button.setAttribute("aria-controls", target.id);
      button.addEventListener("click", function () {
        target.hidden = !target.hidden;
        if (!target.hidden) {
          var first = target.querySelector("input:not([type=hidden]), select, textarea");
          if (first) { first.focus(); }
        }
      });
    });
    document.querySelectorAll("[data-select-all]").forEach(function (box) {
      var name = box.getAttribute("data-select-all");
      box.addEventListener("change", function () {
        document.querySelectorAll("input[type=checkbox][name='" + name + "']").forEach(function (c) {
          c.checked = box.checked;
        });
      });
    });
  });
})();
