"""``etcd_put``: a JSON value at a key, through the etcd v2 or v3 API (flannel <= 0.17 reads v2).

``value`` is a mapping, or JSON text (what a template such as ``"{{ flannel_network_config }}"`` renders to).

The key is read first and the value written only when the JSON differs. With v2 turned off, etcdctl says
``client: response is invalid json``: the step fails saying to start etcd with ``--enable-v2=true``.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from labkit.kinds.steps.base import (
    ArgsModel,
    Change,
    Conn,
    Result,
    StepContext,
    StepFailed,
    StepKind,
    sudo,
)
from labkit.model.templated import int_text, json_text

V2_OFF = "response is invalid json"
V2_HINT = (
    "etcd's v2 API is off: add --enable-v2=true to etcd's options (flannel <= 0.17 reads v2) and restart etcd"
)
V2_MISSING = "Key not found"


class EtcdPutArgs(ArgsModel):
    key: str = Field(min_length=1)
    value: dict[str, Any]
    api: Literal[2, 3] = 3
    endpoint: str = "http://127.0.0.1:2379"

    # templated values arrive as text: value: "{{ flannel_network_config }}", api: "{{ flannel_etcd_api }}"
    _value_text = field_validator("value", mode="before")(json_text)
    _api_text = field_validator("api", mode="before")(int_text)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must start with '/' (e.g. /coreos.com/network/config)")
        return value


class EtcdPutStep(StepKind):
    kind: ClassVar[str] = "etcd_put"
    args_model = EtcdPutArgs
    args: EtcdPutArgs

    def _etcdctl(self, *words: str) -> str:
        a = self.args
        quoted = " ".join(shlex.quote(w) for w in words)
        return f"ETCDCTL_API={a.api} etcdctl --endpoints {shlex.quote(a.endpoint)} {quoted}"

    def current(self, conn: Conn) -> Any:
        """The key's JSON value, or None when the key is absent (or not JSON: then it is rewritten)."""
        a = self.args
        command = (
            self._etcdctl("get", a.key) if a.api == 2 else self._etcdctl("get", a.key, "--print-value-only")
        )
        ran = sudo(conn, command)
        if V2_OFF in ran.output:
            raise StepFailed(V2_HINT, ran.command, ran.output)
        if not ran.ok:
            if a.api == 2 and V2_MISSING in ran.output:
                return None
            raise StepFailed(f"reading {a.key} failed (exit {ran.exited})", ran.command, ran.output)
        text = ran.stdout.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None

    def plan(self, conn: Conn, ctx: StepContext) -> Change:
        now = self.current(conn)
        if now == self.args.value:
            return self.change(ctx, [])
        diff = f"-{json.dumps(now, sort_keys=True)}\n+{json.dumps(self.args.value, sort_keys=True)}\n"
        what = "set" if now is None else "update"
        return self.change(ctx, [f"{what} {self.args.key} (etcd v{self.args.api})"], diff)

    def apply(self, conn: Conn, ctx: StepContext) -> Result:
        if self.current(conn) == self.args.value:
            return self.result(ctx, False)
        verb = "set" if self.args.api == 2 else "put"
        ran = sudo(conn, self._etcdctl(verb, self.args.key, json.dumps(self.args.value)))
        if V2_OFF in ran.output:
            raise StepFailed(V2_HINT, ran.command, ran.output)
        if not ran.ok:
            raise StepFailed(f"writing {self.args.key} failed (exit {ran.exited})", ran.command, ran.output)
        return self.result(ctx, True, f"wrote {self.args.key}")
