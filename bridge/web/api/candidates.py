"""/candidates/{address}: erase one candidate (DELETE) or export their mail as a zip (GET .../export), for an
applicant tracking system that must honour erasure and access requests. Admin tokens only: both reach
every employee's mail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session

from bridge.accounts.api_tokens import Principal
from bridge.errors import InputError
from bridge.privacy import erasure
from bridge.privacy.imap_copies import ImapCopiesFailed
from bridge.privacy.selection import normalized
from bridge.web.api.auth import principal
from bridge.web.api.errors import ApiForbidden, BadField
from bridge.web.api.schemas import ErasureOut, Problem
from bridge.web.deps import db
from bridge.web.export_download import zip_download

router = APIRouter(tags=["candidates"])

ERRORS = {401: {"model": Problem, "description": "no valid bearer token"},
          403: {"model": Problem, "description": "not an admin token"},
          422: {"description": "the address is not one plain address, name@domain"}}
IMAP_FAILED = {502: {"model": Problem, "description": "with from_imap: an IMAP server failed; nothing was erased "
                                                      "(the message names the server; try again)"}}
Address = Annotated[str, Path(max_length=320, description="the candidate's address, name@domain")]


def _admin(p: Principal) -> None:
    if not p.admin:
        raise ApiForbidden("only an admin token may erase or export a candidate")


def _address(address: str) -> str:
    try:
        return normalized(address)
    except InputError as err:
        raise BadField(("path", "address"), str(err)) from None


@router.delete("/candidates/{address}", response_model=ErasureOut, responses={**ERRORS, **IMAP_FAILED},
               summary="Erase everything stored of a candidate (and their other confirmed addresses); a receipt "
                       "stays and a candidate.erased webhook event tells the ATS")
def erase(address: Address,
          dry_run: Annotated[bool, Query(description="count what would be erased; change nothing")] = False,
          from_imap: Annotated[bool, Query(description="first delete the copies in IMAP folders (Sent, "
                                                       "recruiters' INBOXes, poll folders)")] = False,
          p: Principal = Depends(principal), session: Session = Depends(db)) -> Response | dict[str, object]:
    _admin(p)
    wanted = _address(address)
    try:
        return erasure.erase(session, wanted, dry_run=dry_run, from_imap=from_imap).as_json()
    except ImapCopiesFailed as err:
        session.rollback()
        return JSONResponse({"detail": str(err)}, status_code=502)


@router.get("/candidates/{address}/export", response_class=Response, responses={
    **ERRORS, 200: {"content": {"application/zip": {}}, "description": "messages.mbox and candidate.json"}},
    summary="A zip of a candidate's mail (mbox) and records (JSON), for an access request")
def export_zip(address: Address, p: Principal = Depends(principal), session: Session = Depends(db)) -> Response:
    _admin(p)
    return zip_download(session, _address(address))
