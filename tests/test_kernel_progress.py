"""Progress of a save or restore in a notebook: one display updated in place, never stderr."""

from __future__ import annotations

import time

import pytest

from nbelastic.driver import Kernel

# Each value takes 10 ms to pickle, so that a save of 300 runs for seconds and shows progress.
SLOW_VALUES = """
import time
class Slow:
    def __reduce__(self):
        time.sleep(0.01)
        return (Slow, ())
for i in range(300):
    globals()[f"v{i}"] = Slow()
"""


def iopub_of(kernel: Kernel, code: str) -> tuple[list[dict], float]:
    """Every iopub message that running ``code`` sent, as a front end receives them; seconds."""
    started = time.monotonic()
    msg_id = kernel.client.execute(code)
    messages = []
    while True:
        message = kernel.client.get_iopub_msg(timeout=300)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(message)
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            return messages, time.monotonic() - started


@pytest.mark.kernel
def test_a_long_save_shows_one_line_updated_in_place_and_no_stderr(tmp_path):
    with Kernel(cwd=tmp_path) as kernel:
        assert kernel.execute("%load_ext nbelastic").error is None
        assert kernel.execute(SLOW_VALUES).error is None
        messages, seconds = iopub_of(kernel, "%nbelastic save nb.ipynb --plan store-all")

    stderr = [m for m in messages if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"]
    assert stderr == []
    shown = [m for m in messages if m["msg_type"] == "display_data"]
    updates = [m for m in messages if m["msg_type"] == "update_display_data"]
    assert len(shown) == 1 and "nbelastic save: " in shown[0]["content"]["data"]["text/plain"]
    assert 1 <= len(updates) <= 10 * seconds + 2  # at most ten a second
    assert updates[-1]["content"]["data"]["text/plain"] == ""  # taken away at the end
    printed = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
    assert printed.count("\n") == 1 and printed.startswith("saved 303 variables")  # the summary


@pytest.mark.kernel
def test_the_cli_driving_a_kernel_still_reads_progress_lines_from_stderr(tmp_path):
    lines: list[str] = []
    with Kernel(cwd=tmp_path) as kernel:
        assert kernel.execute("%load_ext nbelastic").error is None
        assert kernel.execute(SLOW_VALUES).error is None
        arguments = {"notebook": str(tmp_path / "nb.ipynb"), "plan": "store-all"}
        kernel.call("save", arguments, on_stderr=lines.append)
    assert lines and all(line.startswith("nbelastic save: ") for line in lines)
