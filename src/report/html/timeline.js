(function () {
  "use strict";
  var sc = document.getElementById("sc");
  var tl = document.getElementById("tl");
  var det = document.getElementById("det");
  var W = +tl.getAttribute("data-w");
  var LBL = 210;
  var z = 1;

  // ----- zoom: one CSS variable scales every position -----
  function setZoom(nz, focus) {
    nz = Math.max(0.0002, Math.min(4, nz));
    var fx = focus === undefined ? (sc.clientWidth + LBL) / 2 : focus;
    var t = (sc.scrollLeft + fx - LBL) / z;
    z = nz;
    tl.style.setProperty("--z", String(z));
    tl.classList.toggle("far", z < 0.5);
    sc.scrollLeft = t * z - fx + LBL;
    relabel();
    packCallouts();
  }
  // Callouts: each ends over the event it points at; when that place is taken it moves
  // left (at most two widths) or down a row; at most two rows (the header lists all).
  var calls = Array.prototype.map.call(tl.querySelectorAll(".call"), function (c) {
    return { el: c, x: +c.style.getPropertyValue("--x") };
  });
  var callRow = tl.querySelector(".row.calls");
  function packCallouts() {
    if (!callRow) return;
    var rows = [];
    calls.forEach(function (c) {
      c.el.style.display = "";
      var w = c.el.offsetWidth;
      var want = Math.max(w, c.x * z);
      function fits(row, end) {
        return end >= w && row.every(function (iv) { return end + 8 <= iv[0] || end - w >= iv[1] + 8; });
      }
      var spot = null;
      for (var r = 0; r < rows.length && !spot; r++) {
        var cands = [want].concat(rows[r].map(function (iv) { return iv[0] - 8; }));
        var best = -1;
        cands.forEach(function (end) {
          if (end <= want && want - end <= 2 * w && fits(rows[r], end) && end > best) best = end;
        });
        if (best >= 0) spot = [r, best];
      }
      if (!spot && rows.length < 2) { rows.push([]); spot = [rows.length - 1, want]; }
      if (!spot) { c.el.style.display = "none"; return; }
      rows[spot[0]].push([spot[1] - w, spot[1]]);
      c.el.style.left = spot[1] + "px";
      c.el.style.top = (spot[0] * 40 + 4) + "px";
    });
    callRow.style.height = (rows.length * 40 + 6) + "px";
  }
  // Axis labels: only as many as fit at this zoom.
  var ticks = Array.prototype.map.call(tl.querySelectorAll(".axis .tk"), function (t) {
    return { el: t, x: +t.style.getPropertyValue("--x") };
  });
  function relabel() {
    var last = -1e9;
    ticks.forEach(function (t) {
      var room = t.x * z - last >= 46;
      t.el.classList.toggle("h", !room);
      if (room) last = t.x * z;
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-zoom]"), function (b) {
    b.addEventListener("click", function () {
      var k = b.getAttribute("data-zoom");
      if (k === "in") setZoom(z * 1.5);
      else if (k === "out") setZoom(z / 1.5);
      else if (k === "one") setZoom(1);
      else { setZoom((sc.clientWidth - LBL - 16) / W); sc.scrollLeft = 0; }
    });
  });
  sc.addEventListener("wheel", function (e) {
    if (!(e.ctrlKey || e.metaKey)) return;
    e.preventDefault();
    var r = sc.getBoundingClientRect();
    setZoom(z * (e.deltaY < 0 ? 1.25 : 0.8), e.clientX - r.left);
  }, { passive: false });
  document.getElementById("net").addEventListener("change", function (e) {
    tl.classList.toggle("shownet", e.target.checked);
  });
  var copy = document.getElementById("copy");
  copy.addEventListener("click", function () {
    var text = document.getElementById("cmd").textContent;
    if (navigator.clipboard) {
      navigator.clipboard.writeText(text).then(function () { copy.textContent = "copied"; }, function () {});
    }
  });

  // ----- details: the full record, from the embedded run -----
  var run = null;
  function data() {
    if (!run) run = JSON.parse(document.getElementById("run").textContent);
    return run;
  }
  function record(s) {
    var tr = data().trace;
    if (tr[s] && tr[s].seq === s) return tr[s];
    for (var i = 0; i < tr.length; i++) if (tr[i].seq === s) return tr[i];
    return null;
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function show(node) {
    var s = +node.getAttribute("data-s");
    var r = record(s);
    det.textContent = "";
    var h = el("div", "dh2");
    h.appendChild(el("b", null, r ? r.event : "?"));
    h.appendChild(document.createTextNode("   #" + s + " · " + (r ? r.time : "?") + " ms · scheduler choice " + (r ? r.choice : "?")));
    det.appendChild(h);
    var v = node.getAttribute("data-v");
    if (v) {
      v.split(" ").forEach(function (n) {
        var x = data().verdict.violations[+n];
        if (!x) return;
        var d = el("div", "dv");
        d.appendChild(el("span", "bd", String(+n + 1)));
        d.appendChild(el("b", null, x.invariant));
        d.appendChild(document.createTextNode(" at " + x.time + " ms: " + x.explanation));
        det.appendChild(d);
      });
    }
    det.appendChild(el("pre", null, JSON.stringify(r, null, 2)));
  }
  var pinned = null;
  function pin(n) {
    if (pinned) pinned.classList.remove("sel");
    pinned = n;
    if (n) { n.classList.add("sel"); show(n); }
  }
  tl.addEventListener("mouseover", function (e) {
    if (pinned) return;
    var n = e.target.closest("[data-s]");
    if (n) show(n);
  });
  tl.addEventListener("click", function (e) {
    if (e.target.closest("[data-jump]")) return;
    pin(e.target.closest("[data-s]"));
  });

  // ----- jump to the events a violation cites -----
  function jump(s, select, quiet) {
    var n = tl.querySelector('.i[data-s="' + s + '"]');
    if (!n) return;
    var trk = n.parentNode;
    // The cited event at two thirds of the view: what led to it shows on its left.
    sc.scrollLeft = Math.max(0, trk.offsetLeft + n.offsetLeft - LBL - (sc.clientWidth - LBL) * 0.62);
    var top = trk.offsetTop;
    if (top < sc.scrollTop + 24 || top + 40 > sc.scrollTop + sc.clientHeight) {
      sc.scrollTop = Math.max(0, top - sc.clientHeight / 2);
    }
    if (!quiet) {
      n.classList.remove("flash");
      void n.offsetWidth;
      n.classList.add("flash");
    }
    if (select) pin(n); else show(n);
  }
  document.addEventListener("click", function (e) {
    var j = e.target.closest("[data-jump]");
    if (j) { e.stopPropagation(); jump(+j.getAttribute("data-jump"), true); }
  });

  // Open where the address says (#fit, #z=0.5, #seq=N, #net, combined with &), else on
  // the first violation's evidence.
  var opts = {};
  location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
    var p = kv.split("=");
    if (p[0]) opts[p[0]] = p.length > 1 ? p[1] : true;
  });
  if (opts.net) { document.getElementById("net").checked = true; tl.classList.add("shownet"); }
  if (opts.fit) document.querySelector('[data-zoom="fit"]').click();
  else if (opts.z) setZoom(+opts.z);
  var first = document.querySelector(".viol [data-jump]");
  if (opts.seq !== undefined) jump(+opts.seq, true, true);
  else if (!opts.fit && first) jump(+first.getAttribute("data-jump"), false, true);
  relabel();
  packCallouts();
})();
