// Charts of the callguard console. Each <script type="application/json"
// data-chart="ID"> holds {x: [...], time: bool, labels: [...], xlabel,
// series: [{label, values, scale?}]} (a series with its own scale gets an
// axis on the right)
// and is drawn with uPlot into the element #ID. No other script runs.
(function () {
  "use strict";
  var colors = ["#2b6cb0", "#2f855a", "#b7791f", "#c53030", "#6b46c1", "#319795"];
  function draw(src) {
    var target = document.getElementById(src.getAttribute("data-chart"));
    if (!target || typeof uPlot === "undefined") { return; }
    var d = JSON.parse(src.textContent);
    var data = [d.x];
    var label = function (v) { return d.labels ? (d.labels[v] || "") : v; };
    // Never an empty label: uPlot would show its own English "Value".
    var series = [{ label: d.xlabel || "\u00a0", value: function (u, v) { return v == null ? "--" : label(v); } }];
    var axes = [d.time ? {} : { incrs: [1, 2, 3, 4, 6, 7, 14, 30, 60], values: function (u, vals) { return vals.map(label); } }, {}];
    d.series.forEach(function (s, i) {
      data.push(s.values);
      series.push({ label: s.label || "\u00a0", stroke: colors[i % colors.length], width: 2, scale: s.scale || "y" });
      if (s.scale) { axes.push({ scale: s.scale, side: 1, grid: { show: false } }); }
    });
    var width = function () { return Math.max(300, (target.clientWidth || 620) - 20); };
    var opts = { width: width(), height: 240, series: series,
      scales: { x: { time: !!d.time } },
      axes: axes };
    var plot = new uPlot(opts, data, target);
    window.addEventListener("resize", function () { plot.setSize({ width: width(), height: 240 }); });
    target.setAttribute("data-drawn", "true");
  }
  function init() {
    var srcs = document.querySelectorAll('script[type="application/json"][data-chart]');
    for (var i = 0; i < srcs.length; i++) { draw(srcs[i]); }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else { init(); }
})();
