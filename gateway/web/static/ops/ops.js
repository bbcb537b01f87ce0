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

  function setTime(el, iso, label) {
    // A <time> written by the server's `when` filter: its instant, label and age follow the new value.
    if (!el) { return; }
    var t = el.querySelector("time") || el;
    if (!iso) { el.textContent = "–"; return; }
    if (t.tagName !== "TIME") { return; }
    t.setAttribute("datetime", iso);
    if (label && t.firstChild && t.firstChild.nodeType === 3) { t.firstChild.nodeValue = label + " "; }
  }

  function headline(id, value, bad) {
    var el = document.getElementById(id);
    text(el, value);
    var card = el ? el.closest(".headline-card") : null;
    if (card) {
      card.classList.remove("bad", "warn", "good");
      card.classList.add(value ? bad : "good");
    }
  }

  function applyBroker(b, data) {
    var banner = document.getElementById("broker-banner");
    if (!banner || !b) { return; }
    banner.className = "banner banner-" + b.state;
    banner.dataset.state = b.state;
    var words = { down: "unreachable", checking: "checking…", alarm: "answers, with alarms", ok: "reachable" };
    text(document.getElementById("broker-state"), words[b.state] || b.state);
    text(document.getElementById("broker-error"),
      b.state === "down" ? "(" + String(b.error || "").replace("broker unreachable: ", "") + ")" : "");
    setTime(document.getElementById("broker-last-seen"), b.last_seen, data.broker_last_seen_local);
    var listed = b.alarms.concat(b.warnings);
    text(document.getElementById("broker-alarms"), listed.length ? listed.join("; ")
      : (b.readings === "unknown" ? "unknown" : "none (memory, disk, descriptors)"));
    var unavailable = document.getElementById("broker-unavailable");
    if (unavailable) { unavailable.hidden = b.state !== "down"; }
  }

  function applyOverview(data) {
    setTime(document.getElementById("as-of"), data.at, data.at_local);
    text(document.getElementById("source"),
      data.source === "unavailable" ? "unavailable (" + (data.broker_error || "broker unreachable") + ")" : data.source);
    applyBroker(data.broker, data);
    if (data.headline) {
      headline("failed-count", data.headline.failed, "bad");
      headline("parked-count", data.headline.parked, "bad");
      headline("overdue-count", data.headline.overdue, "bad");
      headline("stuck-count", data.headline.stuck, "warn");
      headline("retrying-count", data.headline.retrying, "warn");
      var parkedAge = document.getElementById("parked-age");
      if (parkedAge) {
        parkedAge.textContent = data.source !== "unavailable" ? "all parking queues"
          : (data.parked_age_seconds === null ? "unknown: broker unreachable"
            : "last known, " + ago(data.parked_age_seconds));
      }
    }
    var alertsLink = document.getElementById("alerts-link");
    if (alertsLink && data.alerts) {
      alertsLink.textContent = data.alerts.length + " active alert" + (data.alerts.length === 1 ? "" : "s");
    }
    text(document.getElementById("outbox-backlog"), data.outbox.backlog);
    text(document.getElementById("outbox-oldest"), age(data.outbox.oldest_age_seconds));
    text(document.getElementById("pending-inquiries-count"), data.counts.pending_inquiries);
    var table = document.getElementById("queues");
    if (table) { table.classList.toggle("stale", data.source === "unavailable"); }
    var unseen = false;
    data.queues.forEach(function (q) {
      var row = document.querySelector('#queues tr[data-queue="' + CSS.escape(q.name) + '"]');
      if (!row) {
        // A folded empty queue that now holds or parks something: the page lists it on the next load.
        if ((q.depth || 0) > 0 || (q.parked || 0) > 0) { unseen = true; }
        return;
      }
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
      row.classList.toggle("missing", !q.exists);
      var undeclared = row.querySelector(".not-declared");
      if (undeclared) { undeclared.hidden = q.exists; }
    });
    data.partners.forEach(function (p) {
      var chip = document.querySelector('#partners-summary [data-partner="' + CSS.escape(p.code) + '"]');
      if (!chip) { return; }
      chip.className = "chip " + p.state_class;
      chip.dataset.state = p.state;
      chip.title = p.code + ": " + p.state + " — " + p.why;
      text(chip.querySelector(".breaker"), p.breaker);
    });
    if (unseen && data.source !== "unavailable") { window.location.reload(); }
  }

  function poll() {
    fetch(PREFIX + "/api/overview", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (resp) {
        if (resp.status === 401) { window.location = PREFIX + "/login"; return null; }
        return resp.ok ? resp.json() : null;
      })
      .then(function (data) { if (data) { applyOverview(data); refreshAges(); } })
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
