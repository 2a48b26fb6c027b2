"""A class: one verified golden lab and a lab per trainee cloned from it with its memory, and the trainer's
grid of who has which stage verified. :class:`~labkit.classroom.classroom.Classroom` is the API behind
``labkit class up|status|check|reset|access|destroy``; trainees reach their labs through the class gateway
(:mod:`labkit.classroom.access`)."""

from __future__ import annotations

from labkit.classroom.classroom import Classroom, ClassStatus
from labkit.classroom.record import Cell, ClassRecord

__all__ = ["Cell", "ClassRecord", "ClassStatus", "Classroom"]
