"""Installing: the scripts' environment step (PEP 668 Pythons, pip-less venvs, keeping torch), the wheel,
pytest's warning settings.

The script tests run scripts/try.sh and scripts/test.sh with T2E_SETUP_ONLY=1 (they stop after choosing the
interpreter and torch) from a copy of scripts/ in a temporary folder, so the checkout never gets a .venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from tests.support import ROOT

SCRIPTS = ["try.sh", "test.sh"]


def fake_python(
    where: Path, *, externally_managed: bool = True, ensurepip: bool = True, packages: bool = True
) -> Path:
    """A Python outside any venv, like Debian's: a copy of this interpreter's binary whose prefix is `where`.

    Its stdlib is a folder of links to ours, plus an EXTERNALLY-MANAGED marker (pip then refuses to install,
    PEP 668); without `ensurepip` it is Debian's python3 without python3-venv. Its site-packages sees this
    environment's packages (torch, pip ...) through a .pth file, or nothing without `packages`.
    """
    base = Path(sys.base_prefix)
    exe = Path(sys.executable).resolve()
    real = base / "bin" / exe.name
    stdlib = Path(
        sysconfig.get_paths(vars={"installed_base": sys.base_prefix, "base": sys.base_prefix})["stdlib"]
    )
    if not real.is_file() or not (stdlib / "os.py").is_file():
        pytest.skip("this interpreter's layout cannot be copied")
    (where / "bin").mkdir(parents=True)
    shutil.copy2(real, where / "bin" / "python3")
    lib = where / "lib" / stdlib.name
    lib.mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name == "ensurepip" and not ensurepip:
            continue
        if entry.name != "site-packages":
            (lib / entry.name).symlink_to(entry)
    (lib / "site-packages").mkdir()
    if packages:
        (lib / "site-packages" / "_host.pth").write_text("\n".join(host_site_packages()) + "\n")
    if externally_managed:
        (lib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=a system Python (test)\n")
    python = where / "bin" / "python3"
    probe = subprocess.run(
        [python, "-c", "import sys; print(sys.prefix == sys.base_prefix)"], capture_output=True, text=True
    )
    if probe.returncode != 0 or probe.stdout.strip() != "True":
        pytest.skip(f"the copied interpreter does not start: {probe.stderr[-300:]}")
    return python


def checkout_copy(tmp_path: Path) -> Path:
    """Just the scripts: the setup step reads nothing else."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", repo / "scripts", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return repo


def run_setup(
    repo: Path,
    script: str,
    python: Path,
    extra_env: dict[str, str] | None = None,
    drop_pip_settings: bool = False,
) -> subprocess.CompletedProcess:
    """The script's setup step with `python` first on PATH and no virtualenv active."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH")
        and not (drop_pip_settings and k.startswith("PIP_"))
    }
    env.update(PATH=f"{python.parent}{os.pathsep}{env['PATH']}", T2E_SETUP_ONLY="1", **(extra_env or {}))
    return subprocess.run(
        ["bash", str(repo / "scripts" / script)], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_an_externally_managed_python_gets_a_venv_and_keeps_its_torch(tmp_path: Path, script: str) -> None:
    python = fake_python(tmp_path / "system")
    refused = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "six"], capture_output=True, text=True
    )
    assert "externally-managed-environment" in refused.stderr  # the situation of 14.7 really is set up
    torch_before = subprocess.run(
        [python, "-c", "import torch; print(torch.__file__)"], capture_output=True, text=True, check=True
    ).stdout.strip()

    repo = checkout_copy(tmp_path)
    result = run_setup(repo, script, python)

    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    venv_python = repo / ".venv" / "bin" / "python"
    assert f"python: {venv_python}" in result.stdout
    assert "keeping it" in result.stdout  # the torch the system Python has is used, not reinstalled
    torch_in_venv = subprocess.run(
        [venv_python, "-c", "import torch; print(torch.__file__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert torch_in_venv == torch_before
    assert subprocess.run([venv_python, "-m", "pip", "--version"], capture_output=True).returncode == 0

    again = run_setup(repo, script, python)  # a second run reuses .venv
    assert again.returncode == 0 and "creating .venv" not in again.stdout


def test_a_python_without_ensurepip_is_told_which_apt_package_to_install(tmp_path: Path) -> None:
    # No site-packages either: a system pip would otherwise serve the venv (and rightly so)
    python = fake_python(tmp_path / "system", ensurepip=False, packages=False)
    result = run_setup(checkout_copy(tmp_path), "try.sh", python)
    assert result.returncode == 1
    assert "sudo apt-get install python3-venv" in result.stderr
    assert "Traceback" not in result.stderr


def fake_torch_wheel(folder: Path, version: str) -> Path:
    """A stand-in for torch: enough for pip to install it and for `import torch` to print its version."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("torch/__init__.py", f"__version__ = {version!r}\n")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        zf.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA GPU")
