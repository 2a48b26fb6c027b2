"""Diagnoses: named findings that explain *why* a check failed, each with a cause and a fix in ja and en.

A finding is raised only on evidence seen on the node (a line of a config file, an error text, a missing
file); a fact that could not be gathered (a binary absent, a command failing) raises nothing and is reported
as unknown instead.
"""

from __future__ import annotations

# Before .finding, so that this package can be the first one imported: importing checks.base runs
# labkit.kinds.checks, which imports the flannel check and so .flannel; .flannel then finds checks.base
# complete, and takes its types from .finding (this file has not defined them yet).
import labkit.kinds.checks.base  # noqa: F401
from labkit.kinds.diagnoses.finding import Finding, FindingSpec, Text

__all__ = ["Finding", "FindingSpec", "Text"]
