"""The demo firm: a deterministic simulator of a mid-market IT consulting firm.

It writes into the four source databases (crm, psa, timeexp, erp) the way the
firm's people would; the mesh captures those writes by CDC. See docs/firm.md.
"""

from psmesh.firm.params import FirmParams, preset
from psmesh.firm.simulator import run

__all__ = ["FirmParams", "preset", "run"]
