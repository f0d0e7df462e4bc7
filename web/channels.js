// Two channels on one WebSocket (channels.html): one iComet.Socket, one
// column per channel with every message (type and seq), a box to publish
// to that channel with /push, and a button to leave and join it again.
// Query parameters: channels (two names, default "left,right"), sign=1 to
// get a token per channel from /sign first (for front.auth: token),
// front_port to reach the front listener through another port (a proxy),
// sub_timeout (ms without any message before reconnecting), backoff_ms and
// backoff_max_ms, websocket=0 (one connection per channel instead), and
// key: the admin key when admin.key is set (for /push and /sign).
(function () {
  'use strict';
  var query = new URLSearchParams(location.search);
  var names = (query.get('channels') || 'left,right').split(',');
  var port = query.get('front_port') || window.COMET_SERVER.front_port;
  var front = location.protocol + '//' + location.hostname + ':' + port;
  var columns = document.getElementById('columns');

  var socket = new iComet.Socket({
    subUrl: front + '/sub',
    signUrl: query.get('sign') ? '/sign' : undefined,
    pubUrl: '/push',
    adminKey: query.get('key') || undefined,
    websocket: query.get('websocket') === '0' ? false : undefined,
    sub_timeout: Number(query.get('sub_timeout')) || undefined,
    backoff_ms: Number(query.get('backoff_ms')) || undefined,
    backoff_max_ms: Number(query.get('backoff_max_ms')) || undefined
  });

  function element(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) {
      e.className = cls;
    }
    if (text !== undefined) {
      e.textContent = text;
    }
    return e;
  }

  function column(name, i) {
    var panel = element('div', 'panel');
    panel.setAttribute('data-channel', name);
    panel.appendChild(element('h2', '', name));
    var list = element('ul', 'log');
    list.id = 'messages-' + i;
    panel.appendChild(list);
    var form = element('form', 'send');
    var input = element('input');
    input.type = 'text';
    input.id = 'text-' + i;
    input.placeholder = 'Publish to ' + name;
    input.setAttribute('aria-label', 'message for ' + name);
    var publish = element('button', '', 'Publish');
    publish.type = 'submit';
    var toggle = element('button', 'toggle', 'Leave');
    toggle.type = 'button';
    toggle.id = 'toggle-' + i;
    form.appendChild(input);
    form.appendChild(publish);
    form.appendChild(toggle);
    panel.appendChild(form);
    columns.appendChild(panel);

    function add(cls, type, content, seq) {
      var li = element('li', cls);
      li.setAttribute('data-type', type);
      if (seq !== undefined) {
        li.setAttribute('data-seq', seq);
      }
      li.appendChild(element('span', 'who', type));
      li.appendChild(element('span', 'content', content));
      if (seq !== undefined) {
        li.appendChild(element('span', 'seq', '#' + seq));
      }
      list.appendChild(li);
      list.scrollTop = list.scrollHeight;
    }

    var comet = socket.subscribe(
      name,
      function (content, type, msg) {
        add('message', type, content, msg.seq);
      },
      {
        error: function (content, type) {
          add(type === 'close' ? 'close' : 'refusal', type, content);
        }
      }
    );
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      comet.pub(input.value);
      input.value = '';
    });
    toggle.addEventListener('click', function () {
      if (comet.stopped) {
        comet.sub();
        toggle.textContent = 'Leave';
      } else {
        socket.unsubscribe(name);
        toggle.textContent = 'Join';
      }
    });
  }

  names.forEach(column);
  document.getElementById('meta').textContent =
    'channels ' + names.join(', ') + (socket.transport === 'ws' ? ' on one WebSocket' : ' over ' + socket.transport + ', one connection each');
})();
