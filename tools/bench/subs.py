"""Non-blocking subscriber connections for tools/storm and tools/soak.

A `Sub` is one front connection: it connects from a chosen 127.x.y.z source
address, sends one subscribe request per response (long polls send the next
one on the same connection), decodes the chunked HTTP response and pulls the
icomet message objects out of every chunk, whatever the transport's framing
(bare JSON lines, JSONP calls, SSE `data:` lines, iframe scripts). A `Pool`
owns an epoll instance over many of them and reports what happened; it never
decides anything (the tools do). Only 127.0.0.0/8 is ever contacted.
"""
import errno, re, select, socket, struct

TRANSPORTS = ("longpoll", "jsonp", "stream", "sse", "iframe")

# One message object (reference §2.1): type, cname, seq, content, in this order.
FRAME = re.compile(rb'\{"type":"([^"]*)","cname":"((?:[^"\\]|\\.)*)","seq":(-?\d+),"content":"((?:[^"\\]|\\.)*)"\}')

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
LINGER_RST = struct.pack("ii", 1, 0)

CONNECTING, OPEN, CLOSED = 0, 1, 2


class SubError(Exception):
    """A connection failed; `kind` names how (connect, reset, eof, http, protocol, io)."""

    def __init__(self, kind, detail=""):
        super().__init__(f"{kind} {detail}".strip())
        self.kind = kind


def request(transport, cname, seq):
    """The subscribe request bytes for a transport."""
    path = "/sub" if transport in ("longpoll", "jsonp") else "/" + transport
    cb = "&cb=cb_" + cname if transport == "jsonp" else ""
    return f"GET {path}?cname={cname}&seq={seq}{cb} HTTP/1.1\r\nHost: comet\r\n\r\n".encode()


class Sub:
    """One subscriber connection and its response decoder."""

    __slots__ = ("sock", "fd", "transport", "cname", "state", "buf", "in_head", "chunked", "heads", "user")

    def __init__(self, transport, cname, src_ip, front_port):
        self.transport, self.cname = transport, cname
        self.state, self.buf, self.in_head, self.chunked, self.heads = CONNECTING, bytearray(), True, False, 0
        self.user = None
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock, self.fd = s, s.fileno()
        s.setblocking(False)
        if src_ip:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((src_ip, 0))
        rc = s.connect_ex(("127.0.0.1", front_port))
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            raise SubError("connect", errno.errorcode.get(rc, str(rc)))

    @property
    def long_poll(self):
        return self.transport in ("longpoll", "jsonp")

    def send(self, data):
        """Writes a small request; it must fit the empty send buffer at once."""
        try:
            n = self.sock.send(data)
        except OSError as e:
            raise SubError("reset" if e.errno in (errno.ECONNRESET, errno.EPIPE) else "io", str(e)) from None
        if n != len(data):
            raise SubError("io", "short write")

    def subscribe(self, seq):
        """Sends the subscribe request (again, for a long poll) asking for `seq`."""
        self.send(request(self.transport, self.cname, seq))

    def connected(self):
        """Called when the socket turns writable while connecting."""
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise SubError("connect", errno.errorcode.get(err, str(err)))
        self.state = OPEN

    def read(self):
        """Reads what is there; returns (frames, responses_ended). Raises SubError on EOF or errors."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return [], 0
        except OSError as e:
            raise SubError("reset" if e.errno == errno.ECONNRESET else "io", str(e)) from None
        if not data:
            raise SubError("eof")
        self.buf += data
        return self.decode()

    def decode(self):
        """Consumes complete heads and chunks from `buf`; returns (frames, responses_ended)."""
        frames, ended, buf, pos = [], 0, self.buf, 0
        while True:
            if self.in_head:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    break
                head = bytes(buf[pos:end]).lower()
                if not head.startswith(b"http/1.1 200 "):
                    raise SubError("http", head.split(b"\r\n", 1)[0].decode("latin-1"))
                self.chunked = b"transfer-encoding: chunked" in head
                self.in_head, pos = False, end + 4
                self.heads += 1
            elif self.chunked:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                try:
                    size = int(bytes(buf[pos:eol]), 16)
                except ValueError:
                    raise SubError("protocol", "bad chunk size") from None
                if len(buf) < eol + 2 + size + 2:
                    break
                payload = bytes(buf[eol + 2:eol + 2 + size])
                if buf[eol + 2 + size:eol + 4 + size] != b"\r\n":
                    raise SubError("protocol", "bad chunk end")
                pos = eol + 4 + size
                if size == 0:
                    self.in_head, ended = True, ended + 1
                else:
                    frames.extend(FRAME.findall(payload))
            else:
                raise SubError("protocol", "response is not chunked")
        del buf[:pos]
        return frames, ended

    def close(self, rst=False):
        """Closes the socket: a FIN, or with `rst` an RST (SO_LINGER on, 0 s)."""
        if self.state == CLOSED:
            return
        if rst:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            except OSError:
                pass
        self.sock.close()
        self.state = CLOSED


class Pool:
    """An epoll set of `Sub`s; `poll` reports connects, frames, ended responses and errors."""

    def __init__(self):
        self.ep = select.epoll()
        self.subs = {}

    def add(self, sub):
        self.subs[sub.fd] = sub
        self.ep.register(sub.fd, select.EPOLLOUT)

    def drop(self, sub, rst=False):
        """Forgets `sub` and closes it (FIN, or RST with `rst`)."""
        if self.subs.pop(sub.fd, None) is sub:
            try:
                self.ep.unregister(sub.fd)
            except OSError:
                pass
        sub.close(rst)

    def poll(self, timeout):
        """Waits up to `timeout` s; returns a list of (sub, what, value) with what one of
        'open' (connected; send the request), 'head' (number of response heads that arrived),
        'frames' (list of (type, cname, seq, content)),
        'ended' (number of responses that ended), 'error' (a SubError; the sub is dropped)."""
        out = []
        for fd, ev in self.ep.poll(timeout, 4096):
            sub = self.subs.get(fd)
            if sub is None:
                continue
            try:
                if sub.state == CONNECTING:
                    sub.connected()
                    self.ep.modify(fd, select.EPOLLIN | select.EPOLLRDHUP)
                    out.append((sub, "open", None))
                    continue
                heads = sub.heads
                frames, ended = sub.read()
                if sub.heads > heads:
                    out.append((sub, "head", sub.heads - heads))
                if frames:
                    out.append((sub, "frames", frames))
                if ended:
                    out.append((sub, "ended", ended))
            except SubError as e:
                self.drop(sub)
                out.append((sub, "error", e))
        return out

    def close_all(self):
        for sub in list(self.subs.values()):
            self.drop(sub)
        self.ep.close()
