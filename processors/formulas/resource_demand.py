"""Resource-demand state of an opportunity line (DOMAIN.md section 3).

'soft' while the opportunity is open with probability ≥ 50, 'hard' once it is
closed_won, 'cancelled' when it is lost, deleted or its probability falls
below 50 after demand existed; None while there never was demand. A state is
emitted only when it differs from the previous one.
"""

from __future__ import annotations

from typing import Literal

from .rows import CLOSED_WON, Opportunity
from .skill_week import DEMAND_PROBABILITY_FLOOR

DemandState = Literal["soft", "hard", "cancelled"]


def resource_demand_state(o: Opportunity | None, previous: DemandState | None = None) -> DemandState | None:
    """The line's state given its opportunity (None when deleted) and its previous state.

    'cancelled' needs something to cancel: without a previous 'soft' or 'hard'
    (or 'cancelled') state, a lost, deleted or low-probability opportunity has
    no demand (None).
    """
    if o is not None and o.stage == CLOSED_WON:
        return "hard"
    if o is not None and o.is_open and o.probability >= DEMAND_PROBABILITY_FLOOR:
        return "soft"
    return "cancelled" if previous is not None else None


def demand_change(previous: DemandState | None, current: DemandState | None) -> DemandState | None:
    """The state to emit: ``current`` when it differs from ``previous``, else None (nothing to emit)."""
    return current if current != previous else None
