"""The Starlette application of ``segql ui``: routes, templates, and the writes.

Pages are rendered by jinja2 with autoescaping on (every text from the project or the
warehouse is escaped; the charts escape their own text), from templates and static files
that are package data. Writes are JSON posts from the app's own script, behind the
``Guard`` (token, Host, CSRF); ``read_only`` refuses them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from segql.downstream.report import formatting
from segql.errors import SegqlError
from segql.output import cell_text
from segql.ui import builder, views
from segql.ui.security import Guard, Secrets
from segql.ui.workspace import Workspace

READ_ONLY = (
    "segql ui was started with --read-only: nothing can be changed from here "
    "(restart it without --read-only, or use `segql exclude` / write the file yourself)"
)


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("segql.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )
    environment.filters.update(
        when=formatting.when,
        thousands=formatting.thousands,
        signed=formatting.signed,
        growth_text=formatting.growth_text,
        shorten=formatting.shorten,
        path=lambda value: quote(str(value), safe=""),
        cell=cell_text,
    )
    return environment


def create_app(root: Path, keys: Secrets, read_only: bool = False) -> Guard:
    """The app for the project at ``root``, answering only requests with ``keys``."""
    workspace = Workspace(root, read_only)
    templates = Jinja2Templates(env=_environment())

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.update(csrf=keys.csrf, read_only=read_only, project=root.name)
        return templates.TemplateResponse(request, name, context, status_code=status)

    def failed(request: Request, error: SegqlError) -> Response:
        status = 404 if "unknown segment" in error.message else 400
        return page(request, "error.html.j2", status, error=error.render())

    def home(request: Request) -> Response:
        search = request.query_params.get("q", "")
        tag = request.query_params.get("tag", "")
        try:
            with workspace.reading() as reading:
                found = views.overview(reading)
        except SegqlError as error:
            return failed(request, error)
        shown = [
            line for line in found.segments
            if line.matches(search) and (not tag or tag in line.tags)
        ]  # fmt: skip
        return page(request, "overview.html.j2", overview=found, shown=shown, q=search, tag=tag)

    def segment(request: Request) -> Response:
        name = request.path_params["name"]
        columns = [c for c in request.query_params.getlist("col") if c]
        search = request.query_params.get("q", "")
        number = _int(request.query_params.get("page"), 1)
        try:
            with workspace.reading() as reading:
                detail = views.segment_detail(reading, name, columns, search, number)
        except SegqlError as error:
            return failed(request, error)
        return page(request, "segment.html.j2", s=detail, q=search)

    def members_csv(request: Request) -> Response:
        name = request.path_params["name"]
        columns = [c for c in request.query_params.getlist("col") if c]
        try:
            with workspace.reading() as reading:
                text = views.members_csv(reading, name, columns)
        except SegqlError as error:
            return failed(request, error)
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}-members.csv"'},
        )

    def person(request: Request) -> Response:
        person_id = request.path_params["person_id"]
        try:
            with workspace.reading() as reading:
                detail = views.person_detail(
                    reading, person_id, request.query_params.get("explain")
                )
        except SegqlError as error:
            return failed(request, error)
        return page(request, "person.html.j2", p=detail)

    def find_person(request: Request) -> Response:
        wanted = request.query_params.get("id", "").strip()
        if not wanted:
            return RedirectResponse("/", 303)
        return RedirectResponse(f"/people/{quote(wanted, safe='')}", 303)

    def builder_page(request: Request) -> Response:
        condition = request.query_params.get("condition", "")
        try:
            with workspace.reading() as reading:
                check = builder.check_condition(reading, condition, [])
                available = [
                    *(reading.project.catalog.columns(reading.project.config.entity.table) or ()),
                    *reading.project.definitions.traits,
                ]
        except SegqlError as error:
            return failed(request, error)
        return page(request, "builder.html.j2", check=check, available=available)

    def builder_check(request: Request) -> Response:
        condition = request.query_params.get("condition", "")
        columns = [c for c in request.query_params.getlist("col") if c]
        try:
            with workspace.reading() as reading:
                check = builder.check_condition(reading, condition, columns)
        except SegqlError as error:
            check = builder.Check(condition, errors=builder.problems(error))
        return page(request, "builder_result.html.j2", check=check)

    async def builder_save(request: Request) -> Response:
        body = await _write_fields(request, read_only)
        if isinstance(body, Response):
            return body
        fields = {k: str(body.get(k) or "") for k in ("name", "condition", "title",
                                                      "description", "tags")}  # fmt: skip

        def save() -> builder.Saved:
            with workspace.reading() as reading:
                return builder.save_segment(reading.project, reading, **fields)

        try:
            saved = await run_in_threadpool(save)
        except SegqlError as error:
            return JSONResponse({"ok": False, "error": error.render()}, 400)
        return JSONResponse(
            {
                "ok": True,
                "message": f"wrote {saved.path.relative_to(root)}",
                "url": f"/segments/{quote(saved.name)}",
                "text": saved.text,
            }
        )

    async def exclude(request: Request) -> Response:
        body = await _write_fields(request, read_only)
        if isinstance(body, Response):
            return body
        name = request.path_params["name"]
        person_id = str(body.get("person_id") or "").strip()
        reason = str(body.get("reason") or "").strip()
        if not person_id or not reason:
            return JSONResponse(
                {"ok": False, "error": "give the person's id and a reason (kept with it)"}, 400
            )

        def add() -> int:
            with workspace.overrides() as (project, overrides):
                project.select([name])
                return overrides.add(name, [person_id], "exclude", reason)

        try:
            count = await run_in_threadpool(add)
        except SegqlError as error:
            return JSONResponse({"ok": False, "error": error.render()}, 400)
        return JSONResponse(
            {"ok": True, "message": f"{count} excluded from {name}; the next run applies it"}
        )

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/segments/{name}", segment),
            Route("/segments/{name}/members.csv", members_csv),
            Route("/segments/{name}/exclude", exclude, methods=["POST"]),
            Route("/people", find_person),
            Route("/people/{person_id:path}", person),
            Route("/builder", builder_page),
            Route("/builder/check", builder_check),
            Route("/builder/save", builder_save, methods=["POST"]),
            Mount("/static", StaticFiles(packages=[("segql.ui", "static")]), name="static"),
        ]
    )
    return Guard(app, keys)


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


async def _write_fields(request: Request, read_only: bool) -> dict[str, Any] | Response:
    """The JSON fields of a write, or the refusal to answer with (read-only, not JSON)."""
    if read_only:
        return JSONResponse({"ok": False, "error": READ_ONLY}, 403)
    body = await _json(request)
    if body is None:
        return JSONResponse({"ok": False, "error": "send the fields as JSON"}, 400)
    return body


async def _json(request: Request) -> dict[str, Any] | None:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return None
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
