// Operators' console: live refresh of the overview, select-all and confirmations. Served by the gateway.
(function () {
  "use strict";
  var PREFIX = "/ops";

  function text(el, value) {
    if (el) { el.textContent = (value === null || value === undefined) ? "–" : String(value); }
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) { return "–"; }
    var s = Math.floor(seconds);
    if (s < 120) { return s + " s"; }
    if (s < 7200) { return Math.floor(s / 60) + " min"; }
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  // Keeps the "2 min ago" of every <time datetime> current (the server wrote it at render time).
  function ago(seconds) {
    var future = seconds < 0, s = Math.floor(Math.abs(seconds)), t;
    if (s < 5) { return "just now"; }
    if (s < 90) { t = s + " s"; }
    else if (s < 5400) { t = Math.round(s / 60) + " min"; }
    else if (s < 172800) { t = Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min"; }
    else { t = Math.floor(s / 86400) + " d"; }
    return future ? "in " + t : t + " ago";
  }

  function refreshAges() {
    var now = Date.now();
    document.querySelectorAll("time[datetime] .ago").forEach(function (el) {
      var at = Date.parse(el.parentNode.getAttribute("datetime"));
      if (!isNaN(at)) { el.textContent = ago((now - at) / 1000); }
    });
  }

  function rate(value) { return (value === null || value === undefined) ? "–" : value.toFixed(1); }

  function applyOverview(data) {
    text(document.getElementById("as-of"), data.at);
    text(document.getElementById("source"),
      data.source === "unavailable" ? "unavailable (" + data.broker_error + ")" : data.source);
    text(document.getElementById("outbox-backlog"), data.outbox.backlog);
    text(document.getElementById("outbox-oldest"), age(data.outbox.oldest_age_seconds));
    text(document.getElementById("overdue-count"), data.counts.overdue);
    text(document.getElementById("stuck-count"), data.counts.stuck);
    text(document.getElementById("retrying-count"), data.counts.retrying);
    text(document.getElementById("pending-inquiries-count"), data.counts.pending_inquiries);
    data.queues.forEach(function (q) {
      var row = document.querySelector('#queues tr[data-queue="' + CSS.escape(q.name) + '"]');
      if (!row) { return; }
      ["depth", "ready", "unacked", "consumers"].forEach(function (k) { text(row.querySelector("td." + k), q[k]); });
      text(row.querySelector("td.publish-rate"), rate(q.publish_rate));
      text(row.querySelector("td.deliver-rate"), rate(q.deliver_rate));
      var parked = row.querySelector("td.parked");
      if (parked) {
        parked.textContent = "";
        if (q.parked) {
          var a = document.createElement("a");
          a.href = PREFIX + "/parking/" + encodeURIComponent(q.name);
          a.textContent = String(q.parked);
          parked.appendChild(a);
        } else {
          text(parked, q.parked);
        }
      }
      row.classList.toggle("attention", (q.parked || 0) > 0);
    });
    data.partners.forEach(function (p) {
      var chip = document.querySelector('#partners-summary [data-partner="' + CSS.escape(p.code) + '"]');
      if (!chip) { return; }
      chip.className = "chip " + p.state_class;
      text(chip.querySelector(".breaker"), p.breaker);
    });
  }

  function poll() {
    fetch(PREFIX + "/api/overview", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (resp) {
        if (resp.status === 401) { window.location = PREFIX + "/login"; return null; }
        return resp.ok ? resp.json() : null;
      })
      .then(function (data) { if (data) { applyOverview(data); } })
      .catch(function () { /* next poll */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    window.setInterval(refreshAges, 15000);
    if (document.body.dataset.page === "overview" && document.getElementById("queues")) {
      window.setInterval(poll, 5000);
    }
    var all = document.getElementById("select-all");
    if (all) {
      all.addEventListener("change", function () {
        document.querySelectorAll('#parked input[name="message_id"]:not(:disabled)').forEach(function (box) {
          box.checked = all.checked;
        });
      });
    }
    document.querySelectorAll("button[data-confirm]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!window.confirm(button.dataset.confirm)) { event.preventDefault(); }
      });
    });
  });
})();
