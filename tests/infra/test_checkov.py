"""checkov over infra/: no failed checks, nothing unparsed, every suppression explained."""

from __future__ import annotations

import re
from pathlib import Path

SKIP_COMMENT = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::\s*(.*))?")


def test_no_failed_checks(checkov_report):
    failed = checkov_report["results"]["failed_checks"]
    details = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in failed]
    assert not failed, "checkov failures (fix them, or add a `checkov:skip=ID: reason` in the resource):\n" + "\n".join(
        details
    )
    assert checkov_report["_exit_code"] == 0, checkov_report["_stderr"][-2000:]


def test_every_template_parsed(checkov_report, templates):
    assert checkov_report["summary"]["parsing_errors"] == 0, checkov_report["results"].get("parsing_errors")
    assert checkov_report["summary"]["passed"] > 0


def test_checks_ran_without_crashing(checkov_report):
    # A check that raises is logged and silently dropped from the counts.
    assert "Failed to run check" not in checkov_report["_stderr"], checkov_report["_stderr"][-3000:]


def test_every_skip_has_a_reason(checkov_report):
    for check in checkov_report["results"]["skipped_checks"]:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert reason and reason != "No comment provided", f"{check['check_id']} on {check['resource']} has no reason"
        assert len(reason) >= 30, f"{check['check_id']} on {check['resource']}: reason too short: {reason!r}"


def test_every_skip_comment_is_used(checkov_report, infra_root):
    """A suppression that no longer matches a finding is stale and hides intent."""
    used = {
        (Path(c["file_path"]).as_posix().lstrip("/"), c["check_id"])
        for c in checkov_report["results"]["skipped_checks"]
    }
    declared = set()
    for path in sorted((infra_root / "infra").rglob("*.bicep")):
        rel = path.relative_to(infra_root / "infra").as_posix()
        for line in path.read_text(encoding="utf-8").splitlines():
            match = SKIP_COMMENT.search(line)
            if match:
                assert line.strip().startswith("//"), f"{rel}: skip outside a comment: {line!r}"
                declared.add((rel, match.group(1)))
    assert declared, "expected the documented suppressions"
    assert declared - used == set(), f"stale checkov:skip comments: {sorted(declared - used)}"


# ---- infra/check.sh: the script the Makefile/CI run -------------------------------------


def test_check_sh_passes_on_a_clean_template(check_sh_runs):
    run = check_sh_runs["clean"]
    assert run.returncode == 0, run.stdout + run.stderr


def test_check_sh_fails_on_a_failed_check(check_sh_runs):
    run = check_sh_runs["failing"]
    assert run.returncode != 0, run.stdout + run.stderr
    assert "CKV_AZURE_206" in run.stdout


def test_check_sh_fails_on_an_unparsable_template(check_sh_runs):
    run = check_sh_runs["unparsable"]
    assert run.returncode != 0, run.stdout + run.stderr
    assert "could not be parsed" in run.stderr
