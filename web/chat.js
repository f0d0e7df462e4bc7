// The chat demo: every window on the same channel sees every message.
// Messages are JSON text {uid, nickname, text} published with /push on this
// (admin) origin and received through comet.js on the front listener.
// comet.js picks the transport: WebSocket where the browser has it, else SSE,
// else JSONP long polling. Query parameters: channel (default "chat"), name,
// transport (ws, sse, poll, iframe: force one), websocket=0 (never
// WebSocket: SSE or long polling), front_port (reach the front listener
// through another port, such as a proxy), and key: the admin key when
// admin.key is set (sent with /push as Authorization: Bearer).
(function () {
  'use strict';
  var query = new URLSearchParams(location.search);
  var channel = query.get('channel') || 'chat';
  var uid = Math.random().toString(36).slice(2, 10);
  var nickname = document.getElementById('nickname');
  nickname.value = query.get('name') || 'guest-' + uid.slice(0, 4);
  var list = document.getElementById('messages');
  var status = document.getElementById('status');
  var port = query.get('front_port') || window.COMET_SERVER.front_port;
  var front = location.protocol + '//' + location.hostname + ':' + port;

  function add(cls, who, text, seq) {
    var li = document.createElement('li');
    li.className = cls;
    if (seq !== undefined) {
      li.setAttribute('data-seq', seq);
    }
    var w = document.createElement('span');
    w.className = 'who';
    w.textContent = who;
    li.appendChild(w);
    li.appendChild(document.createTextNode(text));
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
    pubUrl: '/push',
    adminKey: query.get('key') || undefined,
    transport: query.get('transport') || undefined,
    websocket: query.get('websocket') === '0' ? false : undefined,
    callback: function (content, type, msg) {
      var m;
      try {
        m = JSON.parse(content);
      } catch (e) {
        m = { nickname: type, text: content };
      }
      add('message' + (m.uid === uid ? ' mine' : ''), String(m.nickname) + ':', String(m.text), msg.seq);
    },
    error: function (content, type) {
      add(type === 'close' ? 'close' : 'refusal', type, content || 'channel closed');
    }
  });
  document.getElementById('meta').textContent = 'channel ' + channel + ' over ' + comet.transport;

  document.getElementById('send').addEventListener('submit', function (e) {
    e.preventDefault();
    var input = document.getElementById('text');
    if (!input.value) {
      return;
    }
    var body = JSON.stringify({ uid: uid, nickname: nickname.value, text: input.value });
    input.value = '';
    comet.pub(body, function (reply, err) {
      status.textContent = reply ? '' : 'not sent: ' + err;
    });
  });
})();
