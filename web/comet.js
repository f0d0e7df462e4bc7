/*
 * comet.js: a dependency-free browser client for comet (and icomet) servers.
 *
 * It has icomet.js's public API, so a page written for icomet.js works by
 * swapping the script:
 *
 *   var c = new iComet({
 *     channel: 'abc',
 *     subUrl: 'http://host:8100/sub',   // the front listener's /sub (or /poll)
 *     signUrl: '...',                   // optional: JSONP /sign, for token auth
 *     pubUrl: '...',                    // optional: /push, for c.pub(text)
 *     adminKey: '...',                  // optional: comet's admin.key, for pub and sign
 *     callback: function (content, type, msg) { ... }
 *   });
 *   c.pub('hello', function (reply) {}); c.unsub(); c.sub();
 *
 * Several channels on one WebSocket (comet's /ws with sub/unsub commands):
 *
 *   var s = new iComet.Socket({ subUrl: 'http://host:8100/sub', signUrl: ... });
 *   var a = s.subscribe('a', function (content, type, msg) { ... });
 *   var b = s.subscribe('b', callbackB, { error: onRefusal });
 *   s.unsubscribe('a');   // or a.unsub(); a.sub() resumes it on the socket
 *
 * Each subscribe() returns an iComet (pub, sub, unsub as above) that keeps
 * its own seq and token; `new iComet({..., socket: s})` does the same. The
 * socket opens with its first channel and closes after its last; where
 * WebSocket is unavailable each channel gets a connection of its own.
 *
 * The callback gets the message content (a string), its type ('data' or
 * 'broadcast') and the whole message object as the server sent it. Refusals
 * and channel ends ('401', '429', 'close') go to config.error if given, else
 * to the callback with their type, never to alert().
 *
 * Transport: WebSocket (/ws) where the browser has WebSocket and the page
 * has not turned it off (config.websocket: false), else SSE (/sse) where it
 * has EventSource, else JSONP long polling (/sub); config.transport forces
 * one of 'ws', 'sse', 'poll', 'iframe' (/iframe, parent.icomet_cb). A
 * WebSocket chosen this way that fails WS_FALLBACK_FAILURES times in a row
 * before its first message (a proxy that does not pass upgrades) gives way
 * to SSE, or long polling. Every reconnect asks for the next seq it has not
 * seen, so nothing is lost while the server keeps it in history, and
 * messages at or below the last seen seq are dropped, so nothing is
 * delivered twice. Failed connections are retried with exponential backoff
 * and jitter. WebSocket close codes 4401 and 4429 are the 401 and 429
 * refusals; every other close (1001 server shutdown, 1013 slow consumer, a
 * dropped connection) is a reconnect.
 *
 * Differences from icomet.js, each a bug fixed: long polling continues after
 * an array response (icomet.js stopped for good); the channel name and token
 * are URL-encoded; a server restart or recreated channel (next_seq below the
 * seq we expect) makes the client fetch the new channel's history from seq 1
 * instead of skipping what was published before it reconnected; a stale
 * JSONP reply cannot disturb the current request (each request has its own
 * callback name).
 */
