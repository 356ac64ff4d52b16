// The browser side of report.html: reads the embedded data and draws the charts with Chart.js
// (inlined into the page). Plain ES2020 in a string so it runs as-is in any browser, offline.

/** JavaScript run by report.html after Chart.js is loaded. */
export const REPORT_SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var COLORS = { ok: '#2e7d32', 'cas-mismatch': '#90a4ae', fail: '#c62828', info: '#ef6c00' };
  var OUTCOMES = ['ok', 'cas-mismatch', 'fail', 'info'];
  Chart.defaults.animation = false;
  Chart.defaults.font.size = 11;

  // Shades each fault window behind the data, with its label at the top.
  var faultBands = {
    id: 'faultBands',
    beforeDatasetsDraw: function (chart) {
      var x = chart.scales.x;
      var area = chart.chartArea;
      var ctx = chart.ctx;
      ctx.save();
      data.faults.forEach(function (f, i) {
        var end = f.endS === null ? data.durationS : f.endS;
        var left = Math.max(area.left, x.getPixelForValue(f.startS));
        var right = Math.min(area.right, x.getPixelForValue(end));
        if (right <= left) return;
        ctx.fillStyle = i % 2 === 0 ? 'rgba(120, 120, 220, 0.16)' : 'rgba(200, 120, 220, 0.16)';
        ctx.fillRect(left, area.top, right - left, area.bottom - area.top);
        ctx.fillStyle = 'rgba(60, 60, 120, 0.9)';
        ctx.fillText(f.label, left + 2, area.top + 10);
      });
      ctx.restore();
    },
  };

  function xAxis() {
    return { type: 'linear', min: 0, max: data.durationS, title: { display: true, text: 'seconds since start' } };
  }

  function timeline() {
    var procs = data.processes.map(function (p) { return 'p' + p; });
    var datasets = OUTCOMES.map(function (o) {
      return {
        label: o,
        backgroundColor: COLORS[o],
        borderColor: '#ffffff',
        borderWidth: { left: 1, right: 1, top: 0, bottom: 0 },
        borderSkipped: false,
        barPercentage: 0.8,
        categoryPercentage: 1,
        data: data.ops.filter(function (op) { return op.o === o; }).map(function (op) {
          return { x: [op.s, op.e === null ? data.durationS : op.e], y: 'p' + op.p };
        }),
      };
    });
    new Chart(document.getElementById('chart-timeline'), {
      type: 'bar',
      data: { labels: procs, datasets: datasets },
      options: {
        indexAxis: 'y',
        maintainAspectRatio: false,
        grouped: false,
        scales: { x: xAxis(), y: { type: 'category', labels: procs } },
        plugins: { legend: { position: 'top' }, tooltip: { enabled: false } },
      },
      plugins: [faultBands],
    });
  }

  function latency() {
    var datasets = OUTCOMES.map(function (o) {
      return {
        label: o,
        backgroundColor: COLORS[o],
        pointRadius: 1.5,
        data: data.ops.filter(function (op) { return op.o === o && op.e !== null; }).map(function (op) {
          return { x: op.s, y: (op.e - op.s) * 1000 };
        }),
      };
    });
    new Chart(document.getElementById('chart-latency'), {
      type: 'scatter',
      data: { datasets: datasets },
      options: {
        maintainAspectRatio: false,
        scales: { x: xAxis(), y: { type: 'linear', min: 0, title: { display: true, text: 'latency (ms)' } } },
        plugins: { tooltip: { enabled: false } },
      },
      plugins: [faultBands],
    });
  }

  function throughput() {
    var datasets = OUTCOMES.map(function (o) {
      return {
        label: o + ' / s',
        borderColor: COLORS[o],
        backgroundColor: COLORS[o],
        pointRadius: 0,
        stepped: true,
        data: data.throughput.map(function (b) { return { x: b.t, y: b[o] }; }),
      };
    });
    new Chart(document.getElementById('chart-throughput'), {
      type: 'line',
      data: { datasets: datasets },
      options: {
        maintainAspectRatio: false,
        scales: { x: xAxis(), y: { type: 'linear', min: 0, title: { display: true, text: 'completions per second' } } },
      },
      plugins: [faultBands],
    });
  }

  timeline();
  latency();
  throughput();
  document.body.setAttribute('data-rendered', 'true');
})();
`;
