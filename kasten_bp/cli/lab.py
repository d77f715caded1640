"""`kasten-bp lab ...`: the embedded lab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kasten_bp.cli.output import Output, OutputOption, emit, show_progress
from kasten_bp.cli.runner import run_command
from kasten_bp.lab.consume import DEFAULT_TIMEOUT, run_consume
from kasten_bp.lab.lab import Lab
from kasten_bp.lab.load import LoadSpec, run_load

app = typer.Typer(
    help="The embedded lab: primary and mirror Kafka clusters with MM2.", no_args_is_help=True
)
WorkdirOption = typer.Option(
    ..., "--workdir", help="directory holding the lab's processes and data"
)


def _render_lab(info: dict[str, Any]) -> str:
    lines = [f"primary   {info['primary']['bootstrap']}"]
    lines.append(f"mirror    {info['mirror']['bootstrap']}")
    for b in info["mirror"]["brokers"]:
        state = f"pid {b['pid']}" if b["running"] else "stopped"
        lines.append(f"  broker {b['id']}  {state}  {b['log_dirs'][0]}")
    lines.append(f"connect   {info['connect']['url']}")
    for name, st in info["connect"].get("connector_states", {}).items():
        lines.append(f"  {name}: {st}")
    for backup_id, restored in info.get("restored", {}).items():
        lines.append(f"restored  {backup_id}: {restored['bootstrap']}")
    if "security" in info:
        sec = info["security"]
        lines.append(
            f"security  {sec['security_protocol']} {sec['sasl_mechanism']}, CA {sec['ca_file']}"
        )
    lines.append(f"config    {info['config']}")
    return "\n".join(lines)


@app.command()
def up(
    workdir: Path = WorkdirOption,
    primary_brokers: int = typer.Option(1, "--primary-brokers", help="brokers in the primary"),
    mirror_brokers: int = typer.Option(3, "--mirror-brokers", help="brokers in the mirror"),
    replication_policy: str = typer.Option(
        "identity", "--replication-policy", help="identity|default"
    ),
    secure: bool = typer.Option(
        False,
        "--secure",
        help="TLS and SCRAM-SHA-512 on both clusters, ACLs, MM2 and Connect REST over TLS",
    ),
    targets: int = typer.Option(
        0, "--targets", help="single-broker target clusters for `replay --to` (plain)"
    ),
    output: Output = OutputOption,
) -> None:
    """Start (or show, if already up) the lab under WORKDIR."""
    show_progress()
    info = run_command(
        output,
        lambda: Lab(workdir).up(
            primary_brokers, mirror_brokers, replication_policy, secure=secure, targets=targets
        ),
    )
    emit(
        info,
        output,
        lambda d: "\n".join(
            [_render_lab(d)] + [f"target    {t['bootstrap']}" for t in d.get("targets", [])]
        ),
    )


@app.command()
def status(workdir: Path = WorkdirOption, output: Output = OutputOption) -> None:
    """Show the lab's processes and connector states."""
    info = run_command(output, lambda: Lab(workdir).status())
    emit(info, output, _render_lab)


@app.command()
def down(workdir: Path = WorkdirOption, output: Output = OutputOption) -> None:
    """Stop every process started under WORKDIR (idempotent)."""
    info = run_command(output, lambda: Lab(workdir).down())
    emit(
        info,
        output,
        lambda d: f"lab {d['workdir']} is down ({len(d['stopped'])} processes stopped)",
    )


@app.command()
def fail(
    cluster: str = typer.Argument(..., help="primary: the only cluster a drill fails"),
    workdir: Path = WorkdirOption,
    output: Output = OutputOption,
) -> None:
    """The disaster drill: kill the primary's brokers (SIGKILL). `lab up` brings them back."""
    info = run_command(output, lambda: Lab(workdir).fail(cluster))
    emit(
        info,
        output,
        lambda d: (
            f"primary {d['bootstrap']} failed: brokers {d['killed_brokers']} killed (SIGKILL)"
        ),
    )


@app.command()
def load(
    workdir: Path = WorkdirOption,
    topic: str = typer.Option(..., "--topic", help="primary topic to write (created if missing)"),
    records: int = typer.Option(..., "--records", help="how many records"),
    rate: float = typer.Option(0, "--rate", help="records per second; 0 = as fast as possible"),
    partitions: int = typer.Option(3, "--partitions", help="partitions if the topic is created"),
    output: Output = OutputOption,
) -> None:
    """Produce keyed records with headers and varied sizes to the primary."""

    def go() -> dict[str, Any]:
        the_lab = Lab(workdir)
        state = the_lab.require_state()
        the_lab.use_admin(state)
        spec = LoadSpec(topic=topic, records=records, rate=rate, partitions=partitions)
        return run_load(state.primary.bootstrap, spec)

    result = run_command(output, go)
    emit(
        result,
        output,
        lambda d: f"produced {d['produced']} records to {d['topic']} in {d['seconds']}s",
    )


@app.command()
def consume(
    workdir: Path = WorkdirOption,
    group: str = typer.Option(..., "--group", help="consumer group id"),
    topic: str = typer.Option(..., "--topic", help="primary topic to read"),
    records: int | None = typer.Option(
        None, "--records", help="stop after this many records (default: at the topic's end)"
    ),
    timeout: float = typer.Option(DEFAULT_TIMEOUT, "--timeout", help="give up after seconds"),
    output: Output = OutputOption,
) -> None:
    """Run a consumer group on the primary that commits as it reads (synchronously, every
    few records and at the end), then leaves the group with its offsets committed."""

    def go() -> dict[str, Any]:
        the_lab = Lab(workdir)
        state = the_lab.require_state()
        the_lab.use_admin(state)
        return run_consume(state.primary.bootstrap, group, topic, records, timeout)

    result = run_command(output, go)
    emit(
        result,
        output,
        lambda d: (
            f"group {d['group']} read {d['records']} records of {d['topic']}, "
            f"committed {d['committed']}"
        ),
    )
