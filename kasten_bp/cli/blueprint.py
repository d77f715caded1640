"""`kasten-bp blueprint render`: the Kanister Blueprint that drives kasten-bp, one per runner.

`--for k10` (default): HOOKS ONLY. K10 snapshots the mirror's PVCs itself; the blueprint
bound to the mirror (by the BlueprintBinding printed with it) only brackets that snapshot:
- backupPrehook: `kasten-bp quiesce --hold-timeout 15m` (MM2 stopped, catch-up proven,
  heads captured, brokers flushed and stopped; put back by itself if no resume comes in
  time); the backup id goes out as the artifact `mirrorBackup`.
- backupPosthook: `kasten-bp resume --snapshot-taken` (K10 runs it after its snapshot, which
  kasten-bp cannot see; idempotent: "nothing to resume" when already done).
- restorePosthook: `kasten-bp verify BACKUP_ID` against the restored cluster.
- delete: `kasten-bp delete BACKUP_ID --confirm` (catalog entry and any snapshots it made).
- resumeOnFailure: not a reserved name, so K10 never calls it for the binding; a policy's
  `onFailure` hook points at it (blueprints/k10-policy.yaml): the safety net when K10 fails
  between prehook and posthook. Plain `kasten-bp resume`: a run still held without a
  snapshot is rolled back (exit 3), never recorded as a kept backup.
No `backup`/`restore` actions: with K10 they would REPLACE its PVC snapshots/restores.

`--for kanister` (plain Kanister ActionSets, no K10): kasten-bp does everything:
- backup: quiesce -> `kasten-bp snapshot` (CSI snapshots) -> resume; a deferPhase resume
  that runs whatever happened; artifact `mirrorBackup` {backupId}.
- restore: `kasten-bp restore BACKUP_ID`, then `verify` against the cluster it started.
- delete: `kasten-bp delete BACKUP_ID --confirm`.

blueprints/kafka-mirror-k10.yaml and blueprints/kafka-mirror-kanister.yaml are this
module's output for `--cluster my-cluster --namespace kafka`; tests keep them equal.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import typer
import yaml

from kasten_bp.cli.output import Output, OutputOption, emit
from kasten_bp.cli.runner import run_command
from kasten_bp.errors import UsageError
from kasten_bp.hold import parse_duration

app = typer.Typer(help="The Kanister Blueprint that runs kasten-bp from K10.", no_args_is_help=True)

RUNNERS = ("k10", "kanister")
PLATFORMS = ("strimzi", "statefulset")
DEFAULT_IMAGE = "ghcr.io/kasten-bp/kasten-bp:0.1.0"
DEFAULT_PLATFORM = "strimzi"
# K10's prehook quiesces and leaves the snapshot to K10: if the posthook never comes, the
# hold expires and kasten-bp puts the mirror back by itself. Longer than K10 ever needs
# between its hooks for these volumes; shorter than anyone tolerates a stopped mirror.
DEFAULT_HOLD_TIMEOUT = "15m"
CONFIG_DIR = "/etc/kasten-bp"
CONFIG_FILE = f"{CONFIG_DIR}/kasten-bp.yaml"
SERVICE_ACCOUNT = "kasten-bp"
ARTIFACT = "mirrorBackup"
BACKUP_ID = "{{ .ArtifactsIn.mirrorBackup.KeyValue.backupId }}"
# How a shell phase receives the backup id: set in the phase's pod, never in its script.
BACKUP_ID_ENV = "KASTEN_BP_BACKUP_ID"
ON_FAILURE_ACTION = "resumeOnFailure"
# Where each runner looks for Blueprints: K10 only in its own namespace; Kanister's
# controller in the namespace it was installed in (its Helm chart's default: kanister).
BLUEPRINT_NAMESPACE = {"k10": "kasten-io", "kanister": "kanister"}
# The workload K10's BlueprintBinding selects, per platform.
WORKLOAD = {
    "strimzi": {"group": "kafka.strimzi.io", "resource": "kafkas"},
    "statefulset": {"group": "apps", "resource": "statefulsets"},
}


def config_map_name(cluster: str) -> str:
    return f"kasten-bp-{cluster}"


def blueprint_name(cluster: str) -> str:
    return f"kafka-mirror-{cluster}"


def _cli(*args: str) -> list[str]:
    return ["kasten-bp", *args, "--config", CONFIG_FILE, "--output", "json"]


def _with_output(command: list[str], json_file: str, key: str, field: str) -> list[str]:
    """Run `command`, keep its JSON in `json_file`, and hand `field` to Kanister as the
    phase output `key` (`kando output`), failing the phase if any of it fails.

    The script is a constant: an artifact (the backup id) never goes inside it, where a
    hostile value would run as shell. It reaches the shell as an environment variable,
    expanded quoted, and kasten-bp refuses any value that is not a backup id."""
    words = [f'"${BACKUP_ID_ENV}"' if w == BACKUP_ID else shlex.quote(w) for w in command]
    return [
        "bash",
        "-o",
        "errexit",
        "-o",
        "pipefail",
        "-c",
        f"{' '.join(words)} > {json_file}\n"
        f"kando output {key} \"$(python3 -c 'import json; "
        f'print(json.load(open("{json_file}"))["{field}"])\')"\n',
    ]


def commands(hold_timeout: str = DEFAULT_HOLD_TIMEOUT) -> dict[str, list[str]]:
    """The exact command of every phase, by phase name (what the tests pin down).
    `holdMirror` is K10's quiesce (a hold that expires); `quiesceMirror` the Kanister
    backup action's, whose own later phases snapshot and resume."""
    return {
        "holdMirror": _with_output(
            _cli("quiesce", "--hold-timeout", hold_timeout),
            "/tmp/quiesce.json",
            "backupId",
            "backup_id",
        ),
        "quiesceMirror": _with_output(
            _cli("quiesce"), "/tmp/quiesce.json", "backupId", "backup_id"
        ),
        "snapshotMirror": _cli("snapshot"),
        "resumeMirror": _cli("resume"),
        # K10's posthook: K10 snapshotted the PVCs between its hooks, which kasten-bp cannot
        # see; the hook says so. Without the flag a held run is rolled back (onFailure).
        "resumeSnapshotted": _cli("resume", "--snapshot-taken"),
        "ensureResumed": _cli("resume"),
        "restoreMirror": _with_output(
            _cli("restore", BACKUP_ID), "/tmp/restore.json", "bootstrap", "bootstrap"
        ),
        "verifyRestore": _cli("verify", BACKUP_ID),
        "verifyRestored": _cli(
            "verify", BACKUP_ID, "--restored", "{{ .Phases.restoreMirror.Output.bootstrap }}"
        ),
        "deleteBackup": _cli("delete", BACKUP_ID, "--confirm"),
    }


