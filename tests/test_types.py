"""Every type of tests/type_cases.py does what docs/support-matrix.md says it does.

In-process checks (fast): the in-place change is detected, the size estimate is within 2x of the
bytes stored, the value is stored with the promised codec or, when it cannot be stored, marked
for replay. Kernel checks: all cases together go through a store-all and a recompute-all round
trip between two real kernels, and every variable comes back verified.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from type_cases import CASES, TypeCase, available

from nbelastic.errors import UnserializableError
from nbelastic.objects import profile
from nbelastic.store import encode_group

MATRIX = Path(__file__).resolve().parent.parent / "docs" / "support-matrix.md"
SLACK = 512  # bytes: fixed overheads dominate tiny values, so "2x" gets this much leeway


def cases(predicate=lambda case: True) -> list:
    return [
        pytest.param(
            case,
            id=case.slug,
            marks=pytest.mark.skipif(
                not available(case), reason=f"{case.requires} is not installed"
            ),
        )
        for case in CASES
        if predicate(case)
    ]


def build(case: TypeCase, directory: Path) -> tuple[dict, object]:
    namespace = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        exec(case.code(case.setup), namespace)
    finally:
        os.chdir(cwd)
    return namespace, namespace[f"v_{case.slug}"]


@pytest.mark.parametrize("case", cases(lambda c: c.mutate is not None))
def test_in_place_change_is_detected(case, tmp_path):
    namespace, value = build(case, tmp_path)
    before = profile(value)
    exec(case.code(case.mutate), namespace)
    after = profile(value)
    assert after.hash is None or after.hash != before.hash


@pytest.mark.parametrize("case", cases())
def test_unchanged_value_hashes_the_same(case, tmp_path):
    _, value = build(case, tmp_path)
    assert profile(value).hash == profile(value).hash


@pytest.mark.parametrize("case", cases(lambda c: c.fate == "store"))
def test_stored_with_the_promised_codec_and_size_estimate(case, tmp_path):
    _, value = build(case, tmp_path)
    estimate = profile(value)
    assert estimate.unstorable == ""
    codec, payload = encode_group({"VALUE": value})
    assert codec == case.codec
    assert len(payload) / 2 - SLACK <= estimate.size <= len(payload) * 2 + SLACK


@pytest.mark.parametrize("case", cases(lambda c: c.fate == "replay"))
def test_unstorable_value_is_marked_for_replay(case, tmp_path):
    _, value = build(case, tmp_path)
    if profile(value).unstorable:
        return
    with pytest.raises(UnserializableError):
        encode_group({"VALUE": value})


def render_matrix() -> str:
    """docs/support-matrix.md, from the case table (every row is checked by this file)."""
    lines = [
        "# Supported types",
        "",
        "Generated from `tests/type_cases.py`; every row is checked by `tests/test_types.py`",
        "(in-place change detected, size estimate within 2x of the stored bytes, round trip",
        "through two real kernels with the store-all and the recompute-all plan). Regenerate with",
        "`NBELASTIC_WRITE_DOCS=1 python -m pytest tests/test_types.py -k matrix`.",
        "",
        "| type | in-place change detected | saved as | needs | notes |",
        "|---|---|---|---|---|",
    ]
    for case in CASES:
        detected = "yes" if case.mutate else "immutable"
        saved = f"stored ({case.codec})" if case.fate == "store" else "replayed"
        lines.append(
            f"| {case.label} | {detected} | {saved} | {case.requires or ''} | {case.note} |"
        )
    return "\n".join(lines) + "\n"


def test_support_matrix_is_current():
    if os.environ.get("NBELASTIC_WRITE_DOCS"):
        MATRIX.write_text(render_matrix())
    assert MATRIX.read_text() == render_matrix(), "regenerate docs/support-matrix.md"


def _round_trip_cells() -> list[str]:
    cells = []
    for case in CASES:
        if available(case):
            cells.append(case.code(case.setup))
            if case.mutate:
                cells.append(case.code(case.mutate))
    return cells


@pytest.mark.kernel
@pytest.mark.parametrize("plan", ["store-all", "recompute-all"])
def test_every_type_survives_a_round_trip(roundtrip, plan):
    rt = roundtrip(_round_trip_cells(), plan=plan)
    assert rt.restore["ok"], rt.restore
    assert not rt.restore["lost"]
    assert rt.after == rt.before
    if plan == "store-all":
        for case in CASES:
            if available(case):
                fate = "stored" if case.fate == "store" else "replayed"
                assert f"v_{case.slug}" in rt.save[fate], case.label
