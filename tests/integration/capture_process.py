"""Runs one CaptureSource as its own process, for crash tests: ``python -m tests.integration.capture_process CONFIG.json``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from streams.source import CaptureConfig, CaptureSource


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    raw = json.loads(Path(sys.argv[1]).read_text())
    raw["state_dir"] = Path(raw["state_dir"])
    raw["tables"] = tuple(raw["tables"])
    capture = CaptureSource(CaptureConfig(**raw))
    capture.install_signal_handlers()
    capture.run()


if __name__ == "__main__":
    main()
