// One page per transport (ws.html, sse.html, poll.html, iframe.html): every message
// of one channel with its type and seq, and a box to publish with /push.
// Query parameters: channel (default "demo"), sign=1 to get a token from
// /sign first (for front.auth: token), front_port to reach the front
// listener through another port (a proxy), sub_timeout (ms without any
// message before reconnecting), backoff_ms and backoff_max_ms, and key: the
// admin key when admin.key is set (for /push and /sign).
(function () {
  'use strict';
  var query = new URLSearchParams(location.search);
  var transport = document.body.getAttribute('data-transport');
  var channel = query.get('channel') || 'demo';
  var port = query.get('front_port') || window.COMET_SERVER.front_port;
  var front = location.protocol + '//' + location.hostname + ':' + port;
  var list = document.getElementById('messages');

  function add(cls, type, content, seq) {
    var li = document.createElement('li');
    li.className = cls;
    li.setAttribute('data-type', type);
    if (seq !== undefined) {
      li.setAttribute('data-seq', seq);
    }
    var t = document.createElement('span');
    t.className = 'who';
    t.textContent = type;
    li.appendChild(t);
    var c = document.createElement('span');
    c.className = 'content';
    c.textContent = content;
    li.appendChild(c);
    if (seq !== undefined) {
      var s = document.createElement('span');
      s.className = 'seq';
      s.textContent = '#' + seq;
      li.appendChild(s);
    }
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  var comet = new iComet({
    channel: channel,
    subUrl: front + '/sub',
    signUrl: query.get('sign') ? '/sign' : undefined,
    pubUrl: '/push',
    adminKey: query.get('key') || undefined,
    transport: transport,
    sub_timeout: Number(query.get('sub_timeout')) || undefined,
    backoff_ms: Number(query.get('backoff_ms')) || undefined,
    backoff_max_ms: Number(query.get('backoff_max_ms')) || undefined,
    callback: function (content, type, msg) {
      add('message', type, content, msg.seq);
    },
    error: function (content, type) {
      add(type === 'close' ? 'close' : 'refusal', type, content);
    }
  });
  document.getElementById('meta').textContent = 'channel ' + channel + ' over ' + comet.transport;
  document.getElementById('curl').textContent =
    'curl ' + (query.get('key') ? '-H "Authorization: Bearer KEY" ' : '') +
    '"http://' + location.host + '/push?cname=' + encodeURIComponent(channel) + '&content=hello"';

  document.getElementById('send').addEventListener('submit', function (e) {
    e.preventDefault();
    var input = document.getElementById('text');
    comet.pub(input.value);
    input.value = '';
  });
})();
