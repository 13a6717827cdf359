"""Benchmark: the per-message CPU of MCollective 2.12 mode, the agents' cost at 5,000 agents.

Run: python tests/bench/bench_mco_codec.py   (no root, no broker; PYTHONPATH=DIR to time another
copy of the package: before/after in one sitting). Per message, best of 7 rounds of 1,000: the
agent's path (decode_request of a `ping` broadcast + reply_frame of its reply) and the client's
(decode_reply), with the user's defaults (psk, the bounded Marshal reader).
"""

from __future__ import annotations

import time
from pathlib import Path

from drbootstrap.messaging.envelope import Filter, Reply, Request
from drbootstrap.messaging.mcollective import McollectiveProtocol

PSK = "0123456789abcdef0123456789abcdef"
N = 1000
ROUNDS = 7


def main() -> None:
    client = McollectiveProtocol(PSK)
    request = Request(request_id="a" * 32, sender_id="drbootstrap_1_abc", caller_id="", agent="discovery",
                      action="ping", data={}, filter=Filter(), collective="mcollective", ttl=60,
                      created_at=time.time(), reply_to="/queue/mcollective.reply.drbootstrap_1.1")
    frame = client.request_frames(request)[0]
    headers = {**frame.headers, "destination": frame.destination}
    agent_best = client_best = float("inf")
    for _ in range(ROUNDS):
        agents = [McollectiveProtocol(PSK) for _ in range(N)]
        replies = []
        began = time.process_time()
        for index, agent in enumerate(agents):
            decoded = agent.decode_request(frame.body, headers)
            reply = Reply(decoded.request_id, f"s{index:05d}.bench.test", decoded.agent, decoded.action)
            reply.data = {"pong": int(time.time())}
            replies.append(agent.reply_frame(reply, decoded))
        agent_best = min(agent_best, (time.process_time() - began) / N)
        receiver = McollectiveProtocol(PSK)
        began = time.process_time()
        for sent in replies:
            receiver.decode_reply(sent.body, dict(sent.headers))
        client_best = min(client_best, (time.process_time() - began) / N)
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"agent: decode request + encode reply {agent_best * 1e6:.0f} us/message; "
          f"client: decode reply {client_best * 1e6:.0f} us/message (load {load})")


if __name__ == "__main__":
    main()