@pytest.mark.parametrize("cpu_index_up", [True, False])
def test_without_torch_or_gpu_the_cpu_index_is_tried_then_the_pin(tmp_path: Path, cpu_index_up: bool) -> None:
    python = fake_python(tmp_path / "system", packages=False)
    index = tmp_path / "cpu-index"  # a PEP 503 "simple" index, as PyTorch's is
    wheel = fake_torch_wheel(index / "torch", "2.99.0")
    (index / "torch" / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    pin = fake_torch_wheel(tmp_path / "pypi", "2.13.0")
    repo = checkout_copy(tmp_path)
    # None of this machine's pip settings: only the two stand-in sources exist for pip.
    result = run_setup(
        repo,
        "try.sh",
        python,
        {
            "PIP_CONFIG_FILE": os.devnull,
            "T2E_TORCH_CPU_INDEX": index.as_uri() if cpu_index_up else "http://127.0.0.1:9/",
            "T2E_TORCH_PIN": str(pin),
        },
        drop_pip_settings=True,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    version = subprocess.run(
        [repo / ".venv" / "bin" / "python", "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == ("2.99.0" if cpu_index_up else "2.13.0")
    assert ("did not answer" in out) is not cpu_index_up


def host_site_packages() -> list[str]:
    """This environment's site-packages (torch, numpy, Pillow, discord.py ...) for a venv to reuse."""
    return [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]


def setuptools_builds_offline() -> bool:
    """pyproject.toml asks for setuptools>=68; a Python 3.11 venv's own is 65, and 3.12+ venvs have none.

    Where it is missing or older, the wheel is built in pip's isolated environment (which fetches setuptools).
    """
    try:
        return int(version("setuptools").split(".")[0]) >= 68
    except PackageNotFoundError:
        return False


@pytest.mark.slow
def test_a_built_wheel_ships_the_checkpoint_and_draws_outside_the_checkout(tmp_path: Path) -> None:
    # Build from a copy: pip's in-tree build would leave build/ in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy2(ROOT / name, src / name)
    for name in ["model", "bot", "checkpoints"]:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pt.train"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    isolation = ["--no-build-isolation"] if setuptools_builds_offline() else []
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", *isolation, str(src), "-w", str(wheels)],
        check=True,
        cwd=src,
        timeout=300,
    )
    (wheel,) = wheels.glob("text2emoji-*.whl")
    assert "model/checkpoints/base.pt" in zipfile.ZipFile(wheel).namelist()

    # A fresh venv that sees this environment's dependencies but not its (editable) text2emoji: a .pth that
    # lists site-packages folders adds them to sys.path without running their own .pth files.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    vpython = venv / "bin" / "python"
    site = subprocess.run(
        [vpython, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "_host_deps.pth").write_text("\n".join(host_site_packages()) + "\n")
    subprocess.run([*pip, "--python", str(vpython), "install", "-q", "--no-deps", str(wheel)], check=True)

    run = tmp_path / "elsewhere"
    run.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = run / "out"
    gen = subprocess.run(
        [venv / "bin" / "emoji-gen", "축하해", "--count", "2", "--seed", "0", "--out", str(out)],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gen.returncode == 0, gen.stderr
    assert sorted(p.name for p in out.iterdir()) == ["0000_0.png", "0000_1.png"]

    code = textwrap.dedent(
        """
        import model
        from model import Generator
        from model.checkpoint import SHIPPED_CHECKPOINT
        import bot.cogs.generate  # every package made it into the wheel
        gen = Generator.load(None, device="cpu")
        (image,) = gen.generate(["pizza"], count=1, seed=0)[0]
        print(model.__file__)
        print(SHIPPED_CHECKPOINT, SHIPPED_CHECKPOINT.with_name("maskgit.pt").is_file(), image.size)
        from model.upscale import SHIPPED_REFINER, shared_refiner
        print(SHIPPED_REFINER, shared_refiner("cpu").meta["kind"])  # the trained refiner, not the fallback
        """
    )
    loaded = subprocess.run(
        [vpython, "-c", code], cwd=run, env=env, capture_output=True, text=True, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr
    module_file, shipped, refiner = loaded.stdout.splitlines()[-3:]
    assert module_file.startswith(site), "model was imported from the checkout, not the wheel"
    assert shipped == f"{site}/model/checkpoints/base.pt True (72, 72)"
    assert refiner == f"{site}/model/checkpoints/upscaler.pt upscaler"


def test_the_package_list_names_every_package_of_model_and_bot() -> None:
    """pyproject.toml lists packages by hand (a mapped folder cannot be found): new ones must be added."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("model", "bot")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert listed == found | {"model.checkpoints"}


def test_pytest_sets_the_asyncio_loop_scope(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.getini("asyncio_default_fixture_loop_scope") == "function"


def test_only_discord_pys_audioop_warning_is_filtered(tmp_path: Path) -> None:
    (tmp_path / "test_warns.py").write_text(
        textwrap.dedent(
            """
            import warnings

            def test_warns():
                message = "'audioop' is deprecated and slated for removal in Python 3.13"
                warnings.warn(message, DeprecationWarning)
                warnings.warn("our own deprecation", DeprecationWarning)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml")]
        + ["--rootdir", str(tmp_path), str(tmp_path / "test_warns.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout
    assert "our own deprecation" in result.stdout
    assert "'audioop' is deprecated" not in result.stdout