def _check(runner: str, platform: str, hold_timeout: str = DEFAULT_HOLD_TIMEOUT) -> None:
    parse_duration(hold_timeout)
    if runner not in RUNNERS:
        raise UsageError(f"--for must be k10 or kanister, got {runner}")
    if platform not in PLATFORMS:
        raise UsageError(f"--platform must be strimzi or statefulset, got {platform}")


def render(
    cluster: str,
    namespace: str,
    platform: str = DEFAULT_PLATFORM,
    image: str = DEFAULT_IMAGE,
    runner: str = "k10",
    hold_timeout: str = DEFAULT_HOLD_TIMEOUT,
) -> dict[str, Any]:
    """The Blueprint for `runner` (k10: hooks only; kanister: backup/restore/delete)."""
    _check(runner, platform, hold_timeout)
    cmds = commands(hold_timeout)

    def phase(name: str) -> dict[str, Any]:
        return {
            "func": "KubeTask",
            "name": name,
            "args": {
                "namespace": namespace,
                "image": image,
                "podOverride": {
                    # Kanister >= 0.115 runs job pods hardened and, without this, under the
                    # namespace's default service account: name the least-privilege one.
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "volumes": [
                        {"name": "config", "configMap": {"name": config_map_name(cluster)}}
                    ],
                    "containers": [
                        {
                            "name": "container",
                            "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR}],
                            **artifact_env(cmds[name]),
                        }
                    ],
                },
                "command": cmds[name],
            },
        }

    def artifact_env(command: list[str]) -> dict[str, Any]:
        if command[0] != "bash" or f"${BACKUP_ID_ENV}" not in command[-1]:
            return {}
        return {"env": [{"name": BACKUP_ID_ENV, "value": BACKUP_ID}]}

    def artifact_out(quiesce: str) -> dict[str, Any]:
        template = f"{{{{ .Phases.{quiesce}.Output.backupId }}}}"
        return {ARTIFACT: {"keyValue": {"backupId": template}}}

    delete = {"inputArtifactNames": [ARTIFACT], "phases": [phase("deleteBackup")]}
    if runner == "k10":
        actions: dict[str, Any] = {
            "backupPrehook": {
                "outputArtifacts": artifact_out("holdMirror"),
                "phases": [phase("holdMirror")],
            },
            "backupPosthook": {"phases": [phase("resumeSnapshotted")]},
            "restorePosthook": {
                "inputArtifactNames": [ARTIFACT],
                "phases": [phase("verifyRestore")],
            },
            "delete": delete,
            ON_FAILURE_ACTION: {"phases": [phase("resumeMirror")]},
        }
    else:
        actions = {
            "backup": {
                "outputArtifacts": artifact_out("quiesceMirror"),
                "phases": [
                    phase("quiesceMirror"),
                    phase("snapshotMirror"),
                    phase("resumeMirror"),
                ],
                "deferPhase": phase("ensureResumed"),
            },
            "restore": {
                "inputArtifactNames": [ARTIFACT],
                "phases": [phase("restoreMirror"), phase("verifyRestored")],
            },
            "delete": delete,
        }
    return {
        "apiVersion": "cr.kanister.io/v1alpha1",
        "kind": "Blueprint",
        "metadata": {
            "name": blueprint_name(cluster),
            "namespace": BLUEPRINT_NAMESPACE[runner],
            "labels": {
                "app.kubernetes.io/managed-by": "kasten-bp",
                "kasten-bp.io/platform": platform,
                "kasten-bp.io/runner": runner,
            },
        },
        "actions": actions,
    }


