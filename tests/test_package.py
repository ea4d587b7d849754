"""The wheel installs every subpackage as physio_live.* (and nothing bare) and ships the configs."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_wheel_installs_and_imports_outside_the_repo(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(dist),
            "-q",
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("physio_live-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "physio_live" in tops
    assert not tops & {"core", "models", "app", "trainer", "configs", "tests"}, tops
    assert "physio_live/configs/demo.yaml" in names

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True
    )
    # the scratch venv borrows third-party packages (numpy, torch ...) from this one, but not
    # its editable physio_live (a plain path entry does not run the editable finder's .pth)
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = textwrap.dedent(
        """
        import importlib, pathlib
        for mod in ["physio_live", "physio_live.core", "physio_live.models",
                    "physio_live.trainer", "physio_live.app", "physio_live.app.cli",
                    "physio_live.trainer.cli", "physio_live.configs"]:
            m = importlib.import_module(mod)
            assert "site-packages" in m.__file__, m.__file__
            print(mod, m.__file__)
        from physio_live.configs import builtin_config_path
        from physio_live.core import load_config
        assert builtin_config_path("demo").is_file()
        print("demo", load_config().aligner.window)
        """
    )
    out = subprocess.run(
        [str(py), "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True
    ).stdout
    for line in out.splitlines():
        if line.startswith("physio_live"):
            assert str(env_dir) in line.split()[1], line
    assert "demo 4.0" in out
    for script_name in ("physio-live", "physio-train"):
        assert (env_dir / "bin" / script_name).exists()


def test_packages_talk_through_public_names_only():
    """No module imports another package's private module (``physio_live.core._x`` from the app
    or the trainer): each package's ``__init__`` is its interface."""
    import ast

    root = Path(__file__).resolve().parents[1]
    offences = []
    for pkg in ("core", "models", "trainer", "app"):
        for path in sorted((root / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                for name in names:
                    parts = name.split(".")
                    if len(parts) >= 3 and parts[0] == "physio_live" and parts[1] != pkg:
                        if parts[2].startswith("_"):
                            offences.append(f"{path.relative_to(root)}:{node.lineno}: {name}")
    assert not offences, "private modules of another package imported:\n" + "\n".join(offences)
