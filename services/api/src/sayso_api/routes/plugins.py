"""The freeform renderers the inbox ships, listed as Placet lists its plugins."""

from __future__ import annotations

from fastapi import APIRouter

from sayso_api import plugins
from sayso_api.deps import CurrentPrincipal
from sayso_api.plugins import PluginManifest
from sayso_common.errors import NotFoundError

router = APIRouter(prefix="/api/v1/plugins", tags=["plugins"])


@router.get("", response_model=list[PluginManifest])
async def list_plugins(_: CurrentPrincipal) -> list[PluginManifest]:
    """Every renderer a freeform review can name in ``payload.plugin``: a bare array, as Placet."""
    return list(plugins.PLUGINS)


@router.get("/{name}", response_model=PluginManifest)
async def get_plugin(name: str, _: CurrentPrincipal) -> PluginManifest:
    plugin = plugins.find(name)
    if plugin is None:
        raise NotFoundError(f'plugin "{name[:100]}"')
    return plugin
