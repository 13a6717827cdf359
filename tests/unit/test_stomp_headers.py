"""stomp_core's header parser gives exactly what stomp.py's own gives (its code copied here)."""

from __future__ import annotations

import random
import re

import pytest
from stomp import utils as stomp_utils

from drbootstrap.messaging import stomp_core


def stomp_py_parse_headers(lines, offset=0):
    headers = {}
    for header_line in lines[offset:]:
        header_match = stomp_utils.HEADER_LINE_RE.match(header_line)
        if header_match:
            key = header_match.group("key")
            key = re.sub(r"\\.", stomp_utils._unescape_header, key)
            if key not in headers:
                value = header_match.group("value")
                value = re.sub(r"\\.", stomp_utils._unescape_header, value)
                headers[key] = value
    return headers


LINES = [
    "MESSAGE", "destination:/exchange/mcollective_broadcast/discovery", "message-id:T_1@@session-x@@1",
    "content-length:556", "reply-to:/temp-queue/mcollective_reply_discovery", "mc\\cidentity:web01",
    "weird:a\\nb\\\\c\\cd\\x", "no colon here", "dup:first", "dup:second", "empty:", ":novalue",
    "persistent:true", "a\\\\b:c\\\\d", "trailing\\:x",
]


@pytest.mark.parametrize("offset", [0, 1, 3])
def test_the_parser_matches_stomp_pys_on_real_and_escaped_headers(offset):
    assert stomp_core._parse_headers(LINES, offset) == stomp_py_parse_headers(LINES, offset)


def test_the_parser_matches_stomp_pys_on_random_lines():
    rng = random.Random(7)
    alphabet = "ab:\\cnrx-_ é\t"
    for _ in range(2000):
        lines = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(rng.randint(1, 6))]
        assert stomp_core._parse_headers(lines) == stomp_py_parse_headers(lines), lines


def test_stomp_pys_frame_parser_uses_it():
    frame = stomp_utils.parse_frame(b"MESSAGE\ndestination:/queue/x\nk\\cey:v\\nal\n\nbody")
    assert frame.cmd == "MESSAGE" and frame.headers == {"destination": "/queue/x", "k:ey": "v\nal"}
    assert stomp_utils.parse_headers is stomp_core._parse_headers
