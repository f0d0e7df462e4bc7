// The operator page: polls /stats once a second, shows the figures and
// draws the last two minutes as line charts on plain canvases (no library,
// no CDN: the admin listener is often on a host without internet access).
// Delivery latency: the figures are p50/p99 since the server started (as
// /stats estimates them); the chart shows p50/p99 of each second, estimated
// the same way from the change in the bucket counts.
// With admin.key set, open it as ops.html?key=KEY: the key is sent as
// Authorization: Bearer.
(function () {
  'use strict';
  var PERIOD_MS = 1000;
  var KEEP = 120;
  var samples = [];
  var previous = null;
  var KEY = new URLSearchParams(location.search).get('key');
  var COLORS = ['#1663a8', '#d9822b', '#2e9e5b', '#a33ba3'];

  var FIGURES = [
    ['uptime', 'uptime', function (s) { return duration(s.uptime_secs); }],
    ['connections', 'connections', function (s) { return count(s.connections); }],
    ['subscribers', 'subscribers', function (s) { return count(s.subscribers); }],
    ['channels', 'channels', function (s) { return count(s.channels); }],
    ['published-rate', 'published / s', function (s, r) { return rate(r.published); }],
    ['delivered-rate', 'delivered / s', function (s, r) { return rate(r.delivered); }],
    ['published', 'published', function (s) { return count(s.published); }],
    ['delivered', 'delivered', function (s) { return count(s.delivered); }],
    ['rss', 'memory (RSS)', function (s) { return (s.rss_bytes / 1048576).toFixed(1) + ' MiB'; }],
    ['drops', 'slow consumers dropped', function (s) { return count(s.slow_consumer_drops); }],
    ['refused', 'connections refused', function (s) { return count(s.refused_connections); }],
    ['latency-p50', 'delivery p50', function (s) { return latency(s, 'p50'); }],
    ['latency-p99', 'delivery p99', function (s) { return latency(s, 'p99'); }]
  ];

  function count(n) {
    return Number(n).toLocaleString('en-US');
  }
  function rate(r) {
    return r === null ? '-' : r.toFixed(1);
  }
  /** A millisecond figure as text: `0.42 ms`, `12.3 ms`, `2.51 s`. */
  function millis(ms) {
    if (ms === null || ms === undefined) {
      return '-';
    }
    if (ms >= 1000) {
      return (ms / 1000).toFixed(2) + ' s';
    }
    return ms.toFixed(ms < 10 ? 2 : 1) + ' ms';
  }
  function latency(s, q) {
    var l = s.delivery_latency_ms;
    return millis(l && l.all ? l.all[q] : null);
  }
  /**
   * The q-quantile of a histogram (`le`: bucket bounds; `counts`: per
   * bucket, the last one unbounded), linear inside its bucket, as
   * Prometheus' histogram_quantile and comet's /stats estimate it.
   */
  function quantile(le, counts, q) {
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    if (total <= 0) {
      return null;
    }
    var rank = q * total;
    var below = 0;
    for (var i = 0; i < counts.length; i++) {
      var n = counts[i];
      if (n > 0 && below + n >= rank) {
        if (i >= le.length) {
          return le[le.length - 1];
        }
        var lower = i === 0 ? 0 : le[i - 1];
        return lower + (le[i] - lower) * Math.min(1, Math.max(0, (rank - below) / n));
      }
      below += n;
    }
    return le[le.length - 1];
  }
  function duration(secs) {
    var h = Math.floor(secs / 3600);
    var m = Math.floor((secs % 3600) / 60);
    return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + (secs % 60) + 's';
  }

  var box = document.getElementById('figures');
  FIGURES.forEach(function (f) {
    var div = document.createElement('div');
    div.className = 'figure';
    div.innerHTML = '<div class="label"></div><div class="value" id="fig-' + f[0] + '">-</div>';
    div.firstChild.textContent = f[1];
    box.appendChild(div);
  });

  /** Draws `series` ([{label, values}]) as lines over the same time axis. */
  function draw(id, series) {
    var canvas = document.getElementById(id);
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth;
    var h = canvas.clientHeight;
    canvas.width = w * ratio;
    canvas.height = h * ratio;
    var g = canvas.getContext('2d');
    g.scale(ratio, ratio);
    g.clearRect(0, 0, w, h);
    var max = 0;
    series.forEach(function (s) {
      s.values.forEach(function (v) {
        if (v !== null && v > max) {
          max = v;
        }
      });
    });
    max = max > 0 ? max * 1.15 : 1;
    var left = 48;
    var top = 16;
    var plotW = w - left - 6;
    var plotH = h - top - 6;
    g.font = '11px system-ui, sans-serif';
    g.strokeStyle = '#e4e4e4'; // neutral grey: only data lines are coloured
    g.fillStyle = '#5b6873';
    for (var i = 0; i <= 2; i++) {
      var y = top + plotH - (plotH * i) / 2;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(left + plotW, y);
      g.stroke();
      var v = (max * i) / 2;
      g.fillText(v >= 100 ? Math.round(v).toString() : v.toFixed(1), 4, y + 4);
    }
    series.forEach(function (s, k) {
      g.strokeStyle = COLORS[k % COLORS.length];
      g.lineWidth = 2;
      g.beginPath();
      var started = false;
      var last = null;
      s.values.forEach(function (v, j) {
        if (v === null) {
          return;
        }
        var x = left + plotW - ((s.values.length - 1 - j) * plotW) / (KEEP - 1);
        var y = top + plotH - (v / max) * plotH;
        if (started) {
          g.lineTo(x, y);
        } else {
          g.moveTo(x, y);
          started = true;
        }
        last = j === s.values.length - 1 ? [x, y] : null;
      });
      g.stroke();
      g.fillStyle = g.strokeStyle;
      // The latest value as a dot: a line needs two samples, the first
      // second of a page (or of a rate after a restart) has one.
      if (last) {
        g.beginPath();
        g.arc(last[0], last[1], 3, 0, 2 * Math.PI);
        g.fill();
      }
      // A value with no neighbour (a latency of the one second that had
      // deliveries) is a dot too, else nothing would show it.
      s.values.forEach(function (v, j) {
        var alone = v !== null && !(j > 0 && s.values[j - 1] !== null) &&
          !(j + 1 < s.values.length && s.values[j + 1] !== null);
        if (alone) {
          var x = left + plotW - ((s.values.length - 1 - j) * plotW) / (KEEP - 1);
          g.beginPath();
          g.arc(x, top + plotH - (v / max) * plotH, 3, 0, 2 * Math.PI);
          g.fill();
        }
      });
      g.fillText(s.label, left + 6 + k * 110, 11);
    });
  }

  function column(name) {
    return samples.map(function (s) {
      return s[name];
    });
  }

  function redraw() {
    draw('chart-rate', [
      { label: 'published / s', values: column('publishedRate') },
      { label: 'delivered / s', values: column('deliveredRate') }
    ]);
    draw('chart-subs', [
      { label: 'subscribers', values: column('subscribers') },
      { label: 'channels', values: column('channels') }
    ]);
    draw('chart-rss', [{ label: 'RSS MiB', values: column('rss') }]);
    draw('chart-transports', ['sse', 'poll', 'iframe', 'stream'].map(function (t) {
      return { label: t, values: column('by_' + t) };
    }));
    draw('chart-latency', [
      { label: 'p50 ms', values: column('p50') },
      { label: 'p99 ms', values: column('p99') }
    ]);
  }

  function update(stats, now) {
    var rates = { published: null, delivered: null };
    // A counter that went down means the server restarted: no rate for that step.
    if (previous && stats.published >= previous.stats.published && stats.delivered >= previous.stats.delivered) {
      var secs = (now - previous.at) / 1000;
      rates.published = (stats.published - previous.stats.published) / secs;
      rates.delivered = (stats.delivered - previous.stats.delivered) / secs;
    }
    // Latency of this interval: the deliveries counted since the last poll.
    var interval = { p50: null, p99: null };
    var lat = stats.delivery_latency_ms;
    var buckets = lat && lat.all && lat.all.buckets;
    var before = previous && previous.stats.delivery_latency_ms;
    if (buckets && before && before.all && before.all.buckets.length === buckets.length) {
      var delta = buckets.map(function (n, i) { return n - before.all.buckets[i]; });
      if (delta.every(function (d) { return d >= 0; })) {
        interval.p50 = quantile(lat.le, delta, 0.5);
        interval.p99 = quantile(lat.le, delta, 0.99);
      }
    }
    previous = { stats: stats, at: now };
    var sample = {
      publishedRate: rates.published,
      deliveredRate: rates.delivered,
      subscribers: stats.subscribers,
      channels: stats.channels,
      rss: stats.rss_bytes / 1048576,
      p50: interval.p50,
      p99: interval.p99
    };
    var by = stats.connections_by_transport || {};
    ['sse', 'poll', 'iframe', 'stream'].forEach(function (t) {
      sample['by_' + t] = by[t] === undefined ? null : by[t];
    });
    samples.push(sample);
    if (samples.length > KEEP) {
      samples.shift();
    }
    FIGURES.forEach(function (f) {
      document.getElementById('fig-' + f[0]).textContent = f[2](stats, rates);
    });
    document.getElementById('meta').textContent = 'updated ' + new Date().toLocaleTimeString();
    redraw();
  }

  function poll() {
    var xhr = new XMLHttpRequest();
    xhr.open('GET', '/stats');
    if (KEY) {
      xhr.setRequestHeader('Authorization', 'Bearer ' + KEY);
    }
    xhr.onload = function () {
      if (xhr.status === 200) {
        try {
          update(JSON.parse(xhr.responseText), performance.now());
        } catch (e) {
          document.getElementById('meta').textContent = '/stats: ' + e;
        }
      } else {
        document.getElementById('meta').textContent =
          '/stats: HTTP ' + xhr.status + (xhr.status === 401 ? ' (admin.key is set: open ops.html?key=KEY)' : '');
      }
      setTimeout(poll, PERIOD_MS);
    };
    xhr.onerror = function () {
      document.getElementById('meta').textContent = 'server unreachable; retrying';
      setTimeout(poll, PERIOD_MS);
    };
    xhr.send();
  }
  poll();
  window.addEventListener('resize', redraw);
})();
