"""Links between people at the OpenID provider and users (``/api/users/{name}/sso``): admins link and unlink
(audited ``oidc.link`` / ``oidc.unlink``), a user sees their own. The same rules as ``metrosight sso``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from metrosight.api.deps import Admin, AnyUser, services
from metrosight.policy.rules import PolicyError

router = APIRouter(tags=["users"])


class SsoLinkCreate(BaseModel):
    """A link: the provider's subject, or (before the person's first sign-in) an address the provider verifies."""

    model_config = ConfigDict(extra="forbid")
    subject: str | None = Field(None, min_length=1, max_length=255, description="the ID token's sub")
    email: str | None = Field(
        None, min_length=3, max_length=320, description="linked at the first sign-in with it, verified"
    )
    issuer: str | None = Field(None, min_length=1, max_length=512, description="default: auth.oidc.issuer")


class SsoLinkPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    issuer: str
    subject: str | None
    email: str | None = Field(description="an address waiting for its first verified sign-in")
    user: str
    provisioned: bool = Field(description="made by the person's first sign-in (not by an admin)")
    created_at: datetime
    created_by: str
    last_login_at: datetime | None


def _issuer(request: Request, given: str | None) -> str:
    if given:
        return given
    oidc = services(request).services.settings.auth.oidc
    if oidc is None:
        raise PolicyError("single sign-on is not configured (auth.oidc): name the issuer")
    return oidc.issuer


@router.get("/api/users/{name}/sso", response_model=list[SsoLinkPublic])
def list_links(name: str, actor: AnyUser, request: Request) -> list[SsoLinkPublic]:
    """The provider identities ``name`` acts through (yours, or anyone's for an admin)."""
    rows = services(request).services.store.identities.of_user(name, actor)
    return [SsoLinkPublic.model_validate(r) for r in rows]


@router.post("/api/users/{name}/sso", response_model=SsoLinkPublic, status_code=201, responses={409: {}})
def link(name: str, body: SsoLinkCreate, actor: Admin, request: Request) -> SsoLinkPublic:
    """Link a provider identity to the existing user ``name`` (admin; audited): one person from then on. A subject
    that had a user of its own moves here and that user is disabled."""
    store = services(request).services.store
    info = store.identities.link(name, _issuer(request, body.issuer), actor, subject=body.subject, email=body.email)
    return SsoLinkPublic.model_validate(info)


@router.delete("/api/users/{name}/sso", status_code=204, response_class=Response, responses={404: {}})
def unlink(
    name: str,
    actor: Admin,
    request: Request,
    subject: Annotated[str | None, Query(max_length=255)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    issuer: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Remove a link (admin; audited): the subject's next sign-in gets a user of its own."""
    if (subject is None) == (email is None):
        raise PolicyError("give subject or email (one of them)")
    services(request).services.store.identities.unlink(
        name, _issuer(request, issuer), actor, subject=subject, email=email
    )
    return Response(status_code=204)
