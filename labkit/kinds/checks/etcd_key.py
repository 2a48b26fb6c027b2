"""``etcd_key``: an etcd key present, or equal as JSON, through the v2 or v3 API."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import field_validator

from labkit.kinds.checks.base import CheckArgs, CheckKind, Conn, q, run
from labkit.model.templated import int_text, json_text


class EtcdKeyArgs(CheckArgs):
    key: str
    api: Literal[2, 3] = 3
    endpoint: str = "http://127.0.0.1:2379"
    equals: dict[str, Any] | None = None

    # templated values arrive as text: equals: "{{ flannel_network_config }}", api: "{{ flannel_etcd_api }}"
    _equals_text = field_validator("equals", mode="before")(json_text)
    _api_text = field_validator("api", mode="before")(int_text)


class EtcdKey(CheckKind):
    """An etcd key present (and equal, as JSON) through the v2 or v3 API, as the flannel version needs."""

    kind = "etcd_key"
    args_model = EtcdKeyArgs
    args: EtcdKeyArgs

    def probe(self, conn: Conn) -> tuple[bool, str]:
        a = self.args
        read = "get" if a.api == 2 else "get --print-value-only"
        command = f"ETCDCTL_API={a.api} etcdctl --endpoints {q(a.endpoint)} {read} {q(a.key)}"
        result = run(conn, command)
        output = (result.stdout + result.stderr).strip()
        if result.exited != 0 or not result.stdout.strip():
            return False, f"v{a.api} {a.key}: {output.splitlines()[-1] if output else 'absent'}"
        if a.equals is None:
            return True, f"v{a.api} {a.key} present"
        try:
            value = json.loads(result.stdout.strip())
        except ValueError:
            return False, f"v{a.api} {a.key} is not JSON: {result.stdout.strip()[:200]}"
        return value == a.equals, f"v{a.api} {a.key} = {json.dumps(value)}"
