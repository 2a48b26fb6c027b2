"""Arguments that arrive as text after templating: ``"{{ flannel_network_config }}"`` renders to JSON text,
``"{{ flannel_etcd_api }}"`` to ``"2"``. Used as pydantic ``mode="before"`` validators by step and check kinds."""

from __future__ import annotations

import json
from typing import Any


def json_text(value: Any) -> Any:
    """JSON text parsed (ValueError naming the parse error); anything else as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"is not JSON: {exc}") from None
    return value


def int_text(value: Any) -> Any:
    """Digits as an int; anything else as it is."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value
