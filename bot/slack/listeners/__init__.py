"""Thin Slack listeners: ack, build a domain object, one service call, render with a builder."""

from __future__ import annotations

from typing import Any

from bot.slack.listeners import actions, commands, messages, reactions, shortcuts
from bot.slack.listeners.common import Deps


def register_listeners(app: Any, deps: Deps) -> None:
    """Registers every listener on the Bolt *app*."""
    for module in (messages, reactions, actions, shortcuts, commands):
        module.register(app, deps)
