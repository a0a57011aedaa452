"""The kernel driver: starting a real kernel copes with what other processes do to its ports."""

import socket

import pytest

import nbelastic.driver
from nbelastic.driver import Kernel


@pytest.mark.kernel
def test_a_kernel_port_taken_between_choosing_and_binding_is_chosen_again(monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    started = []

    class FirstTryOnATakenPort(nbelastic.driver.KernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            if not started:
                self.cache_ports = False  # keep the port this test chose
                self.shell_port = taken.getsockname()[1]
            started.append(self)

    monkeypatch.setattr(nbelastic.driver, "KernelManager", FirstTryOnATakenPort)
    try:
        with Kernel() as kernel:
            assert kernel.execute("print(6 * 7)").stdout.strip() == "42"
    finally:
        taken.close()
    assert len(started) == 2
