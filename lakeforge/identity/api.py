"""Identity REST for the app: the SCIM directory and the token APIs behind one router."""

from __future__ import annotations

from fastapi import APIRouter

from lakeforge.identity import scim_api, tokens_api

router = APIRouter()
router.include_router(scim_api.router)
router.include_router(tokens_api.router)