(function (global) {
  'use strict';

  var INT_MIN = -2147483648;
  var INT_MAX = 2147483647;

  /** seq + 1 with the server's wrapping 32-bit arithmetic. */
  function seqNext(seq) {
    return seq === INT_MAX ? INT_MIN : seq + 1;
  }

  /** a - b as a wrapping 32-bit difference: > 0 when a is ahead of b. */
  function seqDiff(a, b) {
    return (a - b) | 0;
  }

  /**
   * Seq bookkeeping of one subscription (pure logic, no I/O).
   * `next` is the seq of the next message wanted (0: none seen yet);
   * `noop` is the heartbeat counter echoed to the server.
   */
  function SeqTracker() {
    this.next = 0;
    this.noop = 0;
  }

  /**
   * A next_seq message. Returns 'restart' when the server is behind us (it
   * restarted, or the channel was freed and recreated): the caller must then
   * subscribe again from seq 1 to get everything the new channel holds.
   */
  SeqTracker.prototype.nextSeq = function (seq) {
    if (this.next !== 0 && seqDiff(seq, this.next) < 0) {
      this.next = 1;
      return 'restart';
    }
    this.next = seq;
    return 'ok';
  };

  /**
   * A data or broadcast message. Returns 'deliver', 'duplicate' (already
   * delivered: drop it) or 'gap' (newer than expected: messages in between
   * were lost from the server's history; deliver it anyway).
   */
  SeqTracker.prototype.message = function (seq) {
    var verdict = 'deliver';
    if (this.next !== 0) {
      var d = seqDiff(seq, this.next);
      if (d < 0) {
        return 'duplicate';
      }
      if (d > 0) {
        verdict = 'gap';
      }
    }
    this.next = seqNext(seq);
    return verdict;
  };

  /**
   * A noop heartbeat. On a long poll only the reply to the current request
   * counts (`strict`): returns false for a stale one. Streams accept any.
   */
  SeqTracker.prototype.heartbeat = function (seq, strict) {
    if (strict && seq !== this.noop) {
      return false;
    }
    this.noop = seqNext(seq);
    return true;
  };

  /**
   * Backoff before retry number `attempt` (0 for the first): exponential
   * from `base` up to `max` ms, with "equal jitter" (a random point in the
   * upper half), so that clients dropped together do not return together
   * and no delay collapses to zero.
   */
  function backoffDelay(attempt, base, max, random) {
    var cap = Math.min(max, base * Math.pow(2, Math.min(attempt, 30)));
    return cap / 2 + (random || Math.random)() * (cap / 2);
  }

  /**
   * The URL of `transport` ('sse', 'iframe', 'poll') from the configured
   * subscribe URL: its last path segment 'sub' or 'poll' is replaced, as
   * icomet.js did for /sse. Returns null when the URL names neither.
   */
  function transportUrl(subUrl, transport) {
    var q = subUrl.indexOf('?');
    var path = q < 0 ? subUrl : subUrl.slice(0, q);
    var query = q < 0 ? '' : subUrl.slice(q);
    var m = /\/(sub|poll)$/.exec(path);
    if (!m) {
      return transport === 'poll' ? subUrl : null;
    }
    var name = transport === 'poll' ? m[1] : transport;
    return path.slice(0, m.index + 1) + name + query;
  }

  /** Appends `params` (an object) to `url` as a query string. */
  function withParams(url, params) {
    var parts = [];
    for (var k in params) {
      if (Object.prototype.hasOwnProperty.call(params, k)) {
        parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(params[k]));
      }
    }
    return url + (url.indexOf('?') < 0 ? '?' : '&') + parts.join('&');
  }

  /**
   * Consecutive failed WebSocket connections, before any message arrived on
   * one, after which a transport chosen automatically falls back to SSE (or
   * long polling): the server is reachable over HTTP but something on the
   * way (a proxy without upgrade support) refuses WebSocket.
   */
  var WS_FALLBACK_FAILURES = 3;

  /**
   * The transport to use without a `transport` option: 'ws' when `env` (the
   * window) has WebSocket and `config.websocket` is not false, else 'sse'
   * when it has EventSource, else 'poll'.
   */
  function chooseTransport(config, env) {
    if (config.websocket !== false && typeof env.WebSocket !== 'undefined') {
      return 'ws';
    }
    return fallbackTransport(env);
  }

  /** The transport after WebSocket: 'sse' where `env` has EventSource, else 'poll'. */
  function fallbackTransport(env) {
    return typeof env.EventSource !== 'undefined' ? 'sse' : 'poll';
  }

  /**
   * A ws: or wss: URL from an http(s) one, made absolute against `base`
   * (the page's address) first when it is relative.
   */
  function wsUrl(url, base) {
    var abs = url;
    if (!/^[a-z][a-z0-9+.-]*:/i.test(url) && base && typeof URL === 'function') {
      abs = new URL(url, base).href;
    }
    return abs.replace(/^http(s?):/i, function (all, tls) {
      return tls ? 'wss:' : 'ws:';
    });
  }

  /**
   * What a WebSocket close code means for the client: '401' and '429' are
   * icomet's refusals (4401, 4429), anything else ('retry') a reconnect.
   */
  function wsCloseAction(code) {
    if (code === 4401) {
      return '401';
    }
    if (code === 4429) {
      return '429';
    }
    return 'retry';
  }

  var CLOSE_MEANINGS = {
    1000: 'channel closed',
    1001: 'server going away',
    1002: 'protocol error',
    1003: 'unsupported data',
    1006: 'connection lost',
    1007: 'invalid text',
    1008: 'too many frames',
    1009: 'message too big',
    1011: 'server error',
    1013: 'slow consumer',
    4401: 'token refused',
    4429: 'too many subscribers'
  };

  /** A close code for the log: '1013 slow consumer'. */
  function describeClose(code) {
    return code + (CLOSE_MEANINGS[code] ? ' ' + CLOSE_MEANINGS[code] : '');
  }

  /**
   * Which channels a shared WebSocket holds on the server (pure logic, no
   * I/O). The server answers commands in order, but not every `sub` gets a
   * reply (none when the client is caught up), so frames are told apart by
   * channel name: after an `unsub` is sent, every frame of that channel up
   * to the server's answer to it (an `unsub` object, or a `400` when the
   * server no longer held the channel) belongs to the old subscription and
   * is dropped; what follows belongs to the next `sub`.
   *
   * A registration's `state` is 'none' (the server holds nothing for it),
   * 'sent' (a sub is on its way) or 'held' (the server answered it).
   */
  function SocketBook() {
    this.regs = Object.create(null);
    this.pending = Object.create(null);
  }

  /** Registers `client` for channel `cname` (state 'none'); returns the registration. */
  SocketBook.prototype.add = function (cname, client) {
    var reg = { cname: cname, client: client, state: 'none' };
    this.regs[cname] = reg;
    return reg;
  };

  /** Whether `reg` is still the registration of its channel. */
  SocketBook.prototype.current = function (reg) {
    return this.regs[reg.cname] === reg;
  };

  /**
   * Removes `reg`. Returns true when the server may hold its channel: the
   * caller must send an unsub, whose answer is now awaited.
   */
  SocketBook.prototype.remove = function (reg) {
    if (!this.current(reg)) {
      return false;
    }
    delete this.regs[reg.cname];
    var held = reg.state !== 'none';
    reg.state = 'none';
    if (held) {
      this.pending[reg.cname] = (this.pending[reg.cname] || 0) + 1;
    }
    return held;
  };

  /**
   * The registration a message from the server is for, or null when it is
   * to be dropped (an old subscription's frame, the answer to an unsub, a
   * channel not registered). Updates the registration's state.
   */
  SocketBook.prototype.route = function (msg) {
    var cname = msg.cname;
    var waiting = this.pending[cname];
    if (waiting) {
      if (msg.type === 'unsub' || msg.type === '400') {
        if (waiting === 1) {
          delete this.pending[cname];
        } else {
          this.pending[cname] = waiting - 1;
        }
      }
      return null;
    }
    var reg = this.regs[cname];
    if (!reg || msg.type === 'unsub') {
      return null;
    }
    switch (msg.type) {
      case 'next_seq':
      case 'data':
      case 'broadcast':
        reg.state = 'held';
        break;
      case '401':
      case '429':
      case 'close':
        reg.state = 'none';
        break;
    }
    return reg;
  };

  /** A sub for `reg` was sent. */
  SocketBook.prototype.sent = function (reg) {
    reg.state = 'sent';
  };

  /** A new socket: the server holds nothing, no answer is awaited. */
  SocketBook.prototype.reset = function () {
    this.pending = Object.create(null);
    for (var k in this.regs) {
      this.regs[k].state = 'none';
    }
  };

  /** The registrations (in JavaScript's key order). */
  SocketBook.prototype.list = function () {
    var out = [];
    for (var k in this.regs) {
      out.push(this.regs[k]);
    }
    return out;
  };

  /** How many channels are registered. */
  SocketBook.prototype.size = function () {
    return this.list().length;
  };

  /**
   * The document.domain value the server's /iframe prologue sets: the last
   * two labels of the hostname, or the hostname itself where that is refused
   * (IP addresses, single labels). Both documents must set the same value.
   */
  function shareDomain(doc) {
    var h = doc.location.hostname;
    try {
      doc.domain = h.split('.').slice(-2).join('.');
    } catch (e) {
      try {
        doc.domain = h;
      } catch (e2) {
        // Not settable here (sandboxed document): the iframe transport fails
        // and the client retries with backoff.
      }
    }
  }

  /** A text frame or SSE event as a message object, or null when it is not one. */
  function parseMessage(text) {
    try {
      var msg = JSON.parse(text);
      return msg && typeof msg === 'object' ? msg : null;
    } catch (e) {
      return null;
    }
  }

  var instances = 0;
  var sockets = 0;
  var jsonpCalls = 0;
  // iComet instances using the iframe transport, for the shared icomet_cb.
  var framed = [];

  /** Installs the one window.icomet_cb that /iframe scripts call. */
  function installFrameCallback() {
    if (global.icomet_cb && global.icomet_cb.cometDispatcher) {
      return;
    }
    var previous = global.icomet_cb;
    var dispatch = function (msg) {
      var handled = false;
      for (var i = 0; i < framed.length; i++) {
        if (framed[i].acceptsFrame(msg)) {
          framed[i].handle(msg);
          handled = true;
        }
      }
      if (!handled && typeof previous === 'function') {
        previous(msg);
      }
    };
    dispatch.cometDispatcher = true;
    global.icomet_cb = dispatch;
  }

  /**
   * Loads `url` as a script whose reply calls a fresh global callback.
   * `onReply(msg)` or `onFail(reason)` is called once, unless the returned
   * handle is closed first. A reply arriving after close calls a no-op.
   */
  function jsonp(url, cbParam, onReply, onFail) {
    var name = 'icomet_jsonp_' + ++jsonpCalls;
    var done = false;
    var script = global.document.createElement('script');
    function finish() {
      done = true;
      global[name] = function () {};
      if (script.parentNode) {
        script.parentNode.removeChild(script);
      }
      setTimeout(function () {
        try {
          delete global[name];
        } catch (e) {
          global[name] = undefined;
        }
      }, 120000);
    }
    global[name] = function (msg) {
      if (!done) {
        finish();
        onReply(msg);
      }
    };
    script.onerror = function () {
      if (!done) {
        finish();
        onFail('request failed');
      }
    };
    script.onload = function () {
      if (!done) {
        finish();
        onFail('reply without callback');
      }
    };
    var params = {};
    params[cbParam] = name;
    script.src = withParams(url, params);
    (global.document.head || global.document.documentElement).appendChild(script);
    return {
      close: function () {
        if (!done) {
          finish();
        }
      }
    };
  }

  /**
   * A subscription to one channel. `config`: channel, subUrl|sub_url,
   * signUrl|sign_url, pubUrl|pub_url, callback|sub_callback, sub_timeout (ms),
   * and comet.js's own: transport ('ws', 'sse', 'poll', 'iframe'; default
   * WebSocket, then SSE, where available), websocket (false: never choose
   * WebSocket by default), socket (an iComet.Socket to share: the channel
   * is held on that socket's WebSocket), error (refusals and closes),
   * backoff_ms, backoff_max_ms and admin_key|adminKey (comet's admin.key:
   * sent with pub as `Authorization: Bearer`, or as a `key` parameter of
   * JSONP pub and sign, which cannot carry headers; never sent to the front
   * listener). It subscribes at once, like icomet.js.
   */
  function iComet(config) {
    if (!(this instanceof iComet)) {
      return new iComet(config);
    }
    var self = this;
    self.config = config;
    self.id = instances++;
    self.cb = 'icomet_cb_' + self.id;
    self.cname = config.channel === undefined ? '' : String(config.channel);
    self.sub_url = config.sub_url || config.subUrl;
    self.sign_url = config.sign_url || config.signUrl || null;
    self.pub_url = config.pub_url || config.pubUrl || null;
    self.admin_key = config.admin_key || config.adminKey || '';
    self.sub_callback = config.callback || config.sub_callback || null;
    self.error_callback = config.error || config.error_callback || null;
    self.sub_timeout = config.sub_timeout || 60000;
    self.backoff_ms = config.backoff_ms || 500;
    self.backoff_max_ms = config.backoff_max_ms || 30000;
    self.socket = config.socket || null;
    self.transport = config.transport || (self.socket ? self.socket.transport : chooseTransport(config, global));
    // Only a WebSocket chosen here falls back (a socket does that itself).
    self.wsAuto = !config.transport && !self.socket;
    self.wsWorked = false;
    self.wsFailures = 0;
    if (self.transport !== 'poll' && !self.shared() && !transportUrl(self.sub_url, self.transport)) {
      self.log('subUrl does not end in /sub or /poll; using long polling');
      self.transport = 'poll';
    }
    self.seqs = new SeqTracker();
    self.token = '';
    self.stopped = true;
    self.attempt = 0;
    self.conn = null;
    self.generation = 0;
    self.retryTimer = null;
    self.watchdog = null;
    self.lastActivity = 0;
    self.start();
  }

  /** Whether this channel is held on its socket's shared WebSocket. */
  iComet.prototype.shared = function () {
    return !!this.socket && this.transport === 'ws';
  };

  /** Subscribes (signing first when a sign URL is set). */
  iComet.prototype.start = function () {
    var self = this;
    if (!self.stopped) {
      return;
    }
    if (self.socket) {
      // Throws when another iComet holds this channel on the socket.
      self.socket.join(self);
    }
    self.stopped = false;
    self.lastActivity = Date.now();
    self.watchdog = setInterval(function () {
      // A shared socket watches its own heartbeat: a quiet channel on it
      // gets no frames while the socket's noops keep coming.
      if (self.conn && !self.conn.shared && Date.now() - self.lastActivity > self.sub_timeout) {
        self.log('no message for ' + self.sub_timeout + ' ms; reconnecting');
        self.retry();
      }
    }, 1000);
    var doc = global.document;
    var blocksLoad = self.transport === 'poll' || self.transport === 'iframe';
    if (doc && doc.readyState !== 'complete' && blocksLoad) {
      // A pending script or iframe holds the page's load event (and the
      // browser's spinner) for as long as it is open: connect after load.
      global.addEventListener('load', function () {
        self.connect();
      });
      return;
    }
    self.connect();
  };

  /** Ends the subscription; start() or sub() resumes from the same seq. */
  iComet.prototype.stop = function () {
    this.stopped = true;
    this.drop();
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    clearInterval(this.watchdog);
    this.watchdog = null;
    this.unframe();
    if (this.socket) {
      this.socket.leave(this);
    }
  };

  iComet.prototype.sub = iComet.prototype.start;
  iComet.prototype.unsub = iComet.prototype.stop;

  /** Closes the current connection; its late events are ignored. */
  iComet.prototype.drop = function () {
    this.generation++;
    if (this.conn) {
      this.conn.close();
      this.conn = null;
    }
  };

  /** Reconnects after the backoff delay for the next attempt. */
  iComet.prototype.retry = function (atLeastMs) {
    var self = this;
    self.drop();
    if (self.stopped) {
      return;
    }
    var delay = Math.max(atLeastMs || 0, backoffDelay(self.attempt++, self.backoff_ms, self.backoff_max_ms));
    self.log('reconnecting in ' + Math.round(delay) + ' ms');
    clearTimeout(self.retryTimer);
    self.retryTimer = setTimeout(function () {
      self.retryTimer = null;
      self.connect();
    }, delay);
  };

  /** Connects now: signs first if needed, then opens the transport. */
  iComet.prototype.connect = function () {
    var self = this;
    self.drop();
    if (self.stopped) {
      return;
    }
    self.lastActivity = Date.now();
    var gen = self.generation;
    if (self.sign_url && !self.token) {
      var signParams = { cname: self.cname, _: Date.now() };
      if (self.admin_key) {
        signParams.key = self.admin_key;
      }
      var url = withParams(self.sign_url, signParams);
      self.conn = jsonp(
        url,
        'cb',
        function (msg) {
          if (gen !== self.generation) {
            return;
          }
          self.conn = null;
          if (!msg || msg.type !== 'sign') {
            self.handle(msg);
            return;
          }
          self.token = msg.token;
          var t = parseInt(msg.sub_timeout, 10);
          if (t > 0) {
            // The server sends a noop every sub_timeout + 1 s of silence.
            self.sub_timeout = Math.max(t * 1300, (t + 5) * 1000);
            if (self.socket) {
              self.socket.sub_timeout = Math.max(self.socket.sub_timeout, self.sub_timeout);
            }
          }
          self.connect();
        },
        function (why) {
          if (gen === self.generation) {
            self.log('sign: ' + why);
            self.retry();
          }
        }
      );
      return;
    }
    if (self.shared()) {
      self.conn = self.socket.attach(self);
      return;
    }
    var params = { cname: self.cname, seq: self.seqs.next, noop: self.seqs.noop, token: self.token };
    var onFail = function (why) {
      if (gen !== self.generation) {
        return;
      }
      self.log(self.transport + ': ' + why);
      if (self.transport === 'ws' && self.wsAuto && !self.wsWorked && ++self.wsFailures >= WS_FALLBACK_FAILURES) {
        self.transport = fallbackTransport(global);
        self.log('WebSocket failed ' + self.wsFailures + ' times before any message; using ' + self.transport);
      }
      self.retry();
    };
    if (self.transport === 'ws') {
      self.conn = self.openWs(wsUrl(transportUrl(self.sub_url, 'ws'), global.location && global.location.href), params, gen, onFail);
    } else if (self.transport === 'sse') {
      self.conn = self.openSse(transportUrl(self.sub_url, 'sse'), params, gen, onFail);
    } else if (self.transport === 'iframe') {
      self.conn = self.openIframe(transportUrl(self.sub_url, 'iframe'), params, gen, onFail);
    } else {
      params._ = Date.now();
      self.conn = jsonp(
        withParams(self.sub_url, params),
        'cb',
        function (msg) {
          if (gen !== self.generation) {
            return;
          }
          self.conn = null;
          // One reply ends the request: poll again unless handling it
          // already decided otherwise (a retry, a restart, a refusal).
          self.handle(msg);
          if (gen === self.generation && !self.stopped && !self.conn && !self.retryTimer) {
            self.connect();
          }
        },
        onFail
      );
    }
  };

  /** An EventSource on /sse; closed on the first error so that we choose when to reconnect. */
  iComet.prototype.openSse = function (url, params, gen, onFail) {
    var self = this;
    var es = new global.EventSource(withParams(url, params));
    es.onmessage = function (e) {
      if (gen !== self.generation) {
        return;
      }
      var msg;
      try {
        msg = JSON.parse(e.data);
      } catch (err) {
        self.log('not JSON: ' + e.data);
        return;
      }
      self.handle(msg);
    };
    es.onerror = function () {
      es.close();
      onFail('connection lost');
    };
    return {
      close: function () {
        es.close();
      }
    };
  };

  /**
   * A WebSocket on /ws with this channel in the URL: one message object per
   * text frame. Closes 4401 and 4429 are the refusals (their object comes
   * first and is handled already; the code alone counts as well); any
   * other close is a reconnect.
   */
  iComet.prototype.openWs = function (url, params, gen, onFail) {
    var self = this;
    var ws = new global.WebSocket(withParams(url, params));
    ws.onmessage = function (e) {
      if (gen !== self.generation) {
        return;
      }
      self.wsWorked = true;
      self.wsFailures = 0;
      var msg = parseMessage(e.data);
      if (!msg) {
        self.log('not a message object: ' + e.data);
        return;
      }
      self.handle(msg);
    };
    ws.onclose = function (e) {
      if (gen !== self.generation) {
        return;
      }
      var action = wsCloseAction(e.code);
      if (action !== 'retry') {
        self.handle({ type: action, cname: self.cname, seq: 0, content: e.reason || describeClose(e.code) });
        return;
      }
      onFail('closed with ' + describeClose(e.code));
    };
    return {
      close: function () {
        ws.onmessage = null;
        ws.onclose = null;
        try {
          ws.close();
        } catch (e) {
          // Already closed.
        }
      }
    };
  };

  /** A hidden iframe on /iframe; its scripts call parent.icomet_cb. */
  iComet.prototype.openIframe = function (url, params, gen, onFail) {
    var self = this;
    var doc = global.document;
    shareDomain(doc);
    installFrameCallback();
    if (framed.indexOf(self) < 0) {
      framed.push(self);
    }
    var frame = doc.createElement('iframe');
    frame.style.display = 'none';
    // The load event comes when the response ends: refused, closed, or lost.
    frame.onload = function () {
      onFail('stream ended');
    };
    frame.src = withParams(url, params);
    (doc.body || doc.documentElement).appendChild(frame);
    return {
      close: function () {
        frame.onload = null;
        // Removed outside the frame's own script (a refusal closes from
        // there). Until then its scripts may still run: `calling` tells
        // them apart from the current frame's.
        setTimeout(function () {
          if (frame.parentNode) {
            frame.parentNode.removeChild(frame);
          }
        }, 0);
      },
      // Whether the running icomet_cb call comes from this frame's document
      // (every frame calls the same parent.icomet_cb). Readable because both
      // documents share document.domain, which the transport needs anyway.
      calling: function () {
        try {
          var d = frame.contentDocument;
          return !!(d && d.currentScript);
        } catch (e) {
          return true;
        }
      }
    };
  };

  /**
   * Whether a message from an /iframe script belongs to this instance: its
   * current frame is the caller. A frame being closed (a reconnect from seq 1
   * after a restart, a retry) can still deliver for a moment, and a second
   * instance on the same channel has frames of its own.
   */
  iComet.prototype.acceptsFrame = function (msg) {
    return (
      !this.stopped &&
      this.transport === 'iframe' &&
      this.conn !== null &&
      typeof this.conn.calling === 'function' &&
      this.conn.calling() &&
      !!msg &&
      msg.cname === this.cname
    );
  };

  iComet.prototype.unframe = function () {
    var i = framed.indexOf(this);
    if (i >= 0) {
      framed.splice(i, 1);
    }
  };

  /** Handles one reply: a message object or a long-poll batch (an array). */
  iComet.prototype.handle = function (msg) {
    var self = this;
    if (self.stopped || !msg) {
      return;
    }
    if (msg instanceof Array) {
      for (var i = 0; i < msg.length && !self.stopped; i++) {
        self.handle(msg[i]);
      }
      return;
    }
    self.lastActivity = Date.now();
    switch (msg.type) {
      case 'next_seq':
        self.attempt = 0;
        if (self.seqs.nextSeq(msg.seq) === 'restart') {
          self.log('the server is behind our seq (restarted?); fetching its history from seq 1');
          self.connect();
        }
        break;
      case 'data':
      case 'broadcast':
        self.attempt = 0;
        var verdict = self.seqs.message(msg.seq);
        if (verdict === 'duplicate') {
          self.log('dropping duplicate seq ' + msg.seq);
          break;
        }
        if (verdict === 'gap') {
          self.log('messages before seq ' + msg.seq + ' were lost');
        }
        self.deliver(self.sub_callback, msg);
        break;
      case 'noop':
        self.attempt = 0;
        if (!self.seqs.heartbeat(msg.seq, self.transport === 'poll')) {
          self.log('ignoring a stale noop');
        }
        break;
      case 'close':
        self.log('channel closed by the server');
        self.deliver(self.error_callback || self.sub_callback, msg);
        if (self.sign_url) {
          // Its token went with it: the channel is new when we come back.
          self.token = '';
        }
        self.retry();
        break;
      case '401':
        self.deliver(self.error_callback || self.sub_callback, msg);
        if (self.sign_url) {
          // The channel may have been freed or the server restarted: sign again.
          self.token = '';
          self.retry();
        } else {
          self.log('token refused; not retrying');
          self.stop();
        }
        break;
      case '429':
        self.deliver(self.error_callback || self.sub_callback, msg);
        self.retry(self.backoff_ms * 4);
        break;
      case 'unsub':
        // The answer to our own unsub on a shared socket.
        break;
      default:
        self.log('ignoring message of type ' + msg.type);
    }
  };

  /** Calls `cb(content, type, msg)`; an exception in it does not stop the client. */
  iComet.prototype.deliver = function (cb, msg) {
    if (!cb) {
      return;
    }
    try {
      cb(msg.content, msg.type, msg);
    } catch (e) {
      this.log('callback threw: ' + e);
    }
  };

  /**
   * Publishes `content` (a string) to this channel through pubUrl, as
   * cname and content parameters. A pubUrl containing `cb=?` is used as
   * JSONP (icomet's chat demo); any other is fetched with XMLHttpRequest.
   * `callback(reply)` gets the parsed reply, or (null, reason) on failure.
   */
  iComet.prototype.pub = function (content, callback) {
    var self = this;
    var done = callback || function () {};
    if (typeof content !== 'string' || !self.pub_url) {
      self.log('pub needs a string and a pubUrl');
      return false;
    }
    var params = { cname: self.cname, content: content };
    if (/[?&]cb=\?/.test(self.pub_url)) {
      var base = self.pub_url.replace(/([?&])cb=\?(&?)/, function (all, sep, amp) {
        return amp ? sep : '';
      });
      if (self.admin_key) {
        params.key = self.admin_key;
      }
      jsonp(withParams(base, params), 'cb', done, function (why) {
        done(null, why);
      });
      return true;
    }
    var xhr = new global.XMLHttpRequest();
    xhr.open('GET', withParams(self.pub_url, params));
    if (self.admin_key) {
      xhr.setRequestHeader('Authorization', 'Bearer ' + self.admin_key);
    }
    xhr.onload = function () {
      if (xhr.status !== 200) {
        done(null, 'HTTP ' + xhr.status);
        return;
      }
      var reply;
      try {
        reply = JSON.parse(xhr.responseText);
      } catch (e) {
        reply = xhr.responseText;
      }
      done(reply);
    };
    xhr.onerror = function () {
      done(null, 'request failed');
    };
    xhr.send();
    return true;
  };

  iComet.prototype.log = function (what) {
    if (global.console && global.console.debug) {
      global.console.debug('icomet[' + this.id + '] ' + what);
    }
  };

  /**
   * Moves this subscription to transport `t` (a shared socket fell back,
   * or the server's per-connection channel cap leaves this channel out of
   * it: `leaveSocket`): reconnects at once, from the same seq.
   */
  iComet.prototype.switchTransport = function (t, leaveSocket) {
    if (leaveSocket && this.socket) {
      this.socket.leave(this);
      this.socket = null;
    }
    this.transport = t;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (!this.stopped) {
      this.connect();
    }
  };

  /**
   * One WebSocket to the front's /ws holding several channels, each an
   * iComet with its own seq, token and callbacks, subscribed with
   * `{"type":"sub",...}` commands. `config` is what every channel's iComet
   * gets (subUrl, signUrl, pubUrl, adminKey, error, backoff_ms,
   * backoff_max_ms, sub_timeout, websocket, transport) plus what
   * subscribe() adds. The socket opens with its first channel, closes after
   * its last, and after a drop (a lost connection, server shutdown 1001, a
   * slow consumer 1013) reconnects with backoff and sends one sub per
   * channel, each from that channel's next seq. It watches its own
   * heartbeat (the server's noops) with sub_timeout. Where WebSocket is
   * unavailable or turned off, or fails before any message (see
   * WS_FALLBACK_FAILURES), each channel uses a connection of its own over
   * the next transport.
   */
  function Socket(config) {
    if (!(this instanceof Socket)) {
      return new Socket(config);
    }
    var self = this;
    self.config = config || {};
    self.id = sockets++;
    self.sub_url = self.config.sub_url || self.config.subUrl;
    self.transport = self.config.transport || chooseTransport(self.config, global);
    self.auto = !self.config.transport;
    if (self.transport === 'ws' && !transportUrl(self.sub_url, 'ws')) {
      self.log('subUrl does not end in /sub or /poll; one connection per channel, long polling');
      self.transport = 'poll';
    }
    self.sub_timeout = self.config.sub_timeout || 60000;
    self.backoff_ms = self.config.backoff_ms || 500;
    self.backoff_max_ms = self.config.backoff_max_ms || 30000;
    self.book = new SocketBook();
    self.members = Object.create(null);
    self.noop = 0;
    self.ws = null;
    self.open = false;
    self.generation = 0;
    self.attempt = 0;
    self.failures = 0;
    self.worked = false;
    self.retryTimer = null;
    self.idleTimer = null;
    self.watchdog = null;
    self.lastActivity = 0;
  }

  /**
   * Subscribes to `channel` on this socket: `callback(content, type, msg)`
   * as for iComet, `options` any other iComet option for this channel
   * (error, signUrl, ...). Returns the channel's iComet. Throws when this
   * socket already has the channel.
   */
  Socket.prototype.subscribe = function (channel, callback, options) {
    var config = {};
    var k;
    for (k in this.config) {
      if (k !== 'transport') {
        config[k] = this.config[k];
      }
    }
    for (k in options || {}) {
      config[k] = options[k];
    }
    config.channel = channel;
    config.callback = callback;
    config.socket = this;
    return new iComet(config);
  };

  /** Ends the subscription to `channel` (its iComet's unsub()). */
  Socket.prototype.unsubscribe = function (channel) {
    var member = this.members[String(channel)];
    if (member) {
      member.stop();
    }
  };

  /** Ends every channel; the socket closes. */
  Socket.prototype.close = function () {
    for (var k in this.members) {
      this.members[k].stop();
    }
  };

  /** The channels subscribed through this socket. */
  Socket.prototype.channels = function () {
    return Object.keys(this.members);
  };

  /** An iComet starts on this socket (throws when the channel is taken). */
  Socket.prototype.join = function (client) {
    var other = this.members[client.cname];
    if (other && other !== client) {
      throw new Error('channel ' + JSON.stringify(client.cname) + ' is already subscribed on this socket');
    }
    this.members[client.cname] = client;
  };

  /** An iComet stops (or moves to a connection of its own). */
  Socket.prototype.leave = function (client) {
    if (this.members[client.cname] === client) {
      delete this.members[client.cname];
    }
  };

  /**
   * Holds `client`'s channel on the socket: a sub now if the socket is
   * open, else when it opens. Returns the connection handle the iComet
   * keeps (close() unsubscribes).
   */
  Socket.prototype.attach = function (client) {
    var self = this;
    var reg = self.book.add(client.cname, client);
    clearTimeout(self.idleTimer);
    self.idleTimer = null;
    if (self.open) {
      self.sendSub(reg);
    } else if (!self.ws && !self.retryTimer) {
      self.connect();
    }
    return {
      shared: true,
      close: function () {
        self.detach(reg);
      }
    };
  };

  /** Releases a registration: an unsub when the server may hold it. */
  Socket.prototype.detach = function (reg) {
    var self = this;
    if (self.book.remove(reg) && self.open) {
      self.send({ type: 'unsub', cname: reg.cname });
    }
    if (self.book.size() === 0 && !self.idleTimer) {
      // Not at once: a channel that starts again from seq 1 detaches and
      // attaches in one go.
      self.idleTimer = setTimeout(function () {
        self.idleTimer = null;
        if (self.book.size() === 0) {
          self.log('no channel left; closing');
          self.drop();
          clearTimeout(self.retryTimer);
          self.retryTimer = null;
          clearInterval(self.watchdog);
          self.watchdog = null;
        }
      }, 0);
    }
  };

  /** Sends the sub of a registration, from its channel's next seq. */
  Socket.prototype.sendSub = function (reg) {
    var c = reg.client;
    var cmd = { type: 'sub', cname: reg.cname, seq: c.seqs.next };
    if (c.token) {
      cmd.token = c.token;
    }
    this.book.sent(reg);
    this.send(cmd);
  };

  /** Sends one command (a JSON object in a text frame). */
  Socket.prototype.send = function (cmd) {
    try {
      this.ws.send(JSON.stringify(cmd));
    } catch (e) {
      this.log('send failed: ' + e);
    }
  };

  /** Closes the current WebSocket; its late events are ignored. */
  Socket.prototype.drop = function () {
    this.generation++;
    this.open = false;
    this.book.reset();
    if (this.ws) {
      var ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close();
      } catch (e) {
        // Already closed.
      }
    }
  };

  /** Opens the WebSocket now; each registered channel subscribes once it is open. */
  Socket.prototype.connect = function () {
    var self = this;
    self.drop();
    if (self.book.size() === 0) {
      return;
    }
    var gen = self.generation;
    self.lastActivity = Date.now();
    if (!self.watchdog) {
      self.watchdog = setInterval(function () {
        if (self.ws && Date.now() - self.lastActivity > self.sub_timeout) {
          self.lost('no message for ' + self.sub_timeout + ' ms');
        }
      }, 1000);
    }
    var url = wsUrl(transportUrl(self.sub_url, 'ws'), global.location && global.location.href);
    var ws = new global.WebSocket(withParams(url, { noop: self.noop }));
    self.ws = ws;
    ws.onopen = function () {
      if (gen !== self.generation) {
        return;
      }
      self.open = true;
      var regs = self.book.list();
      for (var i = 0; i < regs.length; i++) {
        self.sendSub(regs[i]);
      }
    };
    ws.onmessage = function (e) {
      if (gen !== self.generation) {
        return;
      }
      self.lastActivity = Date.now();
      self.worked = true;
      self.failures = 0;
      self.attempt = 0;
      var msg = parseMessage(e.data);
      if (!msg) {
        self.log('not a message object: ' + e.data);
        return;
      }
      self.dispatch(msg);
    };
    ws.onclose = function (e) {
      if (gen === self.generation) {
        self.lost('closed with ' + describeClose(e.code));
      }
    };
  };

  /** The connection is gone: reconnect with backoff while channels remain. */
  Socket.prototype.lost = function (why) {
    var self = this;
    self.log(why);
    self.drop();
    if (self.book.size() === 0) {
      clearInterval(self.watchdog);
      self.watchdog = null;
      return;
    }
    if (self.auto && !self.worked && ++self.failures >= WS_FALLBACK_FAILURES) {
      self.fallBack();
      return;
    }
    var delay = backoffDelay(self.attempt++, self.backoff_ms, self.backoff_max_ms);
    self.log('reconnecting in ' + Math.round(delay) + ' ms');
    clearTimeout(self.retryTimer);
    self.retryTimer = setTimeout(function () {
      self.retryTimer = null;
      self.connect();
    }, delay);
  };

  /** WebSocket does not get through: every channel moves to a connection of its own. */
  Socket.prototype.fallBack = function () {
    this.transport = fallbackTransport(global);
    this.log('WebSocket failed ' + this.failures + ' times before any message; one ' + this.transport + ' connection per channel');
    clearInterval(this.watchdog);
    this.watchdog = null;
    for (var k in this.members) {
      this.members[k].switchTransport(this.transport, false);
    }
  };

  /** One message from the server, to the channel it names. */
  Socket.prototype.dispatch = function (msg) {
    if (msg.type === 'noop') {
      this.noop = seqNext(msg.seq | 0);
      return;
    }
    var reg = this.book.route(msg);
    if (!reg) {
      if (msg.type === '400') {
        this.log('command refused: ' + msg.content);
      }
      return;
    }
    if (msg.type === '429' && msg.content === 'Too many channels on this connection') {
      // The server's per-connection cap: this channel gets a connection of its own.
      this.log('socket full; ' + reg.cname + ' gets a WebSocket of its own');
      reg.client.switchTransport('ws', true);
      return;
    }
    reg.client.handle(msg);
  };

  /** Logs at debug level (the browser console), never alert(). */
  Socket.prototype.log = function (what) {
    if (global.console && global.console.debug) {
      global.console.debug('icomet socket[' + this.id + '] ' + what);
    }
  };

  iComet.Socket = Socket;
  global.iComet = iComet;
  if (typeof module === 'object' && module.exports) {
    module.exports = {
      iComet: iComet,
      Socket: Socket,
      SocketBook: SocketBook,
      chooseTransport: chooseTransport,
      wsUrl: wsUrl,
      wsCloseAction: wsCloseAction,
      WS_FALLBACK_FAILURES: WS_FALLBACK_FAILURES,
      SeqTracker: SeqTracker,
      backoffDelay: backoffDelay,
      transportUrl: transportUrl,
      withParams: withParams,
      seqNext: seqNext,
      seqDiff: seqDiff
    };
  }
})(typeof window !== 'undefined' ? window : globalThis);
