"""`kasten-bp blueprint render`: one blueprint per runner, each with the actions its runner
calls and artifacts that line up; the files in blueprints/ are the render; the CLI
contract (json, exit 2 on bad input) holds."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kasten_bp.cli import app
from kasten_bp.cli import blueprint as bp

ROOT = Path(__file__).resolve().parents[2]
BLUEPRINTS = ROOT / "blueprints"
CFG = "/etc/kasten-bp/kasten-bp.yaml"
ID = "{{ .ArtifactsIn.mirrorBackup.KeyValue.backupId }}"
runner = CliRunner()


def phases(action: dict[str, Any]) -> list[dict[str, Any]]:
    return list(action["phases"]) + ([action["deferPhase"]] if "deferPhase" in action else [])


def commands_by_action(doc: dict[str, Any]) -> dict[str, list[list[str]]]:
    return {n: [p["args"]["command"] for p in phases(a)] for n, a in doc["actions"].items()}


def quiesce_script(hold: str = "") -> str:
    return (
        f"kasten-bp quiesce {hold}--config {CFG} --output json > /tmp/quiesce.json\n"
        "kando output backupId \"$(python3 -c 'import json; "
        'print(json.load(open("/tmp/quiesce.json"))["backup_id"])\')"\n'
    )


def test_k10_blueprint_is_hooks_only_with_the_exact_commands() -> None:
    doc = bp.render("my-cluster", "kafka")
    assert doc["apiVersion"] == "cr.kanister.io/v1alpha1" and doc["kind"] == "Blueprint"
    assert doc["metadata"]["namespace"] == "kasten-io"
    # No backup/restore: with K10 they would replace its own PVC snapshots and restores.
    assert "backup" not in doc["actions"] and "restore" not in doc["actions"]
    resume = ["kasten-bp", "resume", "--config", CFG, "--output", "json"]
    assert commands_by_action(doc) == {
        "backupPrehook": [
            ["bash", "-o", "errexit", "-o", "pipefail", "-c", quiesce_script("--hold-timeout 15m ")]
        ],
        # K10 took the snapshot between the hooks: the posthook says so; onFailure does not.
        "backupPosthook": [resume[:2] + ["--snapshot-taken"] + resume[2:]],
        "restorePosthook": [["kasten-bp", "verify", ID, "--config", CFG, "--output", "json"]],
        "delete": [["kasten-bp", "delete", ID, "--confirm", "--config", CFG, "--output", "json"]],
        "resumeOnFailure": [resume],
    }
    # The prehook's output is the artifact the restore and delete hooks read.
    out = doc["actions"]["backupPrehook"]["outputArtifacts"]
    assert out == {
        "mirrorBackup": {"keyValue": {"backupId": "{{ .Phases.holdMirror.Output.backupId }}"}}
    }
    # Quiesced once per K10 backup: only the prehook quiesces.
    quiescing = [n for n, cmds in commands_by_action(doc).items() if "quiesce" in str(cmds)]
    assert quiescing == ["backupPrehook"]


def test_kanister_blueprint_backs_up_restores_and_deletes() -> None:
    doc = bp.render("my-cluster", "kafka", runner="kanister")
    assert set(doc["actions"]) == {"backup", "restore", "delete"}
    assert doc["metadata"]["namespace"] == "kanister"
    backup = doc["actions"]["backup"]
    names = [p["name"] for p in backup["phases"]]
    assert names == ["quiesceMirror", "snapshotMirror", "resumeMirror"]
    # Its own phases snapshot and resume: no hold to expire under a slow snapshot.
    assert backup["phases"][0]["args"]["command"][-1] == quiesce_script()
    assert backup["deferPhase"]["args"]["command"] == [
        "kasten-bp",
        "resume",
        "--config",
        CFG,
        "--output",
        "json",
    ]
    restore = doc["actions"]["restore"]
    assert [p["name"] for p in restore["phases"]] == ["restoreMirror", "verifyRestored"]
    verify = restore["phases"][1]["args"]["command"]
    assert verify[:4] == ["kasten-bp", "verify", ID, "--restored"]
    assert verify[4] == "{{ .Phases.restoreMirror.Output.bootstrap }}"
    assert "kando output bootstrap" in restore["phases"][0]["args"]["command"][-1]


TEMPLATE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


@pytest.mark.parametrize("runner_name", bp.RUNNERS)
def test_every_template_refers_to_something_the_action_provides(runner_name: str) -> None:
    """Kanister fails an action whose template names an artifact it was not given, or the
    output of a phase that has not run yet; catch both here."""
    doc = bp.render("c", "ns", runner=runner_name)
    produced = {
        name for action in doc["actions"].values() for name in (action.get("outputArtifacts") or {})
    }
    for action_name, action in doc["actions"].items():
        inputs = set(action.get("inputArtifactNames") or [])
        assert inputs <= produced, action_name
        seen: list[str] = []
        for p in phases(action):
            for ref in TEMPLATE.findall(json.dumps(p["args"])):
                kind, name, *_ = ref.lstrip(".").split(".")
                if kind == "ArtifactsIn":
                    assert name in inputs, (action_name, ref)
                else:
                    assert kind == "Phases" and name in seen, (action_name, ref)
            seen.append(p["name"])
        for ref in TEMPLATE.findall(json.dumps(action.get("outputArtifacts") or {})):
            kind, name, *_ = ref.lstrip(".").split(".")
            assert kind == "Phases" and name in seen, (action_name, ref)
        for p in phases(action):
            assert p["func"] == "KubeTask"
            assert p["args"]["namespace"] == "ns"
            assert p["args"]["podOverride"]["serviceAccountName"] == bp.SERVICE_ACCOUNT
            assert p["args"]["command"][-1] != "" and p["args"]["image"] == bp.DEFAULT_IMAGE


def test_binding_selects_the_mirror_workload_only() -> None:
    binding = bp.binding("mirror", "kafka", "statefulset")
    assert binding["apiVersion"] == "config.kio.kasten.io/v1alpha1"
    assert binding["kind"] == "BlueprintBinding"
    assert binding["spec"]["blueprintRef"] == {
        "name": "kafka-mirror-mirror",
        "namespace": "kasten-io",
    }
    assert binding["spec"]["resources"]["matchAll"] == [
        {"type": {"operator": "In", "values": [{"group": "apps", "resource": "statefulsets"}]}},
        {"namespace": {"operator": "In", "values": ["kafka"]}},
        {"name": {"operator": "In", "values": ["mirror"]}},
    ]


@pytest.mark.parametrize(
    ("path", "args"),
    [
        ("kafka-mirror-k10.yaml", ["--cluster", "my-cluster", "--namespace", "kafka"]),
        (
            "kafka-mirror-kanister.yaml",
            ["--for", "kanister", "--cluster", "my-cluster", "--namespace", "kafka"],
        ),
    ],
)
def test_files_are_the_render(path: str, args: list[str]) -> None:
    text = (BLUEPRINTS / path).read_text()
    out = runner.invoke(app, ["blueprint", "render", *args])
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == text.strip()
    # The header names the command that made it, and the README it points to exists.
    runner_name = "kanister" if "kanister" in args else "k10"
    assert text.startswith(
        f"# Generated by `kasten-bp blueprint render --for {runner_name} "
        "--cluster my-cluster --namespace kafka`"
    )
    assert "blueprints/README.md" in text.splitlines()[2]
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == (
        ["Blueprint", "BlueprintBinding"] if runner_name == "k10" else ["Blueprint"]
    )


def test_header_names_the_flags_given() -> None:
    args = ["--cluster", "c2", "--namespace", "ns2", "--platform", "statefulset"]
    args += ["--image", "img:1", "--hold-timeout", "5m"]
    out = runner.invoke(app, ["blueprint", "render", *args])
    assert out.exit_code == 0
    first = out.stdout.splitlines()[0]
    assert first == (
        "# Generated by `kasten-bp blueprint render --for k10 --cluster c2 --namespace ns2 "
        "--platform statefulset --image img:1 --hold-timeout 5m`:"
    )
    assert "kasten-bp quiesce --hold-timeout 5m " in out.stdout
    assert "my-cluster" not in out.stdout


def test_json_output_is_a_list_of_the_same_objects() -> None:
    out = runner.invoke(
        app, ["blueprint", "render", "--cluster", "c", "--namespace", "n", "--output", "json"]
    )
    assert out.exit_code == 0
    data = json.loads(out.stdout)
    assert data["kind"] == "List"
    assert data["items"] == [bp.render("c", "n"), bp.binding("c", "n")]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--for", "foo"], "--for must be k10 or kanister, got foo"),
        (["--platform", "x"], "--platform must be strimzi or statefulset, got x"),
        (["--hold-timeout", "soon"], "--hold-timeout 'soon' is not a duration (e.g. 30s, 15m, 1h)"),
    ],
)
def test_bad_input_is_one_line_exit_2(extra: list[str], message: str) -> None:
    out = runner.invoke(app, ["blueprint", "render", "--cluster", "c", "--namespace", "n", *extra])
    assert out.exit_code == 2
    assert out.stderr.strip() == f"error: {message}"
    assert out.stdout == ""
    out = runner.invoke(
        app,
        ["blueprint", "render", "--cluster", "c", "--namespace", "n", *extra, "-o", "json"],
    )
    assert out.exit_code == 2 and json.loads(out.stdout) == {"error": message, "exit_code": 2}


def test_policy_on_failure_hook_points_at_a_resuming_action() -> None:
    policy = yaml.safe_load((BLUEPRINTS / "k10-policy.yaml").read_text())
    assert policy["apiVersion"] == "config.kio.kasten.io/v1alpha1" and policy["kind"] == "Policy"
    (action,) = policy["spec"]["actions"]
    assert action["action"] == "backup"
    hook = action["backupParameters"]["hooks"]["onFailure"]
    doc = yaml.safe_load_all((BLUEPRINTS / "kafka-mirror-k10.yaml").read_text())
    blueprint = next(iter(doc))
    assert hook["blueprint"] == blueprint["metadata"]["name"]
    target = blueprint["actions"][hook["actionName"]]
    assert [p["args"]["command"][:2] for p in target["phases"]] == [["kasten-bp", "resume"]]
    # Not a reserved K10 action name: K10 calls it only through the policy hook.
    assert hook["actionName"] not in {
        "backup",
        "backupPrehook",
        "backupPosthook",
        "restore",
        "restorePrehook",
        "restorePosthook",
        "delete",
    }


def test_dockerfile_pins_kanister_tools_by_digest() -> None:
    lines = (BLUEPRINTS / "Dockerfile").read_text().splitlines()
    (tools,) = [line for line in lines if line.startswith("FROM ") and "kanister-tools" in line]
    assert "@${KANISTER_TOOLS_DIGEST}" in tools
    # No default digest to go stale, and no tag-only fallback.
    assert "ARG KANISTER_TOOLS_DIGEST" in lines


def test_blueprints_readme_explains_every_file() -> None:
    readme = (BLUEPRINTS / "README.md").read_text()
    files = sorted(p.name for p in BLUEPRINTS.iterdir() if p.name != "README.md")
    assert files == [
        "Dockerfile",
        "k10-policy.yaml",
        "kafka-mirror-k10.yaml",
        "kafka-mirror-kanister.yaml",
        "rbac.yaml",
    ]
    for name in files:
        assert f"`{name}`" in readme, name
