/**
 * The dashboard's script (inline in the page; plain browser JavaScript, no library, no build
 * step). It keeps one element per replica (`data-replica`, `data-state`) with one drain button,
 * and redraws the other parts from each `state` event of `/dashboard/events`.
 *
 * @module
 */
export const DASHBOARD_JS = String.raw`
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var esc = function (s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  };
  var ago = function (ms) {
    if (ms == null) return "–";
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  };
  var bytes = function (n) {
    if (n == null) return "–";
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  };
  var pct = function (x) { return x == null ? "–" : (100 * x).toFixed(1) + " %"; };
  var fixed = function (x, d) { return x == null ? "–" : Number(x).toFixed(d); };
  var time = function (t) { return new Date(t).toLocaleTimeString(); };

  function spark(values, max, label, last) {
    var w = 120, h = 28, n = values.length;
    var top = max != null ? max : Math.max.apply(null, values.concat([1e-9]));
    var pts = values.map(function (v, i) {
      var x = n < 2 ? w : (i * w) / (n - 1);
      var y = h - 2 - (top > 0 ? (v / top) * (h - 4) : 0);
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" ");
    return '<figure><svg viewBox="0 0 ' + w + " " + h + '" preserveAspectRatio="none" role="img" aria-label="' +
      esc(label) + '"><polyline fill="none" stroke="#2f6fdf" stroke-width="1.5" points="' + pts +
      '"/></svg>' + esc(label) + " " + esc(last) + "</figure>";
  }

  function replicaCard(el, r, now) {
    el.dataset.state = r.state;
    var fill = r.node.budgetBytes ? (r.node.usedBytes || 0) / r.node.budgetBytes : null;
    var price = r.costPerGiB == null ? "no price" : r.costPerGiB + " " + r.currency + "/GiB";
    var drained = r.state === "draining";
    // The button stays the same element across redraws, so a click is not lost to one.
    var info = el.firstElementChild, b = el.lastElementChild;
    if (!info) {
      info = document.createElement("div");
      b = document.createElement("button");
      b.type = "button";
      b.dataset.drain = r.id;
      el.append(info, b);
    }
    b.dataset.on = drained ? "0" : "1";
    b.textContent = drained ? "Undrain" : "Drain";
    info.innerHTML =
      "<h3><span>" + esc(r.id) + '</span><span class="badge ' + esc(r.state) + '">' + esc(r.state) +
      " for " + ago(now - r.since) + "</span></h3>" +
      '<p class="reason">' + esc(r.reason) + "</p>" +
      "<dl><dt>address</dt><dd>" + esc(r.address) + (r.port ? ":" + r.port : "") + "</dd>" +
      "<dt>provider</dt><dd>" + esc(r.provider || "–") + " · " + esc(price) + "</dd>" +
      "<dt>load</dt><dd>" + (r.state === "dead" && r.rps != null ? "last " : "") + fixed(r.rps, 1) + " req/s</dd>" +
      "<dt>hit ratio</dt><dd>" + pct(r.hitRatio) + "</dd>" +
      "<dt>bytes served</dt><dd>" + bytes(r.node.bytesServed) + "</dd>" +
      "<dt>cache fill</dt><dd>" + bytes(r.node.usedBytes != null ? r.node.usedBytes : r.cacheBytes) +
      (fill == null ? "" : " of " + bytes(r.node.budgetBytes) +
        '<div class="bar"><i style="width:' + Math.min(100, 100 * fill).toFixed(1) + '%"></i></div>') +
      "</dd><dt>heartbeat</dt><dd>" + (r.heartbeatAgeMs == null ? "– (static)" : ago(r.heartbeatAgeMs) + " ago") +
      "</dd></dl>" +
      '<div class="spark">' +
      spark(r.history.rps, null, "req/s", fixed(r.rps, 1)) +
      spark(r.history.hit, 1, "hit ratio", pct(r.hitRatio)) + "</div>";
  }

  function drawFleet(s) {
    var box = $("fleet"), seen = {};
    s.replicas.forEach(function (r) {
      seen[r.id] = true;
      var el = box.querySelector('[data-replica="' + CSS.escape(r.id) + '"]');
      if (!el) {
        el = document.createElement("article");
        el.className = "replica";
        el.dataset.replica = r.id;
        box.appendChild(el);
      }
      replicaCard(el, r, s.now);
    });
    Array.prototype.slice.call(box.children).forEach(function (el) {
      if (!seen[el.dataset.replica]) el.remove();
    });
  }

  var COLORS = { alive: "#1f9d55", dead: "#d64545", pending: "#c98a00", draining: "#6b5bd6" };
  function xy(lat, lon) { return [(lon + 180).toFixed(1), (90 - lat).toFixed(1)]; }

  function drawMap(s) {
    var out = ['<svg viewBox="0 0 360 180" role="img" aria-label="replicas and clients by latitude and longitude">'];
    for (var lon = -150; lon <= 150; lon += 30) {
      out.push('<line x1="' + (lon + 180) + '" y1="0" x2="' + (lon + 180) + '" y2="180" stroke="#cfdcee" stroke-width="0.4"/>');
    }
    for (var lat = -60; lat <= 60; lat += 30) {
      out.push('<line x1="0" y1="' + (90 - lat) + '" x2="360" y2="' + (90 - lat) + '" stroke="#cfdcee" stroke-width="0.4"/>');
    }
    var at = {};
    s.replicas.forEach(function (r) { if (r.lat != null && r.lon != null) at[r.id] = xy(r.lat, r.lon); });
    var clients = {};
    s.matrix.rows.forEach(function (row) { if (row.location) clients[row.subnet] = row.location; });
    s.decisions.forEach(function (d) {
      var row = s.matrix.rows.filter(function (x) { return x.location && x.subnet === d.subnet; })[0];
      var target = at[d.answer[0]];
      if (row && target) {
        var c = xy(row.location.lat, row.location.lon);
        out.push('<line x1="' + c[0] + '" y1="' + c[1] + '" x2="' + target[0] + '" y2="' + target[1] +
          '" stroke="#2f6fdf" stroke-width="0.5" stroke-dasharray="2 1"/>');
      }
    });
    Object.keys(clients).forEach(function (k) {
      var c = xy(clients[k].lat, clients[k].lon);
      out.push('<rect x="' + (c[0] - 1.5) + '" y="' + (c[1] - 1.5) + '" width="3" height="3" fill="#1d2330"><title>client ' + esc(k) + "</title></rect>");
    });
    s.replicas.forEach(function (r) {
      var p = at[r.id];
      if (!p) return;
      out.push('<circle cx="' + p[0] + '" cy="' + p[1] + '" r="3" fill="' + (COLORS[r.state] || "#5f6b7a") +
        '" data-map-replica="' + esc(r.id) + '"><title>' + esc(r.id + " (" + r.state + ")") + "</title></circle>" +
        '<text x="' + (Number(p[0]) + 4) + '" y="' + (Number(p[1]) + 1.5) + '" font-size="5">' + esc(r.id) + "</text>");
    });
    out.push("</svg>");
    var none = s.replicas.filter(function (r) { return r.lat == null || r.lon == null; }).map(function (r) { return r.id; });
    $("mapbox").innerHTML = out.join("") +
      '<p class="reason">● replica (colour: state) ■ client subnet - - latest answer' +
      (none.length ? " · no location: " + esc(none.join(", ")) : "") + "</p>";
  }

  function drawMatrix(s) {
    var m = s.matrix;
    if (!m.rows.length) { $("matrix").innerHTML = '<p class="reason">no client subnet seen yet</p>'; return; }
    var h = "<table><tr><th>client subnet</th>" + m.replicas.map(function (id) { return "<th>" + esc(id) + "</th>"; }).join("") + "</tr>";
    m.rows.forEach(function (row) {
      h += "<tr><td>" + esc(row.subnet) + "</td>" + row.cells.map(function (c) {
        return '<td class="num">' + (c.measuredMs == null ? "–" : c.measuredMs) + " / " + (c.geoMs == null ? "–" : c.geoMs) + "</td>";
      }).join("") + "</tr>";
    });
    $("matrix").innerHTML = h + "</table>";
  }

  function drawDecisions(s) {
    if (!s.decisions.length) { $("decisions").innerHTML = '<p class="reason">no DNS answer given yet</p>'; return; }
    $("decisions").innerHTML = "<table><tr><th>time</th><th>client</th><th>answer</th><th>how</th><th>explanation (now)</th></tr>" +
      s.decisions.map(function (d) {
        return "<tr><td>" + time(d.at) + "</td><td>" + esc(d.client) + " " + d.type + "</td><td>" + esc(d.answer.join(", ") || "none") +
          "</td><td>" + esc(d.how) + "</td><td>" + esc(d.reason) + "</td></tr>";
      }).join("") + "</table>";
  }

  function drawReplication(s) {
    var count = {};
    s.replicas.forEach(function (r) { if (r.node.digest) count[r.node.digest] = (count[r.node.digest] || 0) + 1; });
    var best = Object.keys(count).sort(function (a, b) { return count[b] - count[a]; })[0];
    $("replication").innerHTML = "<table><tr><th>node</th><th>files</th><th>digest</th><th>lag</th><th>last change</th><th>catch-up</th></tr>" +
      s.replicas.map(function (r) {
        var n = r.node;
        var same = n.digest && n.digest === best;
        return '<tr data-node="' + esc(r.id) + '"><td>' + esc(r.id) + '</td><td class="num">' + (n.files == null ? "–" : n.files) +
          '</td><td><span class="' + (n.digest ? (same ? "ok" : "bad") : "") + '">' + esc(n.digest ? n.digest.slice(0, 12) : "–") +
          "</span></td><td class=\"num\">" + (n.lagSeconds == null ? "–" : n.lagSeconds + " s") +
          "</td><td>" + (n.digestSince == null ? "–" : ago(s.now - n.digestSince) + " ago") +
          "</td><td>" + esc(n.error ? "unreachable: " + n.error : (n.catchUp || "–")) + "</td></tr>";
      }).join("") + "</table>";
  }

  var shown = 0;
  function drawEvents(s) {
    var list = $("events");
    s.events.slice().reverse().forEach(function (e) {
      if (e.seq <= shown) return;
      shown = e.seq;
      var li = document.createElement("li");
      li.dataset.kind = e.kind;
      li.innerHTML = '<span class="kind">' + esc(e.kind) + "</span> " + time(e.at) + " " + esc(e.text);
      list.insertBefore(li, list.firstChild);
    });
    while (list.children.length > 100) list.lastChild.remove();
  }

  function draw(s) {
    $("zone").textContent = s.zone || "?";
    $("policy").textContent = s.policy;
    drawFleet(s); drawMap(s); drawMatrix(s); drawDecisions(s); drawReplication(s); drawEvents(s);
    document.body.dataset.updated = String(s.now);
  }

  function connect() {
    var es = new EventSource("/dashboard/events");
    es.addEventListener("state", function (ev) {
      $("conn").dataset.live = "yes";
      $("conn").textContent = "live · " + time(Date.now());
      draw(JSON.parse(ev.data));
    });
    es.onerror = function () { $("conn").dataset.live = "no"; $("conn").textContent = "reconnecting…"; };
  }

  function act(method, path, body) {
    var headers = { "content-type": "application/json" };
    var t = $("token").value;
    if (t) headers.authorization = "Bearer " + t;
    return fetch(path, { method: method, headers: headers, body: body == null ? undefined : JSON.stringify(body) })
      .then(function (res) { return res.text().then(function (text) {
        $("result").className = res.ok ? "ok" : "bad";
        $("result").textContent = method + " " + path + ": " + res.status + " " + text;
      }); })
      .catch(function (e) { $("result").className = "bad"; $("result").textContent = String(e); });
  }

  $("fleet").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-drain]");
    if (!b) return;
    act(b.dataset.on === "1" ? "POST" : "DELETE", "/dashboard/replicas/" + encodeURIComponent(b.dataset.drain) + "/drain");
  });
  $("purgeform").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var p = $("purge").value.trim();
    if (!p) return;
    act("POST", "/dashboard/purge", /\/$/.test(p) ? { prefix: p } : { url: p });
  });
  connect();
})();
`;
