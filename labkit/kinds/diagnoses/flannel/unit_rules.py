"""Findings in what systemd says about flanneld: not installed, never started or stopped, exited, restarting."""

from __future__ import annotations

from labkit.kinds.diagnoses.finding import Finding, Text
from labkit.kinds.diagnoses.flannel.expectations import Expectations
from labkit.kinds.diagnoses.flannel.facts import Facts
from labkit.kinds.diagnoses.flannel.findings import (
    FLANNELD_EXITED,
    FLANNELD_NOT_INSTALLED,
    FLANNELD_NOT_STARTED,
    FLANNELD_RESTARTING,
    NOT_ENABLED,
)

JOURNAL_LINES_SHOWN = 6


def _not_installed(facts: Facts, want: Expectations) -> list[Finding]:
    """No unit, or a flanneld that is not running and whose binary is not there."""
    unit = facts.unit
    no_unit = unit.get("LoadState") == "not-found"
    absent = facts.flanneld_absent
    no_binary = absent is not None and unit.get("ActiveState") != "active"
    if not (no_unit or no_binary):
        return []
    seen: list[str] = []
    if no_unit:
        seen.append("systemctl show flanneld: LoadState=not-found")
    if no_binary and absent is not None:
        path = absent.startswith("/")
        seen.append(f"{absent}: no such file" if path else f"no flanneld on {absent}")
        where = absent if path else "PATH"
        if no_unit:
            missing = Text(
                f"no flanneld binary (on {where}) and no flanneld.service unit",
                f"flanneld のバイナリ ({where}) も flanneld.service ユニットもありません",
            )
        else:
            missing = Text(
                f"flanneld.service runs {where}, which does not exist",
                f"flanneld.service が実行する {where} が存在しません",
            )
        restarts = unit.get("NRestarts", "")
        if restarts not in ("", "0"):
            seen.append(f"ActiveState={unit.get('ActiveState', '?')} NRestarts={restarts} (each start fails)")
    else:
        shown = f" (the binary is at {facts.flanneld_binary})" if facts.flanneld_binary else ""
        shown_ja = f" (バイナリは {facts.flanneld_binary} にあります)" if facts.flanneld_binary else ""
        missing = Text(f"no flanneld.service unit{shown}", f"flanneld.service ユニットがありません{shown_ja}")
    values: dict[str, str | Text] = {"missing": missing, "conf": want.conf_path}
    return [Finding(FLANNELD_NOT_INSTALLED, "; ".join(seen), values)]


def unit_findings(facts: Facts, want: Expectations) -> list[Finding]:
    """What systemd says about flanneld: missing, never started or stopped, exited once, or restarting."""
    installed = _not_installed(facts, want)
    unit = facts.unit
    if installed or "ActiveState" not in unit:
        return installed
    active, sub = unit["ActiveState"], unit.get("SubState", "")
    restarts = unit.get("NRestarts", "")
    count = int(restarts) if restarts.isdigit() else None
    shown = active + (f"/{sub}" if sub else "")
    properties = " ".join(
        f"{name}={unit[name]}"
        for name in ("ActiveState", "SubState", "NRestarts", "Result", "ExecMainStatus", "UnitFileState")
        if unit.get(name)
    )
    tail = facts.journal[-JOURNAL_LINES_SHOWN:]
    with_journal = properties + ("; journal:\n" + "\n".join(tail) if tail else "")
    if (count or 0) > 0 or sub == "auto-restart":
        state = Text(f"{shown}, {restarts or '?'} restarts", f"{shown}、再起動 {restarts or '?'} 回")
        return [Finding(FLANNELD_RESTARTING, with_journal, {"state": state})]
    if count != 0:
        return []  # no restart count: nothing says whether it crashed
    if active == "failed":
        result, status = unit.get("Result", "failed"), unit.get("ExecMainStatus", "")
        state = Text(
            f"{shown}, {result}" + (f", exit status {status}" if status else ""),
            f"{shown}、{result}" + (f"、終了コード {status}" if status else ""),
        )
        return [Finding(FLANNELD_EXITED, with_journal, {"state": state})]
    if active == "inactive":
        enabled = unit.get("UnitFileState", "")
        state = Text(shown + (f", {enabled}" if enabled else ""), shown + (f"、{enabled}" if enabled else ""))
        boot = NOT_ENABLED if enabled == "disabled" else Text("", "")
        return [Finding(FLANNELD_NOT_STARTED, with_journal, {"state": state, "boot": boot})]
    return []
