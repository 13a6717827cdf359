"""Ruby itself (the interpreter mco runs on) loads what the compat codec writes and checks its psk digest."""

from __future__ import annotations

import subprocess

import pytest

from drbootstrap.messaging.envelope import Reply, Request, StatusCode
from drbootstrap.messaging.mcollective import McollectiveProtocol
from tests.support.prereq import require_binary

pytestmark = pytest.mark.integration

# What Psk#decodemsg + Psk#validrequest? do, then print the body as Ruby sees it.
RUBY = r"""
require 'digest/md5'
envelope = Marshal.load(STDIN.read)
digest = Digest::MD5.hexdigest(envelope[:body].to_s + ARGV[0])
raise "bad digest" unless digest == envelope[:hash]
body = Marshal.load(envelope[:body])
p [envelope[:senderid], envelope[:requestid].encoding.to_s, envelope[:msgtime].class, body]
"""


def ruby_view(payload: bytes, psk: str) -> str:
    done = subprocess.run(["ruby", "-e", RUBY, psk], input=payload, capture_output=True, check=True, timeout=30)
    return done.stdout.decode().strip()


def test_ruby_loads_our_reply_with_nested_data_and_verifies_its_digest():
    require_binary("ruby")
    protocol = McollectiveProtocol("interop-psk")
    request = Request("f" * 32, "mco-client", "uid=0", "rpcutil", "inventory", reply_to="/queue/x", created_at=2**31)
    data = {
        "facts": {"role": "web", "cpus": 2, "load": 0.5, "tags": ["a", "b"], "none": None},
        "name": "héllo",
        "big": 2**40,
    }
    frame = protocol.reply_frame(
        Reply(request.request_id, "web01", "rpcutil", "inventory", StatusCode.OK, "OK", data, 2**31), request
    )
    assert ruby_view(frame.body, "interop-psk") == (
        '["web01", "US-ASCII", Integer, {:statuscode=>0, :statusmsg=>"OK", :data=>{:facts=>{"role"=>"web", "cpus"=>2, '
        '"load"=>0.5, "tags"=>["a", "b"], "none"=>nil}, :name=>"héllo", :big=>1099511627776}}]'
    )


def test_ruby_loads_our_request_body_as_simplerpc_expects():
    require_binary("ruby")
    [frame] = McollectiveProtocol("interop-psk").request_frames(
        Request("e" * 32, "drb", "uid=0", "rpcutil", "get_fact", {"fact": "role"}, reply_to="/queue/x", created_at=1000)
    )
    assert ruby_view(frame.body, "interop-psk") == (
        '["drb", "US-ASCII", Integer, {:agent=>"rpcutil", :action=>"get_fact", :caller=>"uid=0", '
        ':data=>{:fact=>"role", :process_results=>true}}]'
    )


# Marshal.load, then what Ruby made of it: the value, each String's encoding, and which elements
# are the very same object (object links).
ROUND_TRIP = r"""
value = Marshal.load(STDIN.read)
p value
p value.flatten.grep(String).map { |s| s.encoding.to_s }.uniq
p value.each_index.select { |i| value[i].equal?(value[i - 2]) && !value[i].is_a?(Integer) }
"""


def test_ruby_reads_every_integer_width_unicode_and_shared_objects_the_own_writer_writes():
    require_binary("ruby")
    from drbootstrap.messaging.marshal_writer import AsciiStr, dumps
    from tests.unit.test_marshal_writer import INTEGERS

    shared_hash, shared_list = {"k": "v"}, ["x", 2**40]
    value = [INTEGERS, "héllo 日本 🙂", AsciiStr("abc"), b"\xff", 1.5, -(2**70), shared_hash, shared_list, shared_hash,
             shared_list]
    done = subprocess.run(["ruby", "-e", ROUND_TRIP], input=dumps(value), capture_output=True, check=True, timeout=30)
    printed, encodings, linked = done.stdout.decode().strip().splitlines()
    assert printed == "[" + ", ".join([
        "[" + ", ".join(str(number) for number in INTEGERS) + "]", '"héllo 日本 🙂"', '"abc"', '"\\xFF"', "1.5",
        str(-(2**70)), '{"k"=>"v"}', '["x", 1099511627776]', '{"k"=>"v"}', '["x", 1099511627776]']) + "]"
    assert encodings == '["UTF-8", "US-ASCII", "ASCII-8BIT"]'
    assert linked == "[8, 9]"  # the second hash and array are the first ones, as written
