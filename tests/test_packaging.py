"""Installed from a wheel, not a checkout: the bundled config ships inside the package, so
``runestone.start()`` and the command line work with no path from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ANSWER_WITHOUT_A_PATH = """
import runestone
system = runestone.start()
try:
    response = system.complete(
        {"model": "fast", "messages": [{"role": "user", "content": "Hi"}]}
    )
    print(runestone.__file__)
    print(response.provider, bool(response.text))
finally:
    system.stop()
"""


def python(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run this Python with ``args``; its stdout, once it has exited 0 (else its stderr fails)."""
    result = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    python(
        *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
        *("--quiet", "--wheel-dir", str(out), str(ROOT)),
    )
    [built] = out.glob("runestone-*.whl")
    return built


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_wheel_carries_the_bundled_config(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        bundled = archive.read("runestone/defaults/runestone.yaml").decode()
    assert "runestone/py.typed" in names
    assert bundled == (ROOT / "runestone" / "defaults" / "runestone.yaml").read_text()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_installed_from_the_wheel_it_starts_and_answers_with_no_config_path(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    python("-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy first on the path (not the checkout); the dependencies from here.
    env = {**os.environ, "PYTHONPATH": str(target), "RUNESTONE_LOG_LEVEL": "ERROR"}
    out = python("-c", ANSWER_WITHOUT_A_PATH, cwd=elsewhere, env=env)
    location, answer = out.strip().splitlines()[-2:]
    assert Path(location).is_relative_to(target)
    assert answer == "simulated True"
    out = python("-m", "runestone", "check-config", cwd=elsewhere, env=env)
    assert str(target) in out.splitlines()[0]
