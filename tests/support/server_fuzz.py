"""Malformed and random protocol envelopes, for the fuzz tests of the engine and the server.

:func:`envelopes` is a Hypothesis strategy of envelopes of every kind with
fields of the right and the wrong types (and some garbage bytes);
:func:`seed` makes the earlier work they must not disturb; ``BOUNDED`` are
inputs too deep or too long to take.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st

from asyncrpc.server.engine import Engine
from asyncrpc.server.protocol import FIELDS
from tests.support.server import FAR

KEPT = [f"keep-{i}" for i in range(3)]

ids = st.text(alphabet="abcd:.-01", min_size=1, max_size=4)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), ids
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["id", "data", "kind", "awaited", "x"]), inner, max_size=3),
    ),
    max_leaves=8,
)
#: Integers as resonate.sql casts text to them (hex, underscores, blanks) and as it does not
#: (Unicode digits, fractions), and past a bigint.
BIGINT_MAX = 2**63 - 1
integer_texts = st.sampled_from(
    ["0x10", "1_000", " 7 ", "+3", "-0b1", "1__0", "\u00b2", "\uff15", "1.0", "9" * 30]
)
edge_integers = st.sampled_from([BIGINT_MAX, BIGINT_MAX - FAR, -(2**63), 2**63])
#: Tag values of every JSON type: resonate.sql reads a tag as text (``true`` is "true").
tag_values = st.sampled_from(["poll://any@g", "true", "x", "123", True, False, None, 5, {"a": 1}])
#: Cron texts resonate.sql reads otherwise than Python would.
crons = st.sampled_from(
    [
        "* * * * *",
        "bad",
        "\u00b2 * * * *",
        "+5 * * * *",
        "\t* * * * *",
        "* * * * *\n",
        "\uff15 * * * *",
        "1-2-3 * * * *",
        "*/0 * * * *",
        "0x5 * * * *",
        "*\u3000* * * *",
        "9" * 30 + " * * * *",
        "*/99999999999 * * * *",
    ]
)
#: A param or value: headers of any JSON type (null too), data of any JSON type.
values = st.fixed_dictionaries(
    {},
    optional={
        "headers": st.sampled_from([None, {}, {"h": "v"}, "x", [1]]),
        "data": st.one_of(st.just("MQ=="), json_values),
    },
)
field_names = st.sampled_from(
    sorted({name for fields in FIELDS.values() for name in fields} | {"awaiter", "value", "junk"})
)
plausible: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(["a", "b", "a:1", "a:1.1", "b:d1", "c"]) | ids,
    "awaited": st.sampled_from(["a", "b", "a:1", "a:1.1", "c"]) | ids,
    "pid": ids,
    "address": st.sampled_from(["poll://any@g", "poll://uni@g/p", "bogus", ""]),
    "state": st.sampled_from(["resolved", "rejected", "pending", "nope", "rejected_canceled"]),
    "timeoutAt": st.one_of(st.integers(0, FAR), st.just(-1), integer_texts, edge_integers),
    "ttl": st.one_of(st.integers(-5, 10**6), integer_texts, edge_integers),
    "cron": crons,
    "param": values,
    "value": values,
    "promiseParam": values,
    "promiseId": ids,
    "limit": st.integers(0, 2000),
    "cursor": ids,
    "idPrefix": ids,
    "promiseTimeout": st.integers(-1, 10**6),
    "action": st.fixed_dictionaries({"kind": st.sampled_from(["promise.create", "x"])}),
    "actions": st.lists(st.fixed_dictionaries({"data": st.fixed_dictionaries({"awaited": ids})})),
    "tasks": st.lists(st.fixed_dictionaries({"id": ids, "version": st.integers(0, 3)})),
    "version": st.one_of(st.integers(-2, 5), integer_texts),
    "promiseTags": st.dictionaries(
        st.sampled_from(["resonate:target", "resonate:delay", "k"]), tag_values, max_size=2
    ),
    "tags": st.dictionaries(
        st.sampled_from(
            [
                "resonate:target",
                "resonate:timer",
                "resonate:external",
                "resonate:branch",
                "resonate:delay",
            ]
        ),
        tag_values,
        max_size=3,
    ),
}


#: True one time in twenty (sampled_from shrinks toward its first element, False).
rarely = st.sampled_from([False] * 19 + [True])


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """Mostly well-formed requests of every kind (so state changes), some wrong, some garbage."""
    kind = draw(st.sampled_from([*sorted(FIELDS), "promise.explode", ""]))
    data: dict[str, Any] = {}
    for name in FIELDS.get(kind, {}):
        choice = draw(st.sampled_from(["plausible"] * 8 + ["random", "missing"]))
        if choice == "plausible":
            data[name] = draw(plausible.get(name, json_values))
        elif choice == "random":
            data[name] = draw(json_values)
    if draw(rarely):
        data[draw(field_names)] = draw(json_values)
    if kind in ("task.create", "task.fence", "task.fulfill") and draw(st.integers(0, 4)):
        inner = {
            "id": draw(ids),
            "timeoutAt": draw(plausible["timeoutAt"]),
            "state": draw(plausible["state"]),
            "tags": draw(plausible["tags"]),
            "param": draw(values),
            "value": draw(values),
        }
        action_kind = draw(st.sampled_from(["promise.create", "promise.settle", "x"]))
        data["action"] = {"kind": action_kind, "head": {}, "data": inner}
    if kind == "task.suspend" and draw(st.integers(0, 4)):
        awaited = draw(st.lists(ids, max_size=3))
        data["actions"] = [
            {"kind": "promise.register_callback", "head": {}, "data": {"awaited": a}}
            for a in awaited
        ]
    if kind == "task.heartbeat" and draw(st.booleans()):
        data["tasks"] = [{"id": draw(ids), "version": draw(plausible["version"])}]
    if kind in ("task.acquire", "task.create") and draw(rarely):
        data["ttl"] = BIGINT_MAX
    envelope: Any = {"kind": kind, "head": {"corrId": "f"}, "data": data}
    if draw(rarely):
        envelope = draw(json_values)
    body = msgspec.json.encode(envelope)
    if draw(rarely):
        body = body[: draw(st.integers(0, len(body)))]
    return body


@st.composite
def edge_envelopes(draw: st.DrawFn) -> bytes:
    """Well-formed requests whose one odd field is a shape a differential run found.

    Tags of every JSON type, null or odd headers, object data, a ttl past a bigint,
    integers written as Postgres reads them (or not), cron text Python splits otherwise.
    """
    kind = draw(
        st.sampled_from(
            ["promise.create", "promise.settle", "task.create", "task.acquire", "schedule.create"]
        )
    )
    promise_id = draw(st.sampled_from(["e1", "e2", "e3"]))
    timeout = draw(st.one_of(st.just(FAR), st.just(1), integer_texts, edge_integers))
    tags = draw(plausible["tags"])
    if kind == "promise.create":
        data: dict[str, Any] = {
            "id": promise_id,
            "timeoutAt": timeout,
            "param": draw(values),
            "tags": tags,
        }
    elif kind == "promise.settle":
        data = {"id": promise_id, "state": "resolved", "value": draw(values)}
    elif kind == "task.create":
        action = {"id": promise_id, "timeoutAt": timeout, "param": draw(values), "tags": tags}
        ttl = draw(st.one_of(st.just(1000), integer_texts, edge_integers))
        data = {"pid": "p", "ttl": ttl, "action": {"kind": "promise.create", "data": action}}
    elif kind == "task.acquire":
        ttl = draw(st.one_of(st.just(1000), integer_texts, edge_integers))
        data = {"id": promise_id, "version": draw(st.integers(0, 2)), "pid": "p", "ttl": ttl}
    else:
        data = {
            "id": f"s{draw(st.integers(0, 10**9))}",  # new, so that its cron is read
            "cron": draw(crons),
            "promiseId": "{{.id}}",
            "promiseTimeout": draw(st.one_of(st.just(1000), integer_texts)),
            "promiseParam": draw(values),
            "promiseTags": draw(plausible["promiseTags"]),
        }
    return msgspec.json.encode({"kind": kind, "head": {"corrId": "e"}, "data": data})


def seed(post) -> dict[str, Any]:
    """Earlier invocations: a settled one and a pending one with a task."""
    records = {}
    for i, promise_id in enumerate(KEPT):
        tags = {"resonate:target": "poll://any@kept"} if i == 1 else {}
        post(
            {
                "kind": "promise.create",
                "head": {},
                "data": {"id": promise_id, "timeoutAt": FAR, "tags": tags},
            }
        )
    post(
        {
            "kind": "promise.settle",
            "head": {},
            "data": {"id": KEPT[0], "state": "resolved", "value": {"data": "Mw=="}},
        }
    )
    for promise_id in KEPT:
        records[promise_id] = post({"kind": "promise.get", "head": {}, "data": {"id": promise_id}})[
            "data"
        ]
    return records


def touches_kept(body: bytes) -> bool:
    return b"keep-" in body


DEEP = b"[" * 10240
DEEP_PARAM = (
    b'{"kind":"promise.create","head":{"corrId":"d"},"data":{"id":"deep","timeoutAt":1,"param":'
    + b"[" * 5000
    + b"]" * 5000
    + b"}}"
)


def create(promise_id: str) -> bytes:
    data = {"id": promise_id, "timeoutAt": FAR}
    return msgspec.json.encode({"kind": "promise.create", "head": {"corrId": "c"}, "data": data})


BOUNDED = [
    DEEP,
    b"{" * 10240,
    DEEP_PARAM,
    create("x" * 100_000),
    create("a\nERROR forged"),
    create("\x1b[31mred"),
    msgspec.json.encode(
        {"kind": "task.acquire", "head": {}, "data": {"id": "t", "version": 1, "pid": "p" * 5000}}
    ),
    msgspec.json.encode(
        {"kind": "task.suspend", "head": {}, "data": {"actions": [{"data": {"awaited": [[1]]}}]}}
    ),
]


# -- shapes that once got a 500 ----------------------------------------------------------


def nested(depth: int) -> list[Any]:
    """An array ``depth`` levels deep."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


