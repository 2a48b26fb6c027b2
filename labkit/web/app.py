"""The class web page (``labkit class serve``): the trainer's live grid and a page per trainee.

    GET  /                     the grid, trainee x stage (trainer)
    GET  /grid.json            the grid as ``labkit class status --json`` prints it (trainer)
    GET  /trainee/NAME         NAME's current stage, its guide, their cells and three buttons (NAME or trainer)
    GET  /trainee/NAME/cells.json   NAME's current stage and cells, which their page polls (NAME or trainer)
    POST /trainee/NAME/check   also /reset and /retry: run it on NAME's lab alone, then back to the page
                               with its result (NAME or trainer)

Anything else gets 403: no token, a wrong one, a trainee's on another trainee's page or on the grid. An unknown
trainee is a 404 for the trainer. The operations run in worker threads: they take seconds to a minute.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from labkit.classroom import Classroom
from labkit.classroom.record import VERIFIED
from labkit.classroom.selfservice import SelfService, UnknownTrainee
from labkit.classroom.tokens import TRAINER
from labkit.errors import LabkitError
from labkit.kinds.guides import LANGUAGES
from labkit.web.access import keep_in_cookie, permitted, same_origin
from labkit.web.headers import SafeHeaders
from labkit.web.pages import (
    STATIC_DIR,
    Notice,
    cell_text,
    guide_html,
    host_line,
    internal_error,
    notice,
    refusal,
    render,
)
from labkit.web.service import ClassService

log = logging.getLogger(__name__)

ACTIONS = ("check", "reset", "retry")
FORBIDDEN = "This page needs your own link. Ask your trainer for it."


class ClassPages:
    """The handlers, and the last action's result on each trainee's lab (kept while the server runs)."""

    def __init__(self, class_name: str, service: ClassService) -> None:
        self.class_name = class_name
        self.service = service
        self.notices: dict[str, Notice] = {}

    def _entry(self, request: Request, trainee: str | None) -> Response | None:
        """None when the request may go on; else the 403, or the redirect that moves ``?token=`` into a
        cookie."""
        holder = permitted(request, self.class_name, trainee)
        if holder is None:
            return refusal(request, 403, FORBIDDEN)
        if "token" in request.query_params and "authorization" not in request.headers:
            return keep_in_cookie(request, self.class_name, holder)
        return None

    async def grid(self, request: Request) -> Response:
        refused = self._entry(request, None)
        if refused is not None:
            return refused
        status = await run_in_threadpool(self.service.status)
        return render(request, "grid.html.j2", {"status": status, "host": host_line(status.host)})

    async def grid_json(self, request: Request) -> Response:
        refused = self._entry(request, None)
        if refused is not None:
            return refused
        status = await run_in_threadpool(self.service.status)
        return JSONResponse(status.to_json())

    async def trainee(self, request: Request) -> Response:
        name = request.path_params["name"]
        refused = self._entry(request, name)
        if refused is not None:
            return refused
        lang = request.query_params.get("lang")
        view = await run_in_threadpool(self.service.trainee_view, name, lang if lang in LANGUAGES else None)
        context = {
            "view": view,
            "guide": guide_html(view.guide),
            "notice": self.notices.get(name),
            "query": _language_query(request),
        }
        return render(request, "trainee.html.j2", context)

    async def trainee_cells(self, request: Request) -> Response:
        name = request.path_params["name"]
        if permitted(request, self.class_name, name) is None:
            return refusal(request, 403, FORBIDDEN)
        cells = await run_in_threadpool(self.service.trainee_cells, name)
        return JSONResponse(cells.to_json())

    async def act(self, request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        holder = permitted(request, self.class_name, name)
        if holder is None or not same_origin(request):
            return refusal(request, 403, FORBIDDEN)
        if action not in ACTIONS:
            return refusal(request, 404, f"no action {action!r}: {', '.join(ACTIONS)}")
        try:
            text, ok = await run_in_threadpool(self._perform, action, name)
        except UnknownTrainee as exc:
            return refusal(request, 404, str(exc))
        except LabkitError as exc:
            text, ok = str(exc), False
        except Exception as exc:  # broad on purpose: a person reads this, the log keeps the traceback
            log.exception("%s on %s's lab failed", action, name)
            text, ok = internal_error(exc), False
        self.notices[name] = notice(action, text, ok, by_trainer=holder.role == TRAINER)
        return RedirectResponse(f"/trainee/{name}{_language_query(request)}", status_code=303)

    def _perform(self, action: str, trainee: str) -> tuple[str, bool]:
        """Run one action on the trainee's lab (in a worker thread): its one-line result, and whether it
        went well."""
        if action == "check":
            cell = self.service.check_trainee(trainee)
            return cell_text(cell), cell.status == VERIFIED
        if action == "reset":
            report = self.service.reset_trainee(trainee)
        else:
            report = self.service.retry_trainee(trainee)
        return f"back at {report.name} in {report.seconds:.1f} s", True

    async def not_found(self, request: Request, exc: Exception) -> Response:
        """Only the trainer learns that a path does not exist; anyone else gets the same 403 as always."""
        if permitted(request, self.class_name, None) is None:
            return refusal(request, 403, FORBIDDEN)
        detail = exc.detail if isinstance(exc, HTTPException) else "not found"
        return refusal(request, 404, detail)

    async def unknown_trainee(self, request: Request, exc: Exception) -> Response:
        return refusal(request, 404, str(exc))  # raised only after the trainer's token was accepted

    async def failed(self, request: Request, exc: Exception) -> Response:
        """A page that could not be made (the class gone, libvirt down): its message, never a traceback."""
        return refusal(request, 500, str(exc) if isinstance(exc, LabkitError) else internal_error(exc))


def _language_query(request: Request) -> str:
    """``?lang=xx`` when the request asked for a guide language: kept across the page's forms."""
    lang = request.query_params.get("lang")
    return f"?{urlencode({'lang': lang})}" if lang in LANGUAGES else ""


def create_app(class_name: str, service: ClassService | None = None) -> Starlette:
    """The class web page of ``class_name``; ``service`` defaults to the real class on this host."""
    pages = ClassPages(class_name, service or SelfService(Classroom(class_name)))
    routes = [
        Route("/", pages.grid),
        Route("/grid.json", pages.grid_json),
        Route("/trainee/{name}", pages.trainee),
        Route("/trainee/{name}/cells.json", pages.trainee_cells),
        Route("/trainee/{name}/{action}", pages.act, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    handlers = {
        404: pages.not_found,
        UnknownTrainee: pages.unknown_trainee,
        LabkitError: pages.failed,
        500: pages.failed,  # then uvicorn logs the traceback
    }
    return Starlette(routes=routes, middleware=[Middleware(SafeHeaders)], exception_handlers=handlers)
