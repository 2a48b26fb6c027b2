"""Every ``labkit`` command, registered on the one app in the order ``labkit --help`` lists them: the order
of a lab's life (scenarios, up, stages, snapshots, destroy), not the order of the modules that hold them."""

from __future__ import annotations

import typer

from labkit.cli import artifacts, box, classes, host, hosts, lab, scenarios, snapshots, stages


def register_commands(app: typer.Typer) -> None:
    app.command("scenarios")(scenarios.scenarios_cmd)
    app.command("validate")(scenarios.validate_cmd)
    app.command("render")(scenarios.render_cmd)
    app.command("up")(lab.up_cmd)
    app.command("status")(lab.status_cmd)
    app.command("ssh", context_settings=lab.SSH_CONTEXT_SETTINGS)(lab.ssh_cmd)
    app.command("guide")(scenarios.guide_cmd)
    app.command("solve")(stages.solve_cmd)
    app.command("check")(stages.check_cmd)
    app.command("snapshot")(snapshots.snapshot_cmd)
    app.command("snapshots")(snapshots.snapshots_cmd)
    app.command("reset")(snapshots.reset_cmd)
    app.command("retry")(stages.retry_cmd)
    app.command("destroy")(lab.destroy_cmd)
    app.command("doctor")(lab.doctor_cmd)
    app.add_typer(classes.app, name="class")
    app.add_typer(hosts.app, name="hosts")
    app.add_typer(artifacts.app, name="artifacts")
    app.add_typer(box.app, name="box")
    app.add_typer(host.app, name="host")