#: More than MAX_DEPTH brackets: many side by side, or nested around the limit.
brackets = st.one_of(
    st.integers(33, 80).map(lambda count: [[] for _ in range(count)]),
    st.integers(30, 40).map(nested),
    st.integers(30, 40).map(lambda depth: {"k": nested(depth)}),
)
#: ``data`` that is no object: the depth check must not walk into it.
scalar_data = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=5),
)


@st.composite
def scalar_data_with_brackets(draw: st.DrawFn) -> bytes:
    """An envelope whose ``data`` is a scalar and whose brackets are elsewhere."""
    envelope: dict[str, Any] = {
        "kind": draw(st.sampled_from([*sorted(FIELDS), "promise.explode"])),
        "head": {"corrId": "b"},
        "data": draw(scalar_data),
    }
    shape = draw(brackets)
    where = draw(st.sampled_from(["head", "extra"]))
    if where == "head":
        envelope["head"]["x"] = shape
    else:
        envelope["extra"] = shape
    return msgspec.json.encode(envelope)


#: Any text as a kind, from one character to three megabytes (echoed in the error's reason);
#: a long one of a character JSON need not escape, so its body stays within MAX_BODY_BYTES.
#: Text is what UTF-8 can carry: a lone surrogate (category Cs) has no encoding to send.
kinds = st.one_of(
    st.text(min_size=1, max_size=40),
    st.just("k" * 3 * 1024 * 1024),
    st.tuples(
        st.sampled_from([300, 5_000, 1_000_000]),
        st.characters(min_codepoint=0x20, exclude_characters='"\\', exclude_categories=("Cs",)),
    ).map(lambda size_char: size_char[1] * size_char[0]),
)


def unknown_kind(kind: str) -> bytes:
    return msgspec.json.encode({"kind": kind, "head": {"corrId": "k"}, "data": {}})


def records(engine: Engine) -> list[Any]:
    """Everything the engine holds, in an order that compares: what a restart must rebuild."""
    state = engine.state
    return [
        sorted((p.id, p.to_json()) for p in state.promises.values()),
        [(s.promise.id, s.promise.to_json(), s.task_version) for s in state.history.everything()],
        sorted((t.id, t.to_json(), sorted(t.resumes), t.timeout_at) for t in state.tasks.values()),
        sorted((s.id, s.to_json()) for s in state.schedules.values()),
        sorted((key, sorted(values)) for key, values in state.callbacks.items() if values),
        sorted((key, sorted(values)) for key, values in state.listeners.items() if values),
        sorted(state.dispatched),
        state.next_due(),
    ]
