"""The submission link: the acting agency submits a step (a first submission), or sends it again
after a request for changes. GET shows the step (and the reviewers' comments) and changes
nothing; the form's POST fills the step and asks its approvers, or opens the next round."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from approvals import consolidated
from approvals.clock.deadlines import clock_of
from approvals.consolidated.files import report_files
from approvals.db import utcnow
from approvals.errors import InvalidLink, Refused
from approvals.i18n import catalogue, local_time
from approvals.plan.stages import StageKind
from approvals.routing import steps, submitting
from approvals.routing.files import MAX_FILES, FileRefused, UploadedFile, check_files
from approvals.statuses import LinkKind
from approvals.wording.presentation import official_name, shown_context, step_context
from service.deps import App
from service.errors import invalid_link_page
from service.limits import web_limits
from service.links import (
    MAX_FORM_FIELDS,
    clean_comment,
    form_field,
    problem_url,
    shown_file,
)
from service.reports import FORMATS, annual_report_file, draft_document
from service.web import MESSAGES, known_language, refuse_cross_site, render

log = logging.getLogger("kehoach.submissions")
router = APIRouter()


async def _page(
    request: Request,
    app: App,
    token: str,
    language: str | None,
    *,
    status_code: int = 200,
    error: str = "",
    text: str = "",
    typed: dict[str, str] | None = None,
):
    async with app.db.reads() as session:
        try:
            view = await submitting.view_submission(session, token, now=utcnow())
        except InvalidLink:
            return invalid_link_page(request, language or app.settings.default_language)
    official = app.plan.official(view.link.official_id)
    language = language or (official.language.value if official else app.settings.default_language)
    comments = [
        {
            "name": official_name(app.plan, d.official_id),
            "comment": d.comment,
            "at": local_time(d.decided_at, app.plan.tz, language),
        }
        for d in view.comments
        if d.comment
    ]
    stage = steps.stage_of(app.plan, view.cycle.kind, view.request.stage)
    compiled = None
    if stage.kind is StageKind.consolidation:
        async with app.db.reads() as session:
            report = await consolidated.gather(session, app.plan, int(view.cycle.period), now=utcnow())
        compiled = _compiled(report, language, app.plan.tz)
        if not (text or (view.request.data or {}).get("text")):
            text = consolidated.default_summary(report)
    previous = (view.request.data or {}).get("fields", {})
    named = [
        {
            "id": spec.id,
            "name": spec.name.get(language),
            "required": spec.required,
            "value": (typed or {}).get(spec.id, previous.get(spec.id, "")),
        }
        for spec in app.plan.fields_of(view.cycle.kind, stage)
    ]
    return render(
        request,
        "resubmit.html",
        language,
        status_code=status_code,
        comments=comments,
        first=view.link.kind == LinkKind.first.value,
        compiled=compiled,
        named=named,
        problem_url=problem_url(app, view.link.official_id),
        shown=shown_context(app.plan, view.request, view.cycle, language=language, base=f"{token}/shown"),
        needs_amount=stage.kind.value == "budget",
        max_files=MAX_FILES,
        max_kb=web_limits(request).max_attachment_bytes // 1024,
        official_name=official.name if official else view.link.official_id,
        error=error,
        text=text,
        previous_text=(view.request.data or {}).get("text", ""),
        **step_context(app.plan, view.request, view.cycle, language=language),
    )


def _compiled(report: consolidated.AnnualReport, language: str, tz) -> dict:
    """What the consolidation form shows of the draft: every unit asked, its status and date."""
    return {
        "reported": len(report.reported),
        "total": len(report.units),
        "missing": [u.name for u in report.missing],
        "units": [
            {
                "name": u.name,
                "status": u.status,
                "reported": u.reported,
                "at": u.submitted_at.astimezone(tz).strftime("%d/%m/%Y") if u.submitted_at else "",
            }
            for u in report.units
        ],
    }


async def _draft(app: App, token: str, summary: str) -> tuple[dict, list[tuple[str, str, bytes]]]:
    """The consolidated report as the coordinator submits it: the units' reports as they stand
    now (kept with the step, so the director approves and the PPC receives exactly this) and the
    draft DOCX and PDF, without a number until it is approved."""
    now = utcnow()
    async with app.db.reads() as session:
        view = await submitting.view_submission(session, token, now=now)
        year = int(view.cycle.period)
        report = await consolidated.gather(session, app.plan, year, now=now)
        clock = clock_of(app.plan, view.cycle)
    draft = draft_document(app, report, now=now, clock=clock, summary=summary)
    files = await asyncio.to_thread(report_files, draft, year=year)
    return consolidated.snapshot(report), files


async def _stage(app: App, token: str):
    """The kind and named fields of the stage a live form link submits (None for a dead link)."""
    async with app.db.reads() as session:
        try:
            view = await submitting.view_submission(session, token, now=utcnow())
        except InvalidLink:
            return None
    stage = steps.stage_of(app.plan, view.cycle.kind, view.request.stage)
    return stage.kind, app.plan.fields_of(view.cycle.kind, stage)


@router.api_route("/s/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def show(request: Request, token: str, app: App):
    return await _page(request, app, token, known_language(request.query_params.get("lang")))


@router.api_route("/s/{token}/draft.{fmt}", methods=["GET", "HEAD"], include_in_schema=False)
async def draft(request: Request, token: str, fmt: str, app: App):
    """The consolidated report's draft as it stands, for the coordinator holding the form's live
    link (DOCX or PDF, without a number). Changes nothing."""
    language = known_language(request.query_params.get("lang")) or app.settings.default_language
    async with app.db.reads() as session:
        try:
            view = await submitting.view_submission(session, token, now=utcnow())
        except InvalidLink:
            return invalid_link_page(request, language)
    stage = steps.stage_of(app.plan, view.cycle.kind, view.request.stage)
    if stage.kind is not StageKind.consolidation or fmt not in FORMATS:
        return invalid_link_page(request, language)
    file = await annual_report_file(app, int(view.cycle.period), fmt, draft=True)
    return Response(
        file.data,
        media_type=file.media_type,
        headers={
            "Content-Disposition": file.disposition,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.api_route("/s/{token}/shown/{file_id}", methods=["GET", "HEAD"], include_in_schema=False)
async def download_shown(request: Request, token: str, file_id: str, app: App):
    """A file an earlier stage received, from the form link (an outlet's editor opens the
    orientation's files). Changes nothing."""
    return await shown_file(
        request, app, file_id, lambda session: submitting.view_submission(session, token, now=utcnow())
    )


@router.post("/s/{token}", include_in_schema=False)
async def resubmit(request: Request, token: str, app: App):
    language = known_language(request.query_params.get("lang")) or app.settings.default_language
    _ = catalogue(MESSAGES).gettext_for(language)
    if refused := refuse_cross_site(request, app.settings.public_base_url, language):
        return refused
    limits = web_limits(request)
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FORM_FIELDS, max_part_size=limits.max_field_bytes)
    except HTTPException as exc:
        if exc.status_code == 413:
            raise
        return await _page(request, app, token, language, status_code=422, error=_("error.text_too_long"))
    language = known_language(form_field(form, "lang")) or language
    _ = catalogue(MESSAGES).gettext_for(language)
    stage = await _stage(app, token)
    if stage is None:
        return invalid_link_page(request, language)
    kind, stage_fields = stage
    text = clean_comment(form_field(form, "text"))
    typed = {spec.id: clean_comment(form_field(form, f"field_{spec.id}")) for spec in stage_fields}
    try:
        data = submitting.parse_submission(
            stage_kind=kind,
            text=text,
            links=form_field(form, "links"),
            amount=form_field(form, "amount"),
            fields=typed,
            specs=stage_fields,
            language=language,
        )
        uploads = [
            UploadedFile(f.filename or "", await f.read(limits.max_attachment_bytes + 1))
            for f in form.getlist("files")
            if isinstance(f, UploadFile) and (f.filename or f.size)
        ]
        files = check_files(uploads, max_bytes=limits.max_attachment_bytes)
    except submitting.SubmissionInvalid as exc:
        return await _page(
            request,
            app,
            token,
            language,
            status_code=422,
            text=text,
            typed=typed,
            error=_(f"error.submission.{exc.field}", name=exc.name),
        )
    except FileRefused as exc:
        return await _page(
            request,
            app,
            token,
            language,
            status_code=422,
            text=text,
            typed=typed,
            error=_("error.file_refused", detail=str(exc), kb=limits.max_attachment_bytes // 1024),
        )
    if kind is StageKind.consolidation:  # written before the transaction: no lock held while it renders
        try:
            data["report"], drafted = await _draft(app, token, data["text"])
        except InvalidLink:
            return invalid_link_page(request, language)
        files = drafted + list(files)
    now = utcnow()
    try:
        async with app.db.transaction() as session:
            opened = await submitting.submit(
                session,
                plan=app.plan,
                secret=app.settings.link_secret_bytes(),
                token=token,
                data=data,
                files=files,
                now=now,
                link_ttl=dt.timedelta(days=app.settings.link_ttl_days),
            )
            await app.emails.approval_links(session, opened.request, opened.cycle, opened.new_assignments)
    except InvalidLink:
        return invalid_link_page(request, language)
    except (steps.NoApprover, Refused) as exc:
        log.warning("submission could not be routed: %s", exc)
        return render(
            request,
            "message.html",
            language,
            status_code=409,
            switch_url=None,
            title=_("resubmit.unrouted.title"),
            body=_("resubmit.unrouted.body"),
        )
    first = opened.request.previous_id is None  # a resubmission opens a round linked to the one sent back
    done = "submit.done" if first else "resubmit.done"
    return render(
        request,
        "message.html",
        language,
        switch_url=None,
        title=_(f"{done}.title"),
        body=_(f"{done}.body", at=local_time(now, app.plan.tz, language)),
        problem_url=problem_url(app, opened.request.requested_by),
    )
