"""`/bao-cao/{token}`: an issued report too large to attach, downloaded by one of its recipient
agencies through the link its email carries (`approvals.tokens.report_link_token`). The link
names the cycle and the agency and expires; a GET changes nothing. A dead or forged link gets
the one invalid-link page, and counts toward the failed-link limit like every link."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from approvals.errors import InvalidLink
from approvals.report_models import IssuedReport
from approvals.tokens import read_report_link
from service.deps import App
from service.reports import FORMATS, issued_file

router = APIRouter(include_in_schema=False)


@router.get("/bao-cao/{token}")
async def issued_report_download(request: Request, token: str, app: App) -> Response:
    """The issued report's signed PDF (the original), or with `?format=docx` its editable copy."""
    fmt = request.query_params.get("format", "pdf")
    found = read_report_link(app.settings.link_secret_bytes(), token, now=time.time())
    if found is None or fmt not in FORMATS:
        raise InvalidLink("an unknown, forged or expired report link")
    cycle_id, agency_id = found
    async with app.db.reads() as session:
        issued = (
            await session.execute(select(IssuedReport).where(IssuedReport.cycle_id == uuid.UUID(cycle_id)))
        ).scalar()
    if issued is None or agency_id not in {r["agency"] for r in issued.recipients}:
        raise InvalidLink("a report link to a report not issued, or not to this agency")
    file = issued_file(issued, fmt)
    return Response(file.data, media_type=file.media_type, headers={"Content-Disposition": file.disposition})
