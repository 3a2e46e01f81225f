"""Commands added to the `medcolor` app by register(app). (Filled in by its issue.)"""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the medcolor app."""
    return None
