"""How fast the approval pages answer, next to a minimal FastAPI endpoint, in the same run.

    python bench/web.py [--requests 2000] [--decisions 500] [--concurrency 8] [--rounds 3] [--postgres URL]
                        [--paced N --rate R]

Two servers run side by side, each in a child process, with the same uvicorn settings (one
worker, no access log): `kehoach web`'s app (create_app: its middlewares, the link checks,
the database, the Jinja2 pages) on a freshly migrated database holding open requests, and
a minimal FastAPI app with the same two routes doing no work, and a bare FastAPI +
SQLAlchemy endpoint that does a decision's database work only (the compare-and-set of the
link and its request, the decision and one audit row, in one transaction). A load process (raw HTTP/1.1
on keep-alive connections, so that the client costs little) sends, one row after the other:

  GET  /a/{token}   the approval page an official opens from the email (kehoach: verify the
                    link, read the request, render the page; changes nothing)
  POST /a/{token}   a decision, each on a link of its own (kehoach: one transaction that
                    records it, settles the step and queues the receipt and the closing
                    emails; minimal: parse the form, answer a page; bare: its database work)

With `--paced N`, two more rows send N decisions each to the bare and the kehoach endpoints at
`--rate` a second (open loop: each at its planned moment, its latency counted from then), for
the latency under a given load rather than at saturation.

Each answer is checked (status 200, the page kehoach should give) and, after the POST row,
the database must hold exactly one decision per link. Ratios are taken against the minimal
endpoint of the same round; the medians over the rounds are printed, with the latency
percentiles and the server's CPU. Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fastapi import FastAPI, Request  # noqa: E402 - module level: the minimal app's annotations name them
from fastapi.responses import HTMLResponse  # noqa: E402

from bench.common import (  # noqa: E402
    DONE,
    HOST,
    CpuMeter,
    Database,
    Server,
    decisions,
    load,
    median,
    open_links,
    percentile,
    serve_kehoach,
)

# ------------------------------------------------------------------------ the servers (child processes)


def _minimal_app():
    app = FastAPI()

    @app.get("/a/{token}")
    async def show(token: str):
        return HTMLResponse(f"<!doctype html><html lang=vi><title>Phê duyệt</title><p>{token[:8]}</p></html>")

    @app.post("/a/{token}")
    async def decide(token: str, request: Request):
        form = await request.form()
        return HTMLResponse(f"<!doctype html><html lang=vi><title>Đã ghi nhận</title><p>{form.get('outcome')}</p>")

    return app


def _bare_app(url: str):
    """A bare FastAPI + SQLAlchemy endpoint doing a decision's database work and nothing else: in
    one transaction, find the link's assignment by its token's hash, compare-and-set it and its
    request, insert the decision and one audit row. No plan, no policy, no page, no email."""
    from sqlalchemy import select, update

    from approvals import audit
    from approvals.db import Database as Db
    from approvals.db import utcnow
    from approvals.models import ApprovalRequest, Assignment, Decision
    from approvals.tokens import hash_token

    app = FastAPI()
    state = {}

    @app.on_event("startup")
    async def start() -> None:
        state["db"] = Db(url)

    @app.post("/a/{token}")
    async def decide(token: str, request: Request):
        form = await request.form()
        now = utcnow()
        async with state["db"].transaction() as session:
            found = (
                await session.execute(
                    select(Assignment.id, Assignment.request_id, Assignment.official_id).where(
                        Assignment.token_hash == hash_token(token), Assignment.status == "pending"
                    )
                )
            ).first()
            if found is None:
                return HTMLResponse("<p>Liên kết không còn hiệu lực</p>", status_code=404)
            await session.execute(
                update(Assignment)
                .where(Assignment.id == found.id, Assignment.status == "pending")
                .values(status="decided")
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                update(ApprovalRequest)
                .where(ApprovalRequest.id == found.request_id, ApprovalRequest.status == "pending")
                .values(status="approved", decided_at=now)
                .execution_options(synchronize_session=False)
            )
            session.add(
                Decision(
                    request_id=found.request_id,
                    assignment_id=found.id,
                    official_id=found.official_id,
                    outcome=str(form.get("outcome")),
                    comment="",
                    decided_at=now,
                )
            )
            await audit.append(
                session,
                actor=f"official:{found.official_id}",
                action="decision.recorded",
                entity="approval_request",
                entity_id=str(found.request_id),
                data={"outcome": "approve"},
            )
        return HTMLResponse("<!doctype html><html lang=vi><title>Đã ghi nhận</title></html>")

    return app


def _serve(kind: str, port: int, url: str, secret: str, folder: str) -> None:
    import uvicorn

    if kind == "kehoach":
        serve_kehoach(kind, port, url, secret, folder)
        return
    app = _minimal_app() if kind == "minimal" else _bare_app(url)
    uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning", access_log=False)).run()


# ------------------------------------------------------------------------ the run

STAGE = "UBND tỉnh xử lý vướng mắc".encode()  # stage E's name, on its approval page


def one_round(args, servers: dict[str, Server], database: Database, secret: str, number: int) -> list:
    kehoach, minimal, bare = servers["kehoach"], servers["minimal"], servers["bare"]
    meter = CpuMeter(kehoach=kehoach.process.pid, minimal=minimal.process.pid, bare=bare.process.pid)
    pages = asyncio.run(open_links(database.url, secret, 50, f"{number}-pages"))
    to_decide = asyncio.run(open_links(database.url, secret, args.decisions, f"{number}-decisions"))
    for_bare = asyncio.run(open_links(database.url, secret, args.decisions, f"{number}-bare"))
    paced = (
        {
            kind: asyncio.run(open_links(database.url, secret, args.paced, f"{number}-paced-{kind}"))
            for kind in ("bare", "kehoach")
        }
        if args.paced
        else {}
    )
    already = sum(asyncio.run(decisions(database.url)).values())
    rows = []
    for key, server, method, tokens, expect, rate in (
        ("get:minimal", minimal, "GET", pages, "Phê duyệt".encode(), None),
        ("get:kehoach", kehoach, "GET", pages, STAGE, None),
        ("post:minimal", minimal, "POST", to_decide, DONE, None),
        ("post:bare", bare, "POST", for_bare, DONE, None),
        ("post:kehoach", kehoach, "POST", to_decide, DONE, None),
        *((f"paced:{kind}", servers[kind], "POST", tokens, DONE, args.rate) for kind, tokens in paced.items()),
    ):
        count = args.requests if method == "GET" else len(tokens)
        body = b"outcome=approve&comment=" if method == "POST" else b""
        work = [(method, f"/a/{tokens[i % len(tokens)]}", body, server.origin) for i in range(count)]
        meter.start()
        seconds, statuses, latencies, unexpected = load(server.port, work, args.concurrency, expect, rate)
        cpu = meter.stop()
        if statuses != {200: count} or unexpected:
            raise SystemExit(f"{key}: answers {statuses}, {unexpected} without the expected page")
        rows.append((key, count / seconds, latencies, cpu[server.kind]))
    recorded = asyncio.run(decisions(database.url))
    expected = len(to_decide) + len(for_bare) + sum(len(tokens) for tokens in paced.values())
    if sum(recorded.values()) - already != expected or any(n != 1 for n in recorded.values()):
        raise SystemExit(f"decisions recorded: {sum(recorded.values()) - already} for {expected} links")
    return rows


NAMES = {
    "get:minimal": "minimal FastAPI endpoint, GET",
    "get:kehoach": "kehoach approval page, GET /a/{token}",
    "post:minimal": "minimal FastAPI endpoint, POST a form",
    "post:bare": "bare FastAPI + SQLAlchemy decision (CAS + audit)",
    "post:kehoach": "kehoach decision, POST /a/{token}",
}
PACED = {
    "paced:bare": "bare decision, {rate:g}/s offered",
    "paced:kehoach": "kehoach decision, {rate:g}/s offered",
}
BASELINE = {
    "get:minimal": "get:minimal",
    "get:kehoach": "get:minimal",
    "post:minimal": "post:minimal",
    "post:bare": "post:minimal",
    "post:kehoach": "post:bare",
}


def report(rounds: list[list], rate: float) -> None:
    print()
    print(
        f"  median of {len(rounds)} round(s); ratio against its baseline of the same round (min-max): a page "
        "and the bare decision against the minimal endpoint, the kehoach decision against the bare one"
    )
    print(f"  {'':48} {'req/s':>7} {'x baseline':>18} {'p50 ms':>7} {'p99 ms':>7} {'server CPU %':>13}")
    keys = [row[0] for row in rounds[0]]
    for index, key in enumerate(keys):
        rates = [r[index][1] for r in rounds]
        p50 = median([percentile(r[index][2], 0.5) for r in rounds]) * 1000
        p99 = median([percentile(r[index][2], 0.99) for r in rounds]) * 1000
        cpu = median([r[index][3] for r in rounds])
        if key in BASELINE:
            baseline = keys.index(BASELINE[key])
            ratios = [r[index][1] / r[baseline][1] for r in rounds]
            spread = f"{median(ratios):5.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            name = NAMES[key]
        else:  # paced: the rate is the one offered, the latency is what counts
            spread, name = "offered", PACED[key].format(rate=rate)
        print(f"  {name:48} {median(rates):7.0f} {spread:>18} {p50:7.1f} {p99:7.1f} {cpu:13.0f}")
    print()
    print("  every answer was 200 with the expected page; every link's decision was recorded exactly once.")
    if any(key in PACED for key in keys):
        print("  paced rows: open loop, one decision every 1/rate s whatever the answers; latency from the planned")
        print("  moment of sending, so waiting behind earlier requests counts.")


def main(argv: list[str] | None = None) -> None:
    import secrets

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="GET requests per row and round (default 2000)")
    parser.add_argument("--decisions", type=int, default=500, help="POSTed decisions per row and round (default 500)")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive connections of the load (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every row; medians printed (default 3)")
    parser.add_argument(
        "--paced",
        type=int,
        default=0,
        metavar="N",
        help="also send N decisions at --rate a second (open loop) to the bare and the kehoach "
        "endpoints: the latency at a given load, not at saturation (default 0: not run)",
    )
    parser.add_argument("--rate", type=float, default=25.0, help="decisions a second for --paced (default 25)")
    parser.add_argument("--postgres", metavar="URL", help="e.g. postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="kehoach-bench-web-"))
    database = Database(args.postgres, folder)
    secret = secrets.token_urlsafe(48)
    servers = {kind: Server(kind, database.url, secret, folder, _serve) for kind in ("kehoach", "minimal", "bare")}
    rounds = []
    try:
        for server in servers.values():
            server.start()
        print(
            f"uvicorn, one worker each; {args.concurrency} connections; database: "
            f"{'PostgreSQL' if args.postgres else 'SQLite file'}; {args.rounds} round(s)",
            flush=True,
        )
        for number in range(args.rounds):
            rows = one_round(args, servers, database, secret, number)
            print(
                f"  round {number + 1}: " + ", ".join(f"{key} {rate:.0f}" for key, rate, _l, _c in rows) + " req/s",
                flush=True,
            )
            rounds.append(rows)
    finally:
        for server in servers.values():
            server.stop()
        database.drop()
        shutil.rmtree(folder, ignore_errors=True)
    report(rounds, args.rate)


if __name__ == "__main__":
    main()
