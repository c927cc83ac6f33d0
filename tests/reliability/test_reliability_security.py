"""Security checks kept green: no secret anywhere, no known-vulnerable pinned dependency.

(cfn-lint and checkov on the template live in tests/test_stack.py, hadolint in
tests/containers/test_dockerfiles.py, HSDS refusing anonymous and wrong-password requests in
tests/workbench/local/test_environment.py; least privilege measured against the workers'
recorded calls is tests/reliability/test_reliability_pipeline.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import stack_template
from tests.reliability import secret_scan

ROOT = Path(__file__).resolve().parents[2]
AUDIT_VENV = ROOT / ".venv-audit"
PIP_AUDIT_VERSION = "2.9.0"


def test_the_scanner_finds_each_kind_of_secret() -> None:
    # Built at run time, so that this file itself holds no secret.
    planted = "\n".join(
        [
            "key = 'AKIA" + "Q3EGRZ7VJ5XKPL2M'",
            "aws_secret_access_key = '" + "k" * 20 + "9+/Qz" * 4 + "'",
            "-----BEGIN RSA " + "PRIVATE KEY-----",
            'password = "' + "Tr0ub4dor&3" + '"',
            "url = 'https://admin:" + "hunter22x" + "@example.org/'",
        ]
    )
    kinds = {f.kind for f in secret_scan.scan_text(planted, "planted")}
    assert kinds == set(secret_scan.PATTERNS)
    # The dummy credentials tests give moto are allowed.
    assert not list(secret_scan.scan_text('aws_secret_access_key="testing"\npassword="wrong-password"', "dummy"))


def test_no_secret_in_the_repository() -> None:
    files = secret_scan.repository_files()
    assert len(files) > 100
    findings = secret_scan.scan_paths(files)
    assert not findings, "\n".join(map(str, findings))


def test_no_secret_in_the_template_or_the_dockerfiles() -> None:
    template = stack_template.template_json()
    findings = list(secret_scan.scan_text(template, "stack.json"))
    dockerfiles = sorted((ROOT / "docker").glob("*Dockerfile")) + sorted((ROOT / "docker").glob("*.txt"))
    assert dockerfiles
    findings += secret_scan.scan_paths(dockerfiles)
    assert not findings, "\n".join(map(str, findings))
    # The HSDS password is generated into Secrets Manager, never a template literal.
    doc = json.loads(template)
    secrets = [r for r in doc["Resources"].values() if r["Type"] == "AWS::SecretsManager::Secret"]
    assert secrets and all("GenerateSecretString" in s["Properties"] for s in secrets)
    assert all("SecretString" not in s["Properties"] for s in secrets)


def _pypi_answers(name: str, version: str) -> str | None:
    """None when PyPI's per-release JSON API (what pip-audit's "pypi" service reads) answers; else why not."""
    url = f"https://pypi.org/pypi/{name}/{version}/json"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return None if response.status == 200 else f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code} (the per-release JSON API pip-audit needs is not served here)"
    except (urllib.error.URLError, OSError) as exc:
        return f"PyPI unreachable ({url}): {exc}"


def _not_audited(reason: str) -> None:
    """No audit possible: say so loudly. A skip with the reason by default; DC_REQUIRE_AUDIT=1 makes it a failure."""
    message = f"NOT AUDITED: pip-audit cannot reach vulnerability data: {reason}"
    if os.environ.get("DC_REQUIRE_AUDIT") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _first_pin(path: Path) -> tuple[str, str]:
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            return name.strip(), version.strip()
    raise AssertionError(f"{path}: no pinned requirement")


def _pip_audit() -> Path:
    """pip-audit in its own virtual environment (it would move the project's pins)."""
    exe = AUDIT_VENV / "bin" / "pip-audit"
    stamp = AUDIT_VENV / ".installed"
    if exe.exists() and stamp.exists() and stamp.read_text() == PIP_AUDIT_VERSION:
        return exe
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(AUDIT_VENV)], check=True)
    subprocess.run(
        [str(AUDIT_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", f"pip-audit=={PIP_AUDIT_VERSION}"],
        check=True,
        timeout=600,
    )
    stamp.write_text(PIP_AUDIT_VERSION)
    return exe


@pytest.mark.slow
@pytest.mark.parametrize(
    "requirements", ["requirements.txt", "docker/requirements-runtime.txt", "docker/requirements-analyses.txt"]
)
def test_pinned_requirements_have_no_known_vulnerability(requirements: str) -> None:
    """pip-audit against PyPI's vulnerability data, in its own venv (.venv-audit).

    Needs PyPI's per-release JSON API. Where that is not served, the test is SKIPPED with a reason
    starting "NOT AUDITED" (never a silent pass); DC_REQUIRE_AUDIT=1 (CI with network) makes it fail.
    """
    path = ROOT / requirements
    assert path.exists(), path
    problem = _pypi_answers(*_first_pin(path))
    if problem is not None:
        _not_audited(problem)
    result = subprocess.run(
        [
            str(_pip_audit()),
            "--requirement",
            str(path),
            "--vulnerability-service",
            "pypi",
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    if result.returncode not in (0, 1) or not result.stdout.strip():
        pytest.fail(f"pip-audit did not run: exit {result.returncode}: {result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    vulnerable = {
        f"{d['name']}=={d['version']}": [v["id"] for v in d.get("vulns", [])]
        for d in report.get("dependencies", [])
        if d.get("vulns")
    }
    deps = report.get("dependencies", [])
    unaudited = {d["name"]: d["skip_reason"] for d in deps if "skip_reason" in d}
    if deps and len(unaudited) == len(deps):
        _not_audited(f"every dependency skipped, e.g. {next(iter(unaudited.values()))}")
    assert not unaudited, f"{requirements}: not audited: {unaudited}"
    assert not vulnerable, f"{requirements}: known vulnerabilities: {vulnerable}"
