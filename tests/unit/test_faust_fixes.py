"""The premise of processors/faust_fixes.py holds for the installed faust-streaming, and install() applies it."""

from __future__ import annotations

import inspect

import faust
from faust.transport import consumer as faust_consumer

from processors import faust_fixes


def test_the_installed_faust_waits_per_record_as_the_fix_assumes_and_install_replaces_that_loop():
    original = faust_consumer.Consumer._drain_messages
    if original is faust_fixes._drain_messages:  # installed by another test's import of processors.app
        assert faust.__version__.startswith(faust_fixes.SUPPORTED)
        return
    source = inspect.getsource(original)
    assert "await self.wait_first(\n                                callback(message), self.suspend_flow.wait()" in source
    assert faust_fixes.install() is True
    assert faust_consumer.Consumer._drain_messages is faust_fixes._drain_messages


def test_the_conductor_lock_the_fix_checks_exists():
    from faust.transport.conductor import Conductor

    assert "_tp_to_callback_lock" in inspect.getsource(Conductor.__init__)
