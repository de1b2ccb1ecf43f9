"""Freeform review renderers the web inbox ships (Placet's plugins, as a fixed registry).

An agent asks for one with a freeform review, ``{"type": "freeform", "payload": {"plugin": <name>,
...data}}`` (the API copies the name to ``metadata.plugin``, where the inbox looks); the data fields
are described by the plugin's ``inputSchema``. Placet's MCP server turns each listed plugin into a
``send_<name>_message`` tool, so the schemas are written for an agent to read. The human's answer
is a freeform response: any JSON object.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sayso_api.schemas import Out


class PluginManifest(Out):
    name: str
    display_name: str
    description: str
    version: str
    author: str = "Sayso"
    icon: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=dict)
    permissions: dict[str, Any] = Field(default_factory=lambda: {"httpRequests": False})


_TITLE = {"type": "string", "maxLength": 200, "description": "Optional heading shown above the content"}

PLUGINS: tuple[PluginManifest, ...] = (
    PluginManifest(
        name="json",
        display_name="JSON",
        description=(
            "Shows any JSON value as a read-only, collapsible tree. The generic renderer: the human "
            "answers with a JSON object typed in the review's editor."
        ),
        version="1.0.0",
        icon="braces",
        input_schema={
            "type": "object",
            "properties": {"title": _TITLE, "data": {"description": "The JSON value to show"}},
            "required": ["data"],
        },
    ),
    PluginManifest(
        name="markdown",
        display_name="Markdown",
        description=(
            "Renders Markdown (headings, lists, emphasis, code, quotes, tables and http(s) links) "
            "with the inbox's escaping renderer: raw HTML is shown as text, never run."
        ),
        version="1.0.0",
        icon="file-text",
        input_schema={
            "type": "object",
            "properties": {
                "title": _TITLE,
                "markdown": {"type": "string", "description": "The Markdown text"},
            },
            "required": ["markdown"],
        },
    ),
    PluginManifest(
        name="table",
        display_name="Table",
        description=(
            "Shows rows as a table under a header row. Each row is either an array of cells in column "
            "order or an object keyed by column key; cells are shown as text."
        ),
        version="1.0.0",
        icon="table",
        input_schema={
            "type": "object",
            "properties": {
                "title": _TITLE,
                "columns": {
                    "type": "array",
                    "description": "Column keys, or {key, label} objects to show another header",
                    "items": {
                        "anyOf": [
                            {"type": "string"},
                            {
                                "type": "object",
                                "properties": {"key": {"type": "string"}, "label": {"type": "string"}},
                                "required": ["key"],
                            },
                        ]
                    },
                },
                "rows": {
                    "type": "array",
                    "items": {"anyOf": [{"type": "array"}, {"type": "object"}]},
                    "description": "One entry per row",
                },
            },
            "required": ["columns", "rows"],
        },
    ),
    PluginManifest(
        name="status-badge",
        display_name="Status Badge",
        description="Shows a coloured status badge with a label, optional details and an optional http(s) link.",
        version="1.0.0",
        icon="badge-check",
        input_schema={
            "type": "object",
            "properties": {
                "label": {"type": "string", "description": "Badge label text"},
                "variant": {
                    "type": "string",
                    "enum": ["success", "warning", "error", "info", "neutral"],
                    "description": "Colour of the badge",
                },
                "details": {"type": "string", "description": "Optional text shown below the badge"},
                "url": {"type": "string", "format": "uri", "description": "Optional http(s) link"},
            },
            "required": ["label", "variant"],
        },
    ),
)

_BY_NAME = {p.name: p for p in PLUGINS}


def find(name: str) -> PluginManifest | None:
    return _BY_NAME.get(name)
