"""The timeline's words for how often a step's task was taken: resumes, takeovers, never retries.

A resume follows what the task awaited; a takeover follows a lost lease; the SDK's
retries happen inside one acquisition and no server sees them, so no acquisition is
ever called a retry. Where the server keeps no record (resonate-pg), the label says
only the count.
"""

from __future__ import annotations

from asyncrpc.dashboard.invocation_json import RETRIES_UNSEEN, label_attempts
from asyncrpc.protocol.records import AcquireCause, TaskAcquisition

START = 1_000_000


def taken(
    version: int, pid: str, cause: AcquireCause, previous: str | None = None
) -> TaskAcquisition:
    return TaskAcquisition(version, pid, START + version * 1_000, cause, previous)


def test_one_acquisition_needs_no_words() -> None:
    label = label_attempts(1, [taken(1, "a-1-aa", AcquireCause.FIRST)], START)
    assert label.summary == "" and label.marks == () and label.known == "all"
    assert label_attempts(1, None, START).summary == ""


def test_a_resume_after_awaiting_is_a_resume() -> None:
    record = [
        taken(1, "a-1-aa", AcquireCause.FIRST),
        taken(2, "a-1-aa", AcquireCause.AWAITED, "a-1-aa"),
    ]
    label = label_attempts(2, record, START)
    assert (label.summary, label.resumes, label.takeovers, label.moves) == (
        "resumed once",
        1,
        0,
        (),
    )
    assert "resumed on a-1-aa at +2.00s" in label.detail
    assert label.detail.endswith(RETRIES_UNSEEN)


def test_a_resume_on_another_replica_names_both() -> None:
    """The crash demo's case: the replica died while its step waited; a new one resumed it."""
    record = [
        taken(1, "c-1-aa", AcquireCause.FIRST),
        taken(2, "c-1-aa", AcquireCause.AWAITED, "c-1-aa"),
        taken(3, "c-1-bb", AcquireCause.AWAITED, "c-1-aa"),
    ]
    label = label_attempts(3, record, START)
    assert label.summary == "resumed 2 times · resumed on c-1-bb, not c-1-aa"
    assert label.moves == (("c-1-aa", "c-1-bb"),)
    assert [mark.version for mark in label.marks] == [2, 3]
    marks = label.to_json()["marks"]
    assert [mark["moved"] for mark in marks] == [False, True]


def test_a_lost_lease_is_a_takeover_by_the_replica_that_took_it() -> None:
    record = [
        taken(1, "b-1-aa", AcquireCause.FIRST),
        taken(2, "b-1-bb", AcquireCause.LEASE, "b-1-aa"),
        taken(3, "b-1-bb", AcquireCause.AWAITED, "b-1-bb"),
    ]
    label = label_attempts(3, record, START)
    assert label.summary == "resumed once · taken over by b-1-bb after b-1-aa's lease ran out"
    assert (label.takeovers, label.resumes) == (1, 1)
    assert "taken over by b-1-bb at +2.00s: b-1-aa's lease ran out" in label.detail
    twice = [*record, taken(4, "b-1-cc", AcquireCause.LEASE, "b-1-bb")]
    assert "taken over 2 times (last by b-1-cc)" in label_attempts(4, twice, START).summary


def test_a_release_and_an_unknown_reason_are_said_as_such() -> None:
    record = [
        taken(1, "b-1-aa", AcquireCause.FIRST),
        taken(2, "b-1-aa", AcquireCause.RELEASE, "b-1-aa"),
        taken(3, "b-1-bb", AcquireCause.UNKNOWN, "b-1-aa"),
    ]
    label = label_attempts(3, record, START)
    assert label.summary == (
        "run again once after a release · acquired once for no recorded reason"
    )


def test_without_a_record_only_the_count_is_told_honestly() -> None:
    """resonate-pg keeps only the task's version: no resume or takeover is claimed."""
    label = label_attempts(3, None, START)
    assert (label.summary, label.known, label.resumes, label.takeovers) == (
        "acquired 3 times",
        "none",
        0,
        0,
    )
    assert "look alike" in label.detail and RETRIES_UNSEEN in label.detail


def test_a_partial_record_says_how_much_it_covers() -> None:
    record = [taken(1, "a", AcquireCause.FIRST)] + [
        taken(v, "a", AcquireCause.AWAITED, "a") for v in range(6, 21)
    ]
    label = label_attempts(20, record, START)
    assert label.known == "part" and "of its 20 acquisitions" in label.detail


def test_no_label_ever_calls_an_acquisition_a_retry() -> None:
    cases = [label_attempts(n, None, START) for n in (1, 2, 5)] + [
        label_attempts(
            len(causes) + 1,
            [taken(1, "p", AcquireCause.FIRST)]
            + [taken(v + 2, "q", cause, "p") for v, cause in enumerate(causes)],
            START,
        )
        for causes in ([AcquireCause.LEASE], [AcquireCause.RELEASE], list(AcquireCause)[1:])
    ]
    for label in cases:
        assert "retr" not in label.summary.lower(), label.summary
