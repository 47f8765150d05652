"""The harness never hands out one port twice, whatever the kernel answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.isolation import PICK_TRIES, PortPicker, free_port


def kernel_answering(ports: list[int]) -> tuple[PortPicker, Iterator[int]]:
    answers = iter(ports)
    return PortPicker(lambda host: next(answers)), answers


def test_a_port_the_kernel_hands_out_again_is_asked_for_anew() -> None:
    picker, answers = kernel_answering([5001, 5001, 5001, 5002, 5001, 5003])
    assert [picker(), picker(), picker()] == [5001, 5002, 5003]
    assert list(answers) == []


def test_a_kernel_that_only_repeats_itself_is_a_clear_error() -> None:
    picker, _ = kernel_answering([5001] * (PICK_TRIES + 1))
    picker()
    with pytest.raises(RuntimeError, match=r"no free port on 127\.0\.0\.1"):
        picker()


def test_the_harness_picker_asks_the_kernel() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    assert all(1024 <= port < 65536 for port in ports)
