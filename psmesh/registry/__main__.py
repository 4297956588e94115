"""``python -m psmesh.registry``: the same as ``psmesh registry serve``."""

from __future__ import annotations

import logging

from psmesh.registry.cli import serve

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve.main(prog_name="python -m psmesh.registry")
