"""Create-screen fields for FakeJira: create metadata in both shapes, paged, and value checks.

``FakeJira(fields=[team_field()])`` adds a required "Team" select to every issue type's create
screen; ``GET issue/createmeta/{project}/issuetypes/{id}`` then lists the standard fields and it
(Cloud: ``{fields, startAt, maxResults, total}``, Data Center: ``{values, isLast, ...}``), the
older ``GET issue/createmeta?projectKeys=..&expand=projects.issuetypes.fields`` lists them as an
object by id (``legacy_createmeta=True`` makes the newer endpoints answer 404, as Data Center
before 8.4 does). ``POST issue`` answers 400 ``{"errors": {id: message}}`` for a value a field
does not take, and for any value listed in ``FakeJira.refused_values`` (an option disabled after
the bot read the metadata).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TEAM = "customfield_10010"
TEAM_VALUES = [("10100", "Platform"), ("10101", "Mobile"), ("10102", "Web")]


@dataclass
class FakeField:
    """One field of the create screen; *type* is ``option``, ``array:option``, ``user``,
    ``date``, ``number``, ``string``, ``textarea``, ``priority``, ``array:component``."""

    id: str
    name: str
    type: str
    required: bool = False
    allowed: list[tuple[str, str]] = field(default_factory=list)
    has_default: bool = False

    def meta(self) -> dict[str, Any]:
        kind, _, items = self.type.partition(":")
        schema: dict[str, Any] = {"type": kind}
        if items:
            schema["items"] = items
        if kind == "textarea":
            schema = {
                "type": "string",
                "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textarea",
            }
        elif self.id.startswith("customfield_"):
            schema["custom"] = f"com.atlassian.jira.plugin.system.customfieldtypes:{kind}"
            schema["customId"] = int(self.id.rsplit("_", 1)[-1])
        else:
            schema["system"] = self.id
        out: dict[str, Any] = {
            "fieldId": self.id,
            "key": self.id,
            "name": self.name,
            "required": self.required,
            "hasDefaultValue": self.has_default,
            "schema": schema,
            "operations": ["set"],
        }
        if self.allowed:
            key = "name" if kind in ("priority", "array") and items != "option" else "value"
            out["allowedValues"] = [{"id": i, key: n, "self": f"/x/{i}"} for i, n in self.allowed]
        return out

    def check(self, value: Any) -> str | None:
        """Jira's message for a value this field does not take, or None."""
        kind, _, items = self.type.partition(":")
        ids = {i for i, _ in self.allowed}
        names = {n.lower(): i for i, n in self.allowed}

        def one(v: Any) -> bool:
            if not isinstance(v, dict):
                return False
            if "id" in v:
                return str(v["id"]) in ids
            key = "value" if "value" in v else "name"
            return str(v.get(key, "")).lower() in names

        if kind in ("option", "priority") and self.allowed and not one(value):
            return f"Specify a valid value for {self.name}"
        many = kind == "array" and items in ("option", "component") and self.allowed
        if many and (not isinstance(value, list) or not all(one(v) for v in value)):
            return f"Specify a valid value for {self.name}"
        if kind == "number" and not isinstance(value, int | float):
            return f"Operation value must be a number for {self.name}"
        if kind == "date" and not (isinstance(value, str) and len(value) == 10):
            return f"Error parsing date string: {value}"
        return None


def team_field(required: bool = True, values: list[tuple[str, str]] | None = None) -> FakeField:
    """The custom "Team" select (customfield_10010): Platform, Mobile, Web."""
    return FakeField(TEAM, "Team", "option", required=required, allowed=values or TEAM_VALUES)


def standard_fields() -> list[FakeField]:
    """What every create screen has besides custom fields."""
    return [
        FakeField("summary", "Summary", "string", required=True),
        FakeField("issuetype", "Issue Type", "issuetype", required=True),
        FakeField("project", "Project", "project", required=True),
        FakeField("description", "Description", "string"),
        FakeField("reporter", "Reporter", "user", required=True, has_default=True),
        FakeField("labels", "Labels", "array:string"),
        FakeField(
            "priority",
            "Priority",
            "priority",
            has_default=True,
            allowed=[("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low")],
        ),
        FakeField("components", "Components", "array:component", allowed=[("10200", "API")]),
        FakeField("assignee", "Assignee", "user"),
    ]


def page(items: list[Any], q: dict[str, str], cap: int, cloud: bool, cloud_key: str) -> Any:
    """One page of *items* as Cloud or Data Center answers a createmeta listing."""
    start = int(q.get("startAt", 0))
    size = min(int(q.get("maxResults", 50)), cap)
    chunk = items[start : start + size]
    out: dict[str, Any] = {"startAt": start, "maxResults": size, "total": len(items)}
    if cloud:
        out[cloud_key] = chunk
    else:
        out.update(values=chunk, isLast=start + len(chunk) >= len(items))
    return out
