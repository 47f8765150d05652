"""The fast lane's protocol benchmark runs a round in process, every request answered."""

from __future__ import annotations

from asyncrpc.network.lean_http import LeanHttpNetwork
from benchmarks import lane_protocol


def test_a_round_answers_every_request_on_one_connection() -> None:
    assert lane_protocol.one_round(requests=50, warmup=5) > 0


def test_the_request_is_worded_as_the_sdks_channel_words_it() -> None:
    channel = LeanHttpNetwork("http://127.0.0.1:8001", auth="lane-token")
    assert channel._encode(lane_protocol.BODY.decode(), None) == lane_protocol.REQUEST
