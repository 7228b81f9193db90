"""The lead agency's consolidated annual report: as issued, or a draft as it stands, DOCX or PDF."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from approvals.consolidated.files import DOCX_TYPE, PDF_TYPE
from service.api.errors import ONE
from service.api.schemas import ReportSignaturesRead, SignatureRead
from service.deps import App
from service.reports import annual_report_file, issued_signatures

router = APIRouter(tags=["reports"])

BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/reports/annual/{year}",
    response_class=Response,
    responses={
        **ONE,
        200: {
            "content": {DOCX_TYPE: BINARY, PDF_TYPE: BINARY},
            "description": "The report laid out under Decree 30/2020/NĐ-CP: as issued "
            "(numbered), else marked as a draft.",
        },
    },
)
async def annual_report(
    app: App,
    year: Annotated[int, Path(ge=2000, le=2100, description="The plan year.")],
    format: Annotated[Literal["docx", "pdf"], Query(description="docx or pdf.")] = "pdf",
) -> Response:
    """The year's consolidated report as it stands: every unit asked at the annual-report stage,
    whether and when it reported, what it sent (text, links, names of its files), the units that
    did not report, and the summary. Once the lead agency's director approved it (stage 8), the
    report as issued: numbered, the very file sent to the PPC; before that a draft without a
    number."""
    file = await annual_report_file(app, year, format)  # NotFound: 404
    return Response(file.data, media_type=file.media_type, headers={"Content-Disposition": file.disposition})


@router.get("/reports/annual/{year}/signatures", responses=ONE, response_model=ReportSignaturesRead)
async def annual_report_signatures(
    app: App, year: Annotated[int, Path(ge=2000, le=2100, description="The plan year.")]
) -> ReportSignaturesRead:
    """Each digital signature of the year's issued report, in the order they were made (the
    director's, then the agency's), checked with pyHanko against the configured trust roots:
    who signed and when, whether the file is intact since, whether the certificate chains to the
    roots and was valid at signing. 404 until the report is issued."""
    found = await issued_signatures(app, year)
    return ReportSignaturesRead(
        number=found.number,
        test_certificates=found.test_certificates,
        signatures=[SignatureRead.model_validate({**vars(c), "verdict": c.verdict.value}) for c in found.signatures],
    )