def binding(cluster: str, namespace: str, platform: str = DEFAULT_PLATFORM) -> dict[str, Any]:
    """K10's BlueprintBinding: the blueprint runs for the mirror's workload only (type,
    namespace and name all match), never for a primary in the same namespace."""
    _check("k10", platform)
    return {
        "apiVersion": "config.kio.kasten.io/v1alpha1",
        "kind": "BlueprintBinding",
        "metadata": {"name": blueprint_name(cluster), "namespace": BLUEPRINT_NAMESPACE["k10"]},
        "spec": {
            "blueprintRef": {
                "name": blueprint_name(cluster),
                "namespace": BLUEPRINT_NAMESPACE["k10"],
            },
            "resources": {
                "matchAll": [
                    {"type": {"operator": "In", "values": [WORKLOAD[platform]]}},
                    {"namespace": {"operator": "In", "values": [namespace]}},
                    {"name": {"operator": "In", "values": [cluster]}},
                ]
            },
        },
    }


@dataclass(frozen=True)
class BlueprintRequest:
    """What `blueprint render` was asked for."""

    cluster: str
    namespace: str
    platform: str = DEFAULT_PLATFORM
    image: str = DEFAULT_IMAGE
    runner: str = "k10"
    hold_timeout: str = DEFAULT_HOLD_TIMEOUT

    def documents(self) -> list[dict[str, Any]]:
        """The Blueprint, and for K10 its BlueprintBinding."""
        docs = [
            render(
                self.cluster,
                self.namespace,
                self.platform,
                self.image,
                self.runner,
                self.hold_timeout,
            )
        ]
        if self.runner == "k10":
            docs.append(binding(self.cluster, self.namespace, self.platform))
        return docs

    def command(self) -> str:
        """The command line that renders exactly this (defaults left out)."""
        flags = [f"--for {self.runner}", f"--cluster {self.cluster}"]
        flags.append(f"--namespace {self.namespace}")
        if self.platform != DEFAULT_PLATFORM:
            flags.append(f"--platform {self.platform}")
        if self.image != DEFAULT_IMAGE:
            flags.append(f"--image {self.image}")
        if self.hold_timeout != DEFAULT_HOLD_TIMEOUT:
            flags.append(f"--hold-timeout {self.hold_timeout}")
        return "kasten-bp blueprint render " + " ".join(flags)


def header(command: str, runner: str) -> str:
    what = (
        "hooks around K10's own PVC snapshots, and its BlueprintBinding"
        if runner == "k10"
        else "backup/restore/delete for plain Kanister ActionSets (no K10)"
    )
    return (
        f"# Generated by `{command}`:\n"
        f"# {what}.\n"
        "# Each file and how to install it: blueprints/README.md.\n"
    )


class _Dumper(yaml.SafeDumper):
    """No anchors/aliases (`&id001`): every phase spelled out, as people read blueprints."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(docs: list[dict[str, Any]], command: str, runner: str) -> str:
    body = "---\n".join(yaml.dump(d, Dumper=_Dumper, sort_keys=False, width=1000) for d in docs)
    return header(command, runner) + body


@app.callback()
def blueprint_group() -> None:
    """The Kanister Blueprint that runs kasten-bp from K10 (or plain Kanister)."""


@app.command("render")
def render_command(
    cluster: str = typer.Option(..., "--cluster", help="the Kafka (Strimzi) or StatefulSet name"),
    namespace: str = typer.Option(..., "--namespace", help="where the mirror runs"),
    runner: str = typer.Option(
        "k10", "--for", help="k10 (hooks + BlueprintBinding) or kanister (ActionSets)"
    ),
    platform: str = typer.Option(DEFAULT_PLATFORM, "--platform", help="strimzi or statefulset"),
    image: str = typer.Option(DEFAULT_IMAGE, "--image", help="the kasten-bp container image"),
    hold_timeout: str = typer.Option(
        DEFAULT_HOLD_TIMEOUT,
        "--hold-timeout",
        help="k10: the prehook's quiesce puts the mirror back by itself after this",
    ),
    output: Output = OutputOption,
) -> None:
    """Print the Blueprint (and for K10 its BlueprintBinding): YAML documents, or with
    --output json a v1 List of the same objects."""
    request = BlueprintRequest(cluster, namespace, platform, image, runner, hold_timeout)
    docs = run_command(output, request.documents)
    emit(
        {"apiVersion": "v1", "kind": "List", "items": docs},
        output,
        lambda data: to_yaml(data["items"], request.command(), runner).rstrip("\n"),
    )
