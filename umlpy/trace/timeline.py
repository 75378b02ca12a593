"""``--timeline out.html``: a self-contained page (inline CSS, JS and SVG,
nothing fetched) that draws the traced run: one lane per guest process or
thread, ordered as the process tree, over time; each syscall a mark
coloured by its class (%file, %process...), errors outlined in red; a
hover tells the call, its result and duration."""
import html
import json

from .filters import MAIN_CLASSES, classes_of

MAX_MARKS = 60000
COLORS = {"process": "#e8710a", "signal": "#c9a100", "network": "#9334e6",
          "memory": "#1e8e3e", "file": "#1a73e8", "desc": "#12a4af", "ipc": "#a0522d",
          "creds": "#d01884", "clock": "#5f6368", "other": "#9aa0a6"}
CLASS_NAMES = list(MAIN_CLASSES) + ["other"]


class TimelineSink:
    wants_session = True

    def __init__(self, path, title="umlpy trace"):
        self.path = path
        self.title = title
        self.calls = []
        self.dropped = 0
        self._cls = {}

    def _class_index(self, name):
        idx = self._cls.get(name)
        if idx is None:
            found = classes_of(name)
            idx = self._cls[name] = CLASS_NAMES.index(found[0] if found else "other")
        return idx

    def exit(self, rec):
        if len(self.calls) >= MAX_MARKS:
            self.dropped += 1
            return
        r = rec.result
        err = r is not None and -4096 < r < 0
        ret = rec.decoded.ret if rec.decoded is not None else ("?" if r is None else str(r))
        self.calls.append((rec.tid, rec.t0, rec.t1, rec.name, self._class_index(rec.name),
                           1 if err else 0, ret))

    def close(self, session):
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(render(self.data(session), self.title))

    def data(self, session):
        procs = session.all_procs
        start = min([p.start for p in procs] + [c[1] for c in self.calls],
                    default=session.started or 0.0)
        index = {}
        lanes = []
        pid_lane = {}
        for proc in procs:
            parent, thread = session.parents.get(proc.pid, (None, False))
            end = proc.end if proc.end is not None else start
            status = None
            if proc.status is not None:
                s = proc.status
                status = f"exit {(s >> 8) & 0xFF}" if s & 0x7F == 0 else f"signal {s & 0x7F}"
            index[proc.tid] = len(lanes)
            pid_lane.setdefault(proc.pid, len(lanes))
            lanes.append({"pid": proc.pid, "host": proc.tid, "parent": parent,
                          "thread": thread, "label": proc.comm or "",
                          "start": round((proc.start - start) * 1000, 3),
                          "end": round((end - start) * 1000, 3), "exit": status,
                          "calls": proc.calls, "errors": proc.errors})
        calls = []
        for tid, t0, t1, name, cls, err, ret in self.calls:
            lane = index.get(tid)
            if lane is None:
                continue
            t1 = t0 if t1 is None else t1
            calls.append([lane, round((t0 - start) * 1000, 3),
                          round((t1 - t0) * 1000, 3), name, cls, err, ret])
        end = max([l["end"] for l in lanes] + [c[1] + c[2] for c in calls] + [0.001])
        return {"procs": lanes, "calls": calls, "classes": CLASS_NAMES,
                "colors": [COLORS[c] for c in CLASS_NAMES], "end": end,
                "dropped": self.dropped}


def render(data, title="umlpy trace"):
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return PAGE.replace("@TITLE@", html.escape(title)).replace("@DATA@", blob)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>@TITLE@</title>
<style>
body { font: 13px system-ui, sans-serif; margin: 12px; color: #202124; }
h1 { font-size: 16px; margin: 0 0 6px; }
#info { color: #5f6368; margin-bottom: 6px; }
#legend span { display: inline-block; margin-right: 12px; }
#legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px;
            vertical-align: -1px; border-radius: 2px; }
