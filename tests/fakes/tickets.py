"""Four small Jira tickets shared by the index adapter tests (local and Pinecone)."""

from __future__ import annotations

from bot.domain.models import Ticket

TICKETS = [
    Ticket(
        key="APP-1",
        title="Login page crashes on Safari",
        description="Opening the login page in Safari 17 makes the browser tab crash.",
        type="Bug",
        status="Open",
        url="https://jira.example/browse/APP-1",
    ),
    Ticket(
        key="APP-2",
        title="Dark mode for the dashboard",
        description="Users would like a dark theme for the analytics dashboard at night.",
        type="Story",
    ),
    Ticket(
        key="APP-3",
        title="Export reports as CSV",
        description="Allow exporting any report table to a CSV file for spreadsheets.",
    ),
    Ticket(
        key="APP-4",
        title="Slow search on the admin page",
        description="Searching users in the admin page takes more than ten seconds.",
        type="Bug",
    ),
]
