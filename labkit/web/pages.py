"""The class web page's HTML: Jinja2 templates (every value escaped), guides from Markdown, cell labels."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from labkit.classroom.record import FAILING, NOT_TRIED, UNREACHABLE, VERIFIED, Cell
from labkit.paths import PACKAGE_DIR

WEB_DATA = PACKAGE_DIR / "data" / "web"
STATIC_DIR = WEB_DATA / "static"
LABELS = {
    VERIFIED: "✓ verified",
    FAILING: "✗ failing",
    UNREACHABLE: "? unreachable",
    NOT_TRIED: "· not tried",
}

# Autoescape for every template: Starlette's default picks by extension, and ours end in .j2.
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DATA / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
# A guide's raw HTML is shown as text, never run: guides come from scenario files anyone may write.
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


@dataclass(frozen=True)
class Notice:
    """The last action on a trainee's lab, shown on their page."""

    action: str
    text: str
    ok: bool
    by_trainer: bool
    at: str


def notice(action: str, text: str, ok: bool, by_trainer: bool) -> Notice:
    return Notice(action, text, ok, by_trainer, dt.datetime.now().strftime("%H:%M:%S"))


def guide_html(markdown: str) -> Markup:
    return Markup(_markdown.render(markdown))  # safe: rendered with raw HTML off


def cell_text(cell: Cell) -> str:
    """A check's cell as a one-line message."""
    return LABELS.get(cell.status, cell.status) + (f": {cell.detail}" if cell.detail else "")


def host_line(host: dict[str, Any]) -> str:
    """The host's free RAM and disk, and KSM, as ``labkit class status`` prints them."""
    ksm = host.get("ksm")
    shared = f", KSM {'on' if ksm['run'] == 1 else 'off'} sharing {ksm['sharing_mib']} MiB" if ksm else ""
    disk = host.get("disk_free_mib")
    return (
        f"host {host.get('host')}: {host.get('ram_available_mib')} MiB RAM available, "
        f"{disk if disk is not None else '?'} MiB disk free{shared}"
    )


def internal_error(exc: Exception) -> str:
    """A bug's one line for the page; the traceback goes to the server's log."""
    return f"internal error: {type(exc).__name__}: {exc} (the server's log has the details)"


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, template, {"labels": LABELS, **context}, status_code=status)


def refusal(request: Request, status: int, text: str) -> HTMLResponse:
    """A short page saying why not: 403 (no token of someone who may see this), 404, 500."""
    titles = {403: "Forbidden", 404: "Not found", 500: "Error"}
    return render(
        request, "refused.html.j2", {"status": status, "title": titles.get(status, ""), "text": text}, status
    )
