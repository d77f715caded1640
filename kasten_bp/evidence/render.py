"""The report as Markdown or HTML for people; JSON stays the signed form."""

from __future__ import annotations

import html
from typing import Any


def _rows(doc: dict[str, Any]) -> list[tuple[str, list[list[str]], list[str]]]:
    """(section title, rows, header) for every measured section."""
    b = doc["backup"]
    t = b["timings"]
    sections = [
        (
            f"Backup {b['backup_id']} ({b['state']}, {b['mode']}, {b['platform']})",
            [
                ["created", str(b.get("created_at"))],
                ["partitions", str(b["partitions"])],
                ["MM2 stopped (s)", str(t.get("mm2_stopped_seconds", "not measured"))],
                [
                    "mirror unavailable (s)",
                    str(t.get("mirror_unavailable_seconds", "not measured")),
                ],
            ]
            + [[f"step {s['name']} (s)", str(s["seconds"])] for s in t["steps"]],
            ["what", "value"],
        )
    ]
    if "restore" in doc:
        r = doc["restore"]
        sections.append(
            (
                "Restore (RTO demonstrated)",
                [["seconds", str(r["seconds"])], ["started", str(r["started_at"])]],
                ["what", "value"],
            )
        )
    if "verify" in doc:
        v = doc["verify"]
        sections.append(
            (
                f"Verify {v['name']}: {v['verdict']} ({v['records_compared']} records compared "
                f"with the {v.get('compared_with', 'primary')})",
                [
                    [f"{p['topic']}[{p['partition']}]", p["status"], str(p["records_compared"])]
                    for p in v["partitions"]
                ],
                ["partition", "status", "records compared"],
            )
        )
    if "rpo" in doc:
        sections.append(
            (
                f"RPO per partition (measured by {doc['rpo']['measured_by']})",
                [
                    [
                        f"{p['topic']}[{p['partition']}]",
                        str(p.get("records_behind", "-")),
                        str(p.get("seconds_behind", "-")),
                    ]
                    for p in doc["rpo"]["partitions"]
                ],
                ["partition", "records behind", "seconds behind"],
            )
        )
    if "export" in doc:
        e = doc["export"]
        verdict = e.get("verify", {}).get("verdict", "not verified")
        sections.append(
            (
                f"Export {e['export_id']} ({e['format']}, {e['records']} records, {verdict}) "
                f"at {e['url']}",
                [[f["key"], str(f["records"]), f["sha256"]] for f in e["files"]],
                ["file", "records", "sha256"],
            )
        )
    return sections


def _footer(doc: dict[str, Any]) -> list[str]:
    lines = []
    if doc.get("not_measured"):
        lines.append("Not measured: " + ", ".join(doc["not_measured"]))
    sig = doc.get("signature")
    if sig:
        lines.append(f"Signed {sig['algorithm']} by key sha256:{sig['public_key_sha256']}")
        lines.append(f"Signature: {sig['value']}")
    return lines


def markdown(doc: dict[str, Any]) -> str:
    out = [
        f"# Evidence report: backup {doc['backup']['backup_id']}",
        "",
        f"Generated {doc['generated_at']} from catalog {doc['catalog']}.",
        "",
    ]
    for title, rows, header in _rows(doc):
        out += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out.append("")
    out += [f"{line}  " for line in _footer(doc)]
    return "\n".join(out)


def to_html(doc: dict[str, Any]) -> str:
    e = html.escape
    out = [
        "<!doctype html>",
        '<html><head><meta charset="utf-8">',
        f"<title>Evidence report: {e(doc['backup']['backup_id'])}</title></head><body>",
        f"<h1>Evidence report: backup {e(doc['backup']['backup_id'])}</h1>",
        f"<p>Generated {e(doc['generated_at'])} from catalog {e(doc['catalog'])}.</p>",
    ]
    for title, rows, header in _rows(doc):
        out.append(f"<h2>{e(title)}</h2><table>")
        out.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
        out.append("</table>")
    out += [f"<p>{e(line)}</p>" for line in _footer(doc)]
    out.append("</body></html>")
    return "\n".join(out)
