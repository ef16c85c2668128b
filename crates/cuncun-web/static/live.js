// Live delivery view: updates the counters of a message page from its server-sent events.
(function () {
  var root = document.getElementById("delivery");
  if (!root || !window.EventSource) return;
  var es = new EventSource(root.getAttribute("data-live"));
  es.addEventListener("summary", function (e) {
    var s = JSON.parse(e.data);
    ["targets", "received", "started", "finished", "failed", "pending", "pending_offline"].forEach(function (k) {
      var el = document.getElementById("d-" + k);
      if (el) el.textContent = s[k];
    });
    var st = document.getElementById("live-status");
    if (st) st.setAttribute("data-status", s.status);
  });
})();
