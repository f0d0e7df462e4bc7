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
 * The callback gets the message content (a string), its type ('data' or
 * 'broadcast') and the whole message object as the server sent it. Refusals
 * and channel ends ('401', '429', 'close') go to config.error if given, else
 * to the callback with their type, never to alert().
 *
 * Transport: SSE (/sse) where the browser has EventSource, else JSONP long
 * polling (/sub); iframe (/iframe, parent.icomet_cb) or polling by
 * config.transport. Every reconnect asks for the next seq it has not seen,
 * so nothing is lost while the server keeps it in history, and messages at
 * or below the last seen seq are dropped, so nothing is delivered twice.
 * Failed connections are retried with exponential backoff and jitter.
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

  var instances = 0;
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
   * and comet.js's own: transport ('sse', 'poll', 'iframe'; default SSE where
   * available), error (refusals and closes), backoff_ms, backoff_max_ms and
   * admin_key|adminKey (comet's admin.key: sent with pub as
   * `Authorization: Bearer`, or as a `key` parameter of JSONP pub and sign,
   * which cannot carry headers; never sent to the front listener).
   * It subscribes at once, like icomet.js.
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
    self.transport = config.transport || (typeof global.EventSource !== 'undefined' ? 'sse' : 'poll');
    if (self.transport !== 'poll' && !transportUrl(self.sub_url, self.transport)) {
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

  /** Subscribes (signing first when a sign URL is set). */
  iComet.prototype.start = function () {
    var self = this;
    if (!self.stopped) {
      return;
    }
    self.stopped = false;
    self.lastActivity = Date.now();
    self.watchdog = setInterval(function () {
      if (self.conn && Date.now() - self.lastActivity > self.sub_timeout) {
        self.log('no message for ' + self.sub_timeout + ' ms; reconnecting');
        self.retry();
      }
    }, 1000);
    var doc = global.document;
    if (doc && doc.readyState !== 'complete' && self.transport !== 'sse') {
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
    var params = { cname: self.cname, seq: self.seqs.next, noop: self.seqs.noop, token: self.token };
    var onFail = function (why) {
      if (gen === self.generation) {
        self.log(self.transport + ': ' + why);
        self.retry();
      }
    };
    if (self.transport === 'sse') {
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

  global.iComet = iComet;
  if (typeof module === 'object' && module.exports) {
    module.exports = {
      iComet: iComet,
      SeqTracker: SeqTracker,
      backoffDelay: backoffDelay,
      transportUrl: transportUrl,
      withParams: withParams,
      seqNext: seqNext,
      seqDiff: seqDiff
    };
  }
})(typeof window !== 'undefined' ? window : globalThis);
