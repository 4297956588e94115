"""Click callbacks shared by the ``psmesh`` commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def checked(check: Callable[[str], str]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """An option callback that runs ``check`` (psmesh.config's ``check_*``) on a given value: its ValueError becomes
    a usage error naming the option; an option left unset (None) passes."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc

    return callback
