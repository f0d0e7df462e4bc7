#!/usr/bin/env python3
"""Writes the hand-made inputs of the `ws_frames` fuzz target:
fuzz/seeds/ws_frames/ (valid sequences and one input per error class) and
fuzz/regressions/ws_frames/ (the boundaries: 125/126 and 65535/65536
lengths against the maxima on both sides, UTF-8 split across frames).

An input is: a split seed byte, a byte choosing the message maximum
(index into LIMITS in src/fuzzing/ws.rs: 0, 3, 125, 126, 4096, 65535,
65536, 1 MiB), then the client bytes. Run from the repository root.
"""
import os
import struct

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])
LIMIT = {0: 0, 3: 1, 125: 2, 126: 3, 4096: 4, 65535: 5, 65536: 6, 1 << 20: 7}


def frame(b0, payload=b"", mask=True, length=None):
    """A client frame; `length` forces the 7-bit field (126 or 127)."""
    n = len(payload)
    field = length if length is not None else (n if n < 126 else 126 if n <= 0xFFFF else 127)
    out = bytes([b0, (0x80 if mask else 0) | field])
    if field == 126:
        out += struct.pack(">H", n)
    elif field == 127:
        out += struct.pack(">Q", n)
    if mask:
        out += MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return out


def text(s):
    return frame(0x81, s.encode())


def close(code=None, reason=b""):
    return frame(0x88, b"" if code is None else struct.pack(">H", code) + reason)


def write(kind, name, body, seed=7, limit=4096):
    path = os.path.join("fuzz", kind, "ws_frames", name)
    with open(path, "wb") as f:
        f.write(bytes([seed, LIMIT[limit]]) + body)


def seeds():
    s = lambda name, body, **kw: write("seeds", name, body, **kw)
    s("text_ping_pong_close", text("hello") + frame(0x89, b"ping") + frame(0x8A, b"pong") + close(1000, b"bye"))
    s("binary", frame(0x82, bytes(range(256))) + close(1001))
    s("fragmented_with_pings", frame(0x01, b"fra") + frame(0x89, b"p1") + frame(0x00, b"gme")
      + frame(0x8A) + frame(0x80, b"nted") + frame(0x02, b"\x01") + frame(0x80, b"\x02") + close())
    s("zero_length_frames", frame(0x81) + frame(0x82) + frame(0x89) + frame(0x8A) + frame(0x01)
      + frame(0x00) + frame(0x80) + close())
    s("utf8_split_across_fragments", frame(0x01, b"a\xe2") + frame(0x00, b"\x82")
      + frame(0x00, b"\xacb\xf0\x9d") + frame(0x89) + frame(0x80, b"\x84\x9e"), seed=0)
    s("close_reason_123", close(4999, b"r" * 123))
    s("commands", text('{"type":"sub","cname":"c2","seq":17,"token":"t"}')
      + text('{"type":"unsub","cname":"c2"}'), seed=3, limit=125)
    s("wide_length_encoding", frame(0x81, b"short", length=126) + frame(0x82, b"x" * 200, length=127))
    # One input per error class.
    s("err_unmasked", frame(0x81, b"hi", mask=False))
    s("err_rsv1", frame(0xC1, b"x"))
    s("err_rsv2", frame(0xA1, b"x"))
    s("err_rsv3", frame(0x91, b"x"))
    s("err_opcode_3", frame(0x83))
    s("err_opcode_b", frame(0x8B))
    s("err_control_126", frame(0x89, b"p" * 126))
    s("err_fragmented_ping", frame(0x09, b"p"))
    s("err_continuation_first", frame(0x80, b"x"))
    s("err_text_inside_fragments", frame(0x01, b"a") + frame(0x81, b"b"))
    s("err_length_top_bit", bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]) + MASK)
    s("err_utf8_fail_fast", frame(0x81, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited"), seed=0)
    s("err_utf8_in_second_fragment", frame(0x01, b"ok") + frame(0x89) + frame(0x80, b"\xed\xa0\x80"))
    s("err_utf8_cut_at_end", frame(0x81, b"ab\xe2\x82"))
    s("err_close_reason_utf8", close(1000, b"\xce\xba\xe1\xbd"))
    s("err_close_one_byte", frame(0x88, b"\x03"))
    s("err_close_code_1005", close(1005))
    s("err_close_code_5000", close(5000))
    s("err_too_big", text("1234"), limit=3)
    s("err_too_big_fragments", frame(0x01, b"12") + frame(0x80, b"34"), limit=3)


def regressions():
    r = lambda name, body, **kw: write("regressions", name, body, **kw)
    r("len_125_126_at_max_125", frame(0x82, b"a" * 125) + frame(0x82, b"b" * 126), limit=125)
    r("len_125_126_at_max_126", frame(0x82, b"a" * 125) + frame(0x82, b"b" * 126) + close(), limit=126)
    r("ping_125", frame(0x89, b"p" * 125) + frame(0x8A, b"q" * 125), seed=0)
    r("len_65535_65536_at_max_65535", frame(0x82, b"c" * 65535) + frame(0x82, b"d" * 65536), seed=200, limit=65535)
    r("len_65535_65536_at_max_65536", frame(0x82, b"c" * 65535) + frame(0x82, b"d" * 65536) + close(),
      seed=200, limit=65536)
    r("utf8_4_byte_split_in_one_frame", frame(0x81, "𝄞€".encode()), seed=0)
    r("utf8_split_over_three_fragments", frame(0x01, b"\xf0") + frame(0x00, b"\x9d\x84") + frame(0x80, b"\x9e"),
      seed=0)


if __name__ == "__main__":
    seeds()
    regressions()