#wrap { overflow-x: auto; border: 1px solid #dadce0; margin-top: 8px; }
svg text { font: 11px system-ui, sans-serif; }
.life { fill: #f1f3f4; }
.lane:hover .life { fill: #e8f0fe; }
.mark.error { stroke: #d93025; stroke-width: 1.5px; }
.errtick { fill: #d93025; }
.fork { stroke: #80868b; stroke-width: 1px; stroke-dasharray: 2 2; }
.axis line { stroke: #dadce0; }
.axis text { fill: #5f6368; }
</style></head>
<body>
<h1>@TITLE@</h1>
<div id="info"></div>
<div id="legend"></div>
<label>zoom <input id="zoom" type="range" min="0" max="6" step="0.25" value="0"></label>
<div id="wrap"><svg id="timeline" xmlns="http://www.w3.org/2000/svg"></svg></div>
<script type="application/json" id="trace-data">@DATA@</script>
<script>
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("trace-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var LABEL = 190, LANE = 22, TOP = 26;
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  // lanes in process-tree order: each child right under its parent
  var byPid = {}, kids = {}, roots = [];
  D.procs.forEach(function (p, i) { if (!(p.pid in byPid)) byPid[p.pid] = i; });
  D.procs.forEach(function (p, i) {
    if (p.parent !== null && p.parent in byPid && byPid[p.parent] !== i)
      (kids[byPid[p.parent]] = kids[byPid[p.parent]] || []).push(i);
    else roots.push(i);
  });
  var order = [], depth = {};
  function visit(i, d) {
    order.push(i); depth[i] = d;
    (kids[i] || []).forEach(function (k) { visit(k, d + 1); });
  }
  roots.forEach(function (r) { visit(r, 0); });
  var row = {};
  order.forEach(function (i, n) { row[i] = n; });
  var errors = D.calls.filter(function (c) { return c[5]; }).length;
  document.getElementById("info").textContent =
    D.procs.length + " processes/threads, " + D.calls.length + " calls (" + errors +
    " failed), " + D.end.toFixed(1) + " ms" +
    (D.dropped ? "; " + D.dropped + " later calls not drawn" : "");
  var legend = document.getElementById("legend");
  D.classes.forEach(function (c, i) {
    var s = document.createElement("span");
    s.innerHTML = '<i style="background:' + D.colors[i] + '"></i>%' + c;
    legend.appendChild(s);
  });
  var svg = document.getElementById("timeline");
  function draw(zoom) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var avail = Math.max(400, document.getElementById("wrap").clientWidth - LABEL - 20);
    var width = avail * Math.pow(2, zoom);
    var scale = width / D.end;
    var x = function (ms) { return LABEL + ms * scale; };
    var height = TOP + order.length * LANE + 10;
    svg.setAttribute("width", LABEL + width + 20);
    svg.setAttribute("height", height);
    var axis = el("g", {"class": "axis"}, svg);
    var step = Math.pow(10, Math.floor(Math.log10(D.end / 5 || 1)));
    if (D.end / step > 12) step *= 5; else if (D.end / step > 6) step *= 2;
    for (var t = 0; t <= D.end + 1e-9; t += step) {
      el("line", {x1: x(t), x2: x(t), y1: TOP - 6, y2: height}, axis);
      el("text", {x: x(t) + 2, y: TOP - 10}, axis).textContent =
        (step < 1 ? t.toFixed(2) : Math.round(t)) + " ms";
    }
    var lanes = order.map(function (i) {
      var p = D.procs[i], y = TOP + row[i] * LANE;
      var g = el("g", {"class": "lane", "data-pid": p.pid, "data-host-pid": p.host}, svg);
      var life = el("rect", {"class": "life", x: x(p.start), y: y + 2,
                             width: Math.max(1, (p.end - p.start) * scale), height: LANE - 4}, g);
      el("title", {}, life).textContent = "pid " + p.pid + " (host " + p.host + ") " +
        p.label + (p.exit ? ", " + p.exit : "") + ": " + p.calls + " calls, " +
        p.errors + " failed";
      el("text", {"class": "label", x: 4 + 10 * depth[i], y: y + LANE / 2 + 4}, g)
        .textContent = (p.thread ? "thread " : "") + p.pid + (p.label ? " " + p.label : "");
      if (p.parent !== null && p.parent in byPid) {
        var py = TOP + row[byPid[p.parent]] * LANE + LANE / 2;
        el("line", {"class": "fork", x1: x(p.start), x2: x(p.start), y1: py,
                    y2: y + LANE / 2}, svg);
      }
      return g;
    });
    D.calls.forEach(function (c) {
      var lane = c[0], g = lanes[row[lane]], y = TOP + row[lane] * LANE;
      var w = Math.max(1.5, c[2] * scale);
      var m = el("rect", {"class": "mark cls-" + D.classes[c[4]] + (c[5] ? " error" : ""),
                          x: x(c[1]), y: y + 5, width: w, height: LANE - 10,
                          fill: D.colors[c[4]]}, g);
      el("title", {}, m).textContent = c[3] + " = " + c[6] + "  (" + c[2].toFixed(3) +
        " ms, at +" + c[1].toFixed(3) + " ms)";
      if (c[5]) el("rect", {"class": "errtick", x: x(c[1]), y: y + 1, width: w, height: 3}, g);
    });
  }
  var zoom = document.getElementById("zoom");
  zoom.addEventListener("input", function () { draw(parseFloat(zoom.value)); });
  draw(0);
})();
</script>
</body></html>
"""
