"""``app_home_opened``: someone opened the bot's Home tab; show them where their ideas stand."""

from __future__ import annotations

from typing import Any

from bot.service.app_home import AppHome
from bot.slack.listeners.payload import as_dict, slack_id


def parse_home_opened(event: dict[str, Any]) -> str | None:
    """The user who opened the Home tab (not the Messages tab), or None."""
    event = as_dict(event)
    if event.get("tab", "home") != "home":
        return None
    return slack_id(event.get("user"))


def register(app: Any, home: AppHome) -> None:
    """Registers the Home tab listener on *app*."""

    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any]) -> None:
        user = parse_home_opened(event)
        if user is not None:
            home.publish(user)
