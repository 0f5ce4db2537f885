// fisher-flow explore: the page. Plain JS; every number comes from the server's JSON API.
"use strict";
(function () {
  var SVGNS = "http://www.w3.org/2000/svg";
  var PX = 60, PY = 20, SIZE = 600; // the plot area inside #plane
  var el = function (id) { return document.getElementById(id); };
  var plane = el("plane"), density = el("density"), heat = el("heat");

  var cfg = null;
  var state = {
    mu: [1.5, 1.0], target: [-1.5, 2.0], sigma: 1, w: 0.5, grid: 15, scale: 1,
    heat: "kappa", flow: false, euclid: false, n: 24, probe: null,
  };
  var range = [-4, 4];
  var debug = window.__explore = { sent: 0, stale: 0, received: 0, errors: 0, fieldVersion: 0, particleVersion: 0 };

  // ---------- coordinates ----------
  function sx(v) { return PX + (v - range[0]) / (range[1] - range[0]) * SIZE; }
  function sy(v) { return PY + SIZE - (v - range[0]) / (range[1] - range[0]) * SIZE; }
  function ux(px) { return range[0] + (px - PX) / SIZE * (range[1] - range[0]); }
  function uy(py) { return range[0] + (PY + SIZE - py) / SIZE * (range[1] - range[0]); }
  function clampW(v) { return Math.min(range[1], Math.max(range[0], v)); }
  function svgPoint(svg, ev) {
    var r = svg.getBoundingClientRect();
    var vb = svg.viewBox.baseVal;
    return [(ev.clientX - r.left) * vb.width / r.width, (ev.clientY - r.top) * vb.height / r.height];
  }
  function node(tag, attrs, parent) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(x, p) {
    if (x === null || x === undefined) return "∞";
    if (!isFinite(x)) return String(x);
    return Number(x).toPrecision(p || 6);
  }
  function round(v, d) { var f = Math.pow(10, d); return Math.round(v * f) / f; }

  // ---------- requests: one in flight per channel, latest wins, stale dropped ----------
  function Channel(name, onData) {
    this.name = name; this.onData = onData;
    this.inflight = false; this.pending = null; this.latest = 0;
  }
  Channel.prototype.request = function (url) {
    var seq = ++this.latest;
    if (this.inflight) { this.pending = { url: url, seq: seq }; return; }
    this.send(url, seq);
  };
  Channel.prototype.send = function (url, seq) {
    var self = this;
    self.inflight = true;
    debug.sent++;
    fetch(url).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      debug.received++;
      if (seq !== self.latest) { debug.stale++; return; }
      if (!res.ok) { showError(res.body); return; }
      clearError(self.name);
      self.onData(res.body, url);
    }).catch(function (e) {
      debug.errors++;
      setStatus(self.name + ": " + e, true);
    }).then(function () {
      self.inflight = false;
      if (self.pending) { var p = self.pending; self.pending = null; self.send(p.url, p.seq); }
    });
  };

  var statusOwner = null;
  function setStatus(text, isErr) {
    var s = el("status");
    s.textContent = text;
    s.className = "status" + (isErr ? " err" : "");
  }
  function showError(body) {
    statusOwner = body.parameter || "request";
    setStatus("✗ " + body.error, true);
  }
  function clearError() {
    if (statusOwner) { statusOwner = null; setStatus(""); }
  }

  // ---------- query strings ----------
  function modelQuery() {
    return "sigma=" + state.sigma + "&w=" + state.w + "&t1=" + round(state.target[0], 4) + "&t2=" + round(state.target[1], 4);
  }
  function metricQuery(p) { return "mu1=" + round(p[0], 4) + "&mu2=" + round(p[1], 4) + "&" + modelQuery(); }
  function fieldQuery() {
    return modelQuery() + "&grid=" + state.grid + "&scale=" + state.scale + "&heat=" + state.heat + "&nodes=" + cfg.defaults.nodes + "&quad=" + cfg.defaults.quad;
  }
  function particleQuery() {
    return modelQuery() + "&n=" + state.n + "&seed=" + cfg.defaults.seed + "&t_end=" + cfg.defaults.t_end +
      "&frames=" + cfg.defaults.frames + "&euclid=" + (state.euclid ? 1 : 0) + "&quad=" + cfg.defaults.quad + "&rtol=" + cfg.defaults.rtol;
  }
  function exportQuery() {
    var q = modelQuery() + "&grid=" + state.grid + "&scale=" + state.scale + "&heat=" + state.heat +
      "&n=" + state.n + "&seed=" + cfg.defaults.seed + "&t_end=" + cfg.defaults.t_end;
    if (state.probe) q += "&probe=" + round(state.probe[0], 4) + "," + round(state.probe[1], 4);
    return q;
  }

  // ---------- layers ----------
  var layers = {};
  function buildPlane() {
    plane.innerHTML = "";
    node("rect", { x: PX, y: PY, width: SIZE, height: SIZE, fill: "none", stroke: "#5a6685" }, plane);
    var axes = node("g", {}, plane);
    for (var v = Math.ceil(range[0]); v <= range[1]; v++) {
      node("line", { x1: sx(v), x2: sx(v), y1: PY + SIZE, y2: PY + SIZE + 5, class: "axis" }, axes);
      node("line", { x1: PX - 5, x2: PX, y1: sy(v), y2: sy(v), class: "axis" }, axes);
      node("text", { x: sx(v), y: PY + SIZE + 18, "text-anchor": "middle", class: "tick" }, axes).textContent = v;
      node("text", { x: PX - 9, y: sy(v) + 4, "text-anchor": "end", class: "tick" }, axes).textContent = v;
    }
    node("text", { x: PX + SIZE / 2, y: PY + SIZE + 36, "text-anchor": "middle" }, axes).textContent = "μ₁";
    node("text", { x: 16, y: PY + SIZE / 2, "text-anchor": "middle" }, axes).textContent = "μ₂";
    var defs = node("defs", {}, plane);
    [["red", "#ff4d4d"], ["cyan", "#27e0f0"]].forEach(function (c) {
      var m = node("marker", { id: "head-" + c[0], viewBox: "0 0 10 10", refX: 8, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
      node("path", { d: "M0,0 L10,5 L0,10 z", fill: c[1] }, m);
    });
    var clip = node("clipPath", { id: "plot-clip" }, defs);
    node("rect", { x: PX, y: PY, width: SIZE, height: SIZE }, clip);
    var inner = node("g", { "clip-path": "url(#plot-clip)" }, plane);
    layers.ellipses = node("g", {}, inner);
    node("line", { x1: sx(range[0]), y1: sy(range[0]), x2: sx(range[1]), y2: sy(range[1]), class: "singular" }, inner);
    layers.trails = node("g", {}, inner);
    layers.particles = node("g", {}, inner);
    layers.targets = node("g", {}, inner);
    layers.probe = node("g", {}, inner);
    layers.handle = node("circle", { r: 8, class: "handle", id: "theta-handle" }, plane);
    node("text", { x: PX + SIZE - 6, y: PY + 16, "text-anchor": "end", class: "tick" }, plane).textContent = "μ₁ = μ₂: the singular line";
  }

  function drawEllipses(field) {
    var g = layers.ellipses;
    g.innerHTML = "";
    var s = SIZE / (range[1] - range[0]);
    field.ellipses.forEach(function (e) {
      var a0 = e.a[0], a1 = e.a[1];
      var rx = Math.hypot(a0[0], a0[1]) * s, ry = Math.hypot(a1[0], a1[1]) * s;
      var ang = Math.atan2(-a0[1], a0[0]) * 180 / Math.PI;
      node("ellipse", {
        cx: sx(e.c[0]), cy: sy(e.c[1]), rx: rx, ry: ry,
        transform: "rotate(" + ang + " " + sx(e.c[0]) + " " + sy(e.c[1]) + ")",
        class: "ell" + (e.clipped[0] || e.clipped[1] ? " clip" : ""),
      }, g);
    });
  }

  // colour maps: κ (dark blue → teal → yellow), angle (black → purple → orange → white)
  var MAPS = {
    kappa: [[13, 8, 135], [84, 2, 163], [139, 10, 165], [185, 50, 137], [219, 92, 104], [244, 136, 73], [254, 188, 43], [240, 249, 33]],
    angle: [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]],
  };
  function colour(kind, u) {
    var m = MAPS[kind];
    u = Math.min(1, Math.max(0, u)) * (m.length - 1);
    var i = Math.min(m.length - 2, Math.floor(u)), f = u - i;
    return [0, 1, 2].map(function (c) { return Math.round(m[i][c] + f * (m[i + 1][c] - m[i][c])); });
  }
  function drawHeat(h) {
    var ctx = heat.getContext("2d");
    ctx.clearRect(0, 0, heat.width, heat.height);
    el("legend").innerHTML = "";
    if (!h) { ctx.fillStyle = "#0f1420"; ctx.fillRect(0, 0, heat.width, heat.height); return; }
    var m = h.nodes, off = document.createElement("canvas");
    off.width = m; off.height = m;
    var oc = off.getContext("2d"), img = oc.createImageData(m, m);
    for (var j = 0; j < m; j++) {
      for (var i = 0; i < m; i++) {
        var z = h.z[j * m + i];
        var c = z === null ? [255, 255, 255] : colour(h.kind, (z - h.lo) / (h.hi - h.lo));
        var k = ((m - 1 - j) * m + i) * 4; // row 0 of the image is the top (largest μ₂)
        img.data[k] = c[0]; img.data[k + 1] = c[1]; img.data[k + 2] = c[2]; img.data[k + 3] = 255;
      }
    }
    oc.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = true;
    // node i sits at a + i·d: stretch the image half a node beyond the window on each side
    var d = heat.width / (m - 1);
    ctx.globalAlpha = 0.9;
    ctx.drawImage(off, -d / 2, -d / 2, heat.width + d, heat.height + d);
    ctx.globalAlpha = 1;
    // legend
    var lg = el("legend");
    var title = document.createElement("div");
    title.textContent = h.kind === "kappa" ? "log₁₀ κ(I) (κ = λmax/λmin)" : "angle ∠(∇L, I⁻¹∇L) in degrees";
    var bar = document.createElement("canvas"); bar.width = 256; bar.height = 1;
    var bc = bar.getContext("2d"), bi = bc.createImageData(256, 1);
    for (var x = 0; x < 256; x++) { var cc = colour(h.kind, x / 255); bi.data.set([cc[0], cc[1], cc[2], 255], x * 4); }
    bc.putImageData(bi, 0, 0);
    var ends = document.createElement("div"); ends.className = "ends";
    ends.innerHTML = "<span>" + h.lo + "</span><span>" + h.hi + (h.kind === "kappa" ? " (and above)" : "°") + "</span>";
    lg.appendChild(title); lg.appendChild(bar); lg.appendChild(ends);
  }

  function star(cx, cy, r, cls, parent, id) {
    var pts = [];
    for (var k = 0; k < 10; k++) {
      var rr = k % 2 ? r * 0.45 : r, a = -Math.PI / 2 + k * Math.PI / 5;
      pts.push((cx + rr * Math.cos(a)).toFixed(2) + "," + (cy + rr * Math.sin(a)).toFixed(2));
    }
    var attrs = { points: pts.join(" "), class: cls };
    if (id) attrs.id = id;
    return node("polygon", attrs, parent);
  }
  function drawTargets() {
    var g = layers.targets;
    g.innerHTML = "";
    var t = state.target;
    star(sx(t[1]), sy(t[0]), 8, "swap", g);
    node("text", { x: sx(t[1]) + 10, y: sy(t[0]) - 8, class: "tick" }, g).textContent = "swap";
    layers.targetHandle = star(sx(t[0]), sy(t[1]), 11, "target", g, "target-handle");
    node("text", { x: sx(t[0]) + 12, y: sy(t[1]) - 10 }, g).textContent = "θ*";
  }
  function placeHandle() {
    layers.handle.setAttribute("cx", sx(state.mu[0]));
    layers.handle.setAttribute("cy", sy(state.mu[1]));
  }

  // ---------- panel ----------
  function showMetric(r, url) {
    var p = el("kappa-panel");
    var f = r.fisher || [[NaN, NaN], [NaN, NaN]];
    var k = r.condition_number;
    p.dataset.kappa = k === null ? "inf" : String(k);
    p.dataset.query = url.split("?")[1];
    p.innerHTML =
      "<h2>At θ = (" + fmt(state.mu[0], 4) + ", " + fmt(state.mu[1], 4) + ")</h2>" +
      "<table>" +
      "<tr><td>κ(I) = λmax/λmin</td><td class='big' id='kappa-value'>" + fmt(k) + "</td></tr>" +
      "<tr><td>loss L(θ)</td><td>" + fmt(r.loss, 8) + "</td></tr>" +
      "<tr><td>∇L</td><td>(" + fmt(r.gradient[0], 5) + ", " + fmt(r.gradient[1], 5) + ")</td></tr>" +
      "<tr><td>Fisher I(θ)</td><td><span class='matrix'><span>" + fmt(f[0][0], 5) + "</span><span>" + fmt(f[0][1], 5) +
      "</span><span>" + fmt(f[1][0], 5) + "</span><span>" + fmt(f[1][1], 5) + "</span></span></td></tr>" +
      "<tr><td>eigenvalues</td><td>" + fmt(r.eigenvalues[0], 5) + ", " + fmt(r.eigenvalues[1], 5) + "</td></tr>" +
      "<tr><td>I⁻¹∇L</td><td>(" + fmt(r.natural_gradient[0], 5) + ", " + fmt(r.natural_gradient[1], 5) + ")</td></tr>" +
      "<tr><td>∠(∇L, I⁻¹∇L)</td><td>" + fmt(r.angle_deg, 4) + "°</td></tr>" +
      (r.damping > 0 ? "<tr><td>damping λ</td><td>" + fmt(r.damping, 4) + "</td></tr>" : "") +
      "</table>";
  }

  function showProbe(r, url) {
    var g = layers.probe;
    g.innerHTML = "";
    if (!state.probe) return;
    var x = sx(state.probe[0]), y = sy(state.probe[1]), L = 46;
    node("circle", { cx: x, cy: y, r: 4, fill: "#fff", id: "probe-point" }, g);
    function arrow(v, colour, id) {
      var n = Math.hypot(v[0], v[1]);
      if (!(n > 0)) return;
      // descent: −v; screen y points down
      node("line", { x1: x, y1: y, x2: x - v[0] / n * L, y2: y + v[1] / n * L, stroke: colour, "stroke-width": 2.6, "marker-end": "url(#head-" + id + ")" }, g);
    }
    arrow(r.gradient, "#ff4d4d", "red");
    arrow(r.natural_gradient, "#27e0f0", "cyan");
    var t = node("text", { x: x, y: y - L - 8, "text-anchor": "middle", id: "angle-label" }, g);
    t.textContent = "Δθ = " + fmt(r.angle_deg, 4) + "°";
    t.dataset.angle = String(r.angle_deg);
    t.dataset.query = url.split("?")[1];
  }

  // ---------- density strip with the two handles μ₁, μ₂ ----------
  var DX0 = 60, DW = 600, DY0 = 14, DH = 120;
  function dx(v) { return DX0 + (v - range[0]) / (range[1] - range[0]) * DW; }
  function mixture(x, m1, m2) {
    var s = state.sigma, c = 1 / (s * Math.sqrt(2 * Math.PI));
    return state.w * c * Math.exp(-0.5 * Math.pow((x - m1) / s, 2)) + (1 - state.w) * c * Math.exp(-0.5 * Math.pow((x - m2) / s, 2));
  }
  var dens = null;
  function buildDensity() {
    density.innerHTML = "";
    dens = { curves: node("g", {}, density), handles: [] };
    node("line", { x1: DX0, x2: DX0 + DW, y1: DY0 + DH, y2: DY0 + DH, class: "axis" }, density);
    for (var v = Math.ceil(range[0]); v <= range[1]; v++) {
      node("text", { x: dx(v), y: DY0 + DH + 16, "text-anchor": "middle", class: "tick" }, density).textContent = v;
    }
    node("text", { x: DX0 + DW, y: DY0 + 10, "text-anchor": "end", class: "tick" }, density).textContent = "p(x | θ) (cyan) and the target p(x | θ*) (gold, dashed)";
    [0, 1].forEach(function (i) {
      var h = {
        line: node("line", { y1: DY0, y2: DY0 + DH, stroke: "#ffffff", "stroke-opacity": 0.35 }, density),
        rect: node("rect", { y: DY0 + DH - 9, width: 18, height: 18, rx: 4, class: "handle", id: "mu" + (i + 1) + "-handle" }, density),
        label: node("text", { y: DY0 + DH + 32, "text-anchor": "middle" }, density),
      };
      h.label.textContent = "μ" + (i ? "₂" : "₁");
      dens.handles.push(h);
      drag(h.rect, function (e) {
        var p = svgPoint(density, e);
        state.mu[i] = clampW(range[0] + (p[0] - DX0) / DW * (range[1] - range[0]));
        placeHandle(); drawDensity(); updateMetric();
      });
    });
  }
  function drawDensity() {
    var xs = [], n = 200, ymax = 0, k;
    for (k = 0; k <= n; k++) xs.push(range[0] + (range[1] - range[0]) * k / n);
    var cur = xs.map(function (x) { return mixture(x, state.mu[0], state.mu[1]); });
    var tgt = xs.map(function (x) { return mixture(x, state.target[0], state.target[1]); });
    cur.concat(tgt).forEach(function (y) { ymax = Math.max(ymax, y); });
    function path(ys) {
      return ys.map(function (y, i) { return (i ? "L" : "M") + dx(xs[i]).toFixed(1) + "," + (DY0 + DH - y / ymax * (DH - 8)).toFixed(1); }).join("");
    }
    dens.curves.innerHTML = "";
    node("path", { d: path(tgt), fill: "none", stroke: "#ffc83d", "stroke-dasharray": "5 4", "stroke-width": 1.5 }, dens.curves);
    node("path", { d: path(cur) + "L" + dx(range[1]) + "," + (DY0 + DH) + "L" + dx(range[0]) + "," + (DY0 + DH) + "z", fill: "rgba(39,224,240,0.15)", stroke: "#27e0f0", "stroke-width": 2 }, dens.curves);
    dens.handles.forEach(function (h, i) {
      var hx = dx(state.mu[i]);
      h.line.setAttribute("x1", hx); h.line.setAttribute("x2", hx);
      h.rect.setAttribute("x", hx - 9);
      h.label.setAttribute("x", hx);
    });
  }

  // ---------- particles ----------
  var anim = { data: null, start: 0, raf: 0, dur: 7000 };
  function position(tr, t) {
    var ts = tr.t, n = ts.length;
    if (t >= ts[n - 1]) return tr.p[n - 1];
    var lo = 0, hi = n - 1;
    while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (ts[mid] <= t) lo = mid; else hi = mid; }
    var f = (t - ts[lo]) / (ts[hi] - ts[lo] || 1);
    return [tr.p[lo][0] + f * (tr.p[hi][0] - tr.p[lo][0]), tr.p[lo][1] + f * (tr.p[hi][1] - tr.p[lo][1])];
  }
  function frame(now) {
    if (!state.flow || !anim.data) return;
    var d = anim.data, u = ((now - anim.start) % anim.dur) / anim.dur;
    // time runs as t = t_end·u² (the flow is fast at first, slow near θ*)
    var t = d.t_end * u * u;
    var sets = [[d.natural, "#27e0f0"]];
    if (d.euclidean) sets.push([d.euclidean, "#ff4d4d"]);
    var g = layers.particles, tg = layers.trails;
    if (g.childNodes.length !== sets.reduce(function (a, s) { return a + s[0].length; }, 0)) {
      g.innerHTML = ""; tg.innerHTML = "";
      sets.forEach(function (s) {
        s[0].forEach(function () {
          node("polyline", { class: "trail", stroke: s[1] }, tg);
          node("circle", { r: 3.6, class: "particle", fill: s[1] }, g);
        });
      });
    }
    var k = 0;
    sets.forEach(function (s) {
      s[0].forEach(function (tr) {
        var p = position(tr, t), pts = [];
        for (var j = 0; j < tr.t.length && tr.t[j] <= t; j++) pts.push(sx(tr.p[j][0]).toFixed(1) + "," + sy(tr.p[j][1]).toFixed(1));
        pts.push(sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1));
        tg.childNodes[k].setAttribute("points", pts.join(" "));
        g.childNodes[k].setAttribute("cx", sx(p[0]));
        g.childNodes[k].setAttribute("cy", sy(p[1]));
        k++;
      });
    });
    anim.raf = requestAnimationFrame(frame);
  }
  function stopFlow() {
    cancelAnimationFrame(anim.raf);
    layers.particles.innerHTML = ""; layers.trails.innerHTML = "";
  }

  // ---------- channels ----------
  var metricCh = new Channel("metric", showMetric);
  var probeCh = new Channel("probe", showProbe);
  var fieldCh = new Channel("field", function (f) {
    drawEllipses(f); drawHeat(f.heat); debug.fieldVersion++;
  });
  var particleCh = new Channel("particles", function (d) {
    anim.data = d; debug.particleVersion++;
    setStatus(d.natural.length + " natural" + (d.euclidean ? " + " + d.euclidean.length + " Euclidean" : "") +
      " particles, t ∈ [0, " + d.t_end + "] (" + d.starts + ")");
    if (state.flow) { cancelAnimationFrame(anim.raf); anim.start = performance.now(); anim.raf = requestAnimationFrame(frame); }
  });

  function updateMetric() { metricCh.request("/api/metric?" + metricQuery(state.mu)); }
  function updateProbe() { if (state.probe) probeCh.request("/api/metric?" + metricQuery(state.probe)); }
  function updateField() { fieldCh.request("/api/field?" + fieldQuery()); }
  function updateParticles() { if (state.flow) particleCh.request("/api/particles?" + particleQuery()); }
  function updateExports() {
    el("export-svg").href = "/api/export.svg?" + exportQuery();
    el("export-png").href = "/api/export.png?" + exportQuery();
    el("export-toml").href = "/api/model.toml?" + modelQuery() + "&t_end=" + cfg.defaults.t_end;
  }
  function modelChanged() {
    drawTargets(); drawDensity(); updateMetric(); updateProbe(); updateField(); updateParticles(); updateExports();
  }

  // ---------- interaction ----------
  function drag(target, onMove, onEnd) {
    target.addEventListener("pointerdown", function (ev) {
      ev.preventDefault(); ev.stopPropagation();
      target.setPointerCapture(ev.pointerId);
      target.dataset.dragging = "1";
      function move(e) { onMove(e); }
      function up(e) {
        if (target.hasPointerCapture(e.pointerId)) target.releasePointerCapture(e.pointerId);
        target.removeEventListener("pointermove", move);
        target.removeEventListener("pointerup", up);
        target.removeEventListener("pointercancel", up);
        delete target.dataset.dragging;
        if (onEnd) onEnd();
      }
      target.addEventListener("pointermove", move);
      target.addEventListener("pointerup", up);
      target.addEventListener("pointercancel", up);
    });
  }

  function wireInteractions() {
    drag(layers.handle, function (e) {
      var p = svgPoint(plane, e);
      state.mu = [clampW(ux(p[0])), clampW(uy(p[1]))];
      placeHandle(); drawDensity(); updateMetric();
    });
    // the target star is redrawn on every move: listen on the plane and test the star
    var draggingTarget = false;
    plane.addEventListener("pointerdown", function (ev) {
      if (ev.target && ev.target.id === "target-handle") {
        draggingTarget = true; plane.setPointerCapture(ev.pointerId); ev.preventDefault(); return;
      }
      if (ev.target === layers.handle) return;
      var p = svgPoint(plane, ev);
      if (p[0] < PX || p[0] > PX + SIZE || p[1] < PY || p[1] > PY + SIZE) return;
      state.probe = [ux(p[0]), uy(p[1])];
      updateProbe(); updateExports();
    });
    plane.addEventListener("pointermove", function (ev) {
      if (!draggingTarget) return;
      var p = svgPoint(plane, ev);
      state.target = [clampW(ux(p[0])), clampW(uy(p[1]))];
      modelChanged();
    });
    plane.addEventListener("pointerup", function (ev) {
      if (draggingTarget) { draggingTarget = false; plane.releasePointerCapture(ev.pointerId); }
    });

    function slider(id, key, parse, after) {
      var s = el(id), out = el(id + "-out");
      s.value = state[key]; out.textContent = state[key];
      s.addEventListener("input", function () {
        state[key] = parse(s.value); out.textContent = s.value; after();
      });
    }
    slider("sigma", "sigma", parseFloat, modelChanged);
    slider("weight", "w", parseFloat, modelChanged);
    slider("grid", "grid", function (v) { return parseInt(v, 10); }, function () { updateField(); updateExports(); });
    slider("ellipse-scale", "scale", parseFloat, function () { updateField(); updateExports(); });

    var order = ["kappa", "angle", "none"], names = { kappa: "log₁₀ κ", angle: "angle", none: "none" };
    el("heat-toggle").addEventListener("click", function () {
      state.heat = order[(order.indexOf(state.heat) + 1) % 3];
      el("heat-toggle").textContent = "heat map: " + names[state.heat];
      updateField(); updateExports();
    });
    el("flow-toggle").addEventListener("click", function () {
      state.flow = !state.flow;
      var b = el("flow-toggle");
      b.setAttribute("aria-pressed", String(state.flow));
      b.textContent = state.flow ? "Flow: on" : "Flow: off";
      if (state.flow) { anim.data = null; updateParticles(); } else { stopFlow(); }
    });
    el("euclid-toggle").addEventListener("change", function () { state.euclid = el("euclid-toggle").checked; updateParticles(); });
    el("particles").addEventListener("change", function () {
      var v = parseInt(el("particles").value, 10);
      if (v >= 1 && v <= cfg.limits.n) { state.n = v; updateParticles(); updateExports(); }
      else { setStatus("particles: 1 … " + cfg.limits.n, true); el("particles").value = state.n; }
    });
  }
  // ---------- start ----------
  fetch("/api/config").then(function (r) { return r.json(); }).then(function (c) {
    cfg = c;
    range = c.range;
    state.sigma = c.sigma; state.w = c.w; state.target = c.target.slice();
    state.grid = c.defaults.grid; state.scale = c.defaults.scale; state.n = c.defaults.n;
    state.probe = c.defaults.probe ? c.defaults.probe.slice() : null;
    el("model-name").textContent = c.model;
    el("particles").max = c.limits.n; el("particles").value = state.n;
    el("grid").max = c.limits.grid;
    buildPlane(); buildDensity(); placeHandle(); wireInteractions();
    modelChanged();
    document.body.dataset.ready = "1";
  }).catch(function (e) { setStatus("cannot load /api/config: " + e, true); });
})();
