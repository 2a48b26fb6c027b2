"""The class web page: the trainer's live grid and each trainee's page behind their own token, served by
``labkit class serve`` (Starlette under uvicorn, Jinja2 templates). It only calls the class's operations in
:mod:`labkit.classroom.selfservice`; nothing below this package speaks HTTP."""

from __future__ import annotations

from labkit.web.app import create_app
from labkit.web.service import ClassService

__all__ = ["ClassService", "create_app"]
