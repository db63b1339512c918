"""The README's CPU-only install line cannot be undone by the install that follows it.

The line puts torch and torchvision from PyTorch's CPU index in place at pinned versions; the plain
`pip install -e ".[test]"` after it must keep them (a torch it replaced would come back as the CUDA
build). Checked without the CPU index (unreachable here) and without any download: the pins against
pyproject.toml's specifiers, and pip's resolver in the installed environment with no index at all.
"""

import json
import os
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def cpu_line() -> str:
    lines = [line for line in README.splitlines() if CPU_INDEX in line and line.startswith("pip install")]
    assert len(lines) == 1, f"the README should give one CPU-only install line, found {lines}"
    return lines[0]


def pins() -> dict[str, Version]:
    return {name: Version(v) for name, v in re.findall(r"\b(torch|torchvision)==(\S+)", cpu_line())}


def requirements() -> list[str]:
    """What `pip install -e ".[test]"` asks for: pyproject.toml's dependencies and its test extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["test"]]


def dependencies() -> dict[str, Requirement]:
    return {Requirement(r).name: Requirement(r) for r in requirements()}


def test_the_cpu_line_pins_torch_and_torchvision_from_the_cpu_index():
    line = cpu_line()
    assert f"--index-url {CPU_INDEX}" in line  # not --extra-index-url: PyPI's CUDA build could win
    assert set(pins()) == {"torch", "torchvision"}, line


def test_the_pins_are_versions_pyproject_allows():
    deps = dependencies()
    for name, pinned in pins().items():
        assert deps[name].specifier.contains(pinned, prereleases=True), f"{name}=={pinned} vs {deps[name]}"


def test_the_pins_are_a_released_pair():
    # PyTorch's compatibility table: torchvision 0.(N+15) is built for torch 2.N (0.15 ↔ 2.0, 0.29 ↔ 2.14).
    torch, torchvision = pins()["torch"], pins()["torchvision"]
    assert (torch.major, torchvision.major, torchvision.minor) == (2, 0, torch.minor + 15)


def test_the_cpu_line_comes_before_the_plain_install():
    assert README.index(cpu_line()) < README.index("pip install -e ")


def test_pip_install_after_the_cpu_pins_replaces_nothing(tmp_path):
    """pip's own resolver, asked for what the README's install asks for (pyproject.toml's requirements,
    read here, so no build backend is needed) on top of the pinned torch and torchvision, with no
    index: it may only use what is installed, so anything it would replace or add fails the
    resolution or shows in its report. Runs where the installed pair is the pinned one (a CPU build
    counts: `==2.14.1` matches 2.14.1+cpu), as in CI."""
    for name, pinned in pins().items():
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            pytest.skip(f"{name} is not installed")
        if installed.public != pinned.public:
            pytest.skip(f"installed {name} {installed} is not the README's pin {pinned}")
    report = tmp_path / "report.json"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--no-index",
        "--quiet",
        "--report",
        str(report),
    ]
    cmd += [*requirements(), *(f"{name}=={v}" for name, v in pins().items())]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    would_install = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert would_install == []
