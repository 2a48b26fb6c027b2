"""`labkit class serve`'s refusals (no server is started here) and its listen address."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from labkit.classroom.record import ClassRecord, write_record
from labkit.classroom.tokens import tokens_path
from labkit.cli import app
from labkit.errors import UsageError
from labkit.web.serving import parse_listen, url_host


def test_serving_a_class_that_does_not_exist_is_one_line_and_issues_nothing() -> None:
    result = CliRunner().invoke(app, ["class", "serve", "nosuch"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: no class named 'nosuch' (classes: none) (start one with `labkit class up`)"
    ]
    assert not tokens_path("nosuch").exists()


def test_a_port_in_use_is_one_line_naming_the_address_and_the_fix() -> None:
    write_record(ClassRecord("c1", "three-node", "", "etcd", "c1-golden", ["alice"]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["class", "serve", "c1", "--listen", f"127.0.0.1:{port}"])
    assert result.exit_code == 3
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: the address is in use")
    assert f"--listen 127.0.0.1:{port + 1}" in line
    assert not tokens_path("c1").exists()  # the trainer's old token still works


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:8081", ("::1", 8081))],
)
def test_listen_is_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "localhost", ":8080", "host:http", "host:70000"])
def test_a_listen_address_without_host_and_port_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(UsageError, match="is not HOST:PORT"):
        parse_listen(text)


def test_urls_name_this_host_for_a_wildcard_address_and_bracket_ipv6() -> None:
    assert url_host("127.0.0.1") == "127.0.0.1"
    assert url_host("::1") == "[::1]"
    assert url_host("0.0.0.0") == socket.gethostname()
