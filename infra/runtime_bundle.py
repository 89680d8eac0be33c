"""The runtime bundle: the wheel of this program's own version and the locked wheels it
depends on, built at `pulumi up` and published with the stack.

Why a bundle and not `pip install skyfleet==X` at boot: no public index holds our name (a
stranger could take it), and a host should not need the internet to become an agent.
The bundle is one tar in the fleet's own store, readable only by the hosts' cloud
identities; user data names its SHA-256, and the host installs with
`pip install --no-index --require-hashes` from the tar's own requirements file, so what
runs is exactly what `pulumi up` built, dependencies included.

Reproducible on purpose: the wheel is built with a fixed SOURCE_DATE_EPOCH and the tar
with fixed metadata, so the same source and lock give the same bytes on any machine, and
an unrelated `pulumi up` never changes the hash (which would replace every host).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra.config import StackConfigError, key
from infra.images import PYTHON as HOST_PYTHON

HOST_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
"""Wheel tags Debian 12 x86_64 (glibc 2.36) runs; only binary wheels, no build at boot."""
REQUIREMENTS = "requirements.txt"
EPOCH = 315532800
"""1980-01-01, the earliest time a zip (wheel) can hold: every build stamps the same."""
SOURCE_ROOT = Path(__file__).resolve().parent.parent
"""The checkout this program runs from: the wheel is built from it, not from the stack
folder (a test's copy of the stack files holds no source)."""
BUNDLE_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "skyfleet/runtime"
"""Built bundles, one per source fingerprint: a second `pulumi up` of the same tree
reuses the file (the tools' own cache, beside the Pulumi CLI build)."""
_SOURCES = ("pyproject.toml", "README.md", "runtime/skyfleet", "infra")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "venv", "*.egg-info")


@dataclass(frozen=True, slots=True)
class RuntimeBundle:
    path: Path
    sha256: str
    version: str

    @property
    def object_name(self) -> str:
        """The store object's name: content-addressed, so a new build is a new object
        and a host installing the old one is never handed half of the new."""
        return f"runtime/skyfleet-{self.version}-{self.sha256[:16]}.tar"


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise StackConfigError(f"runtime bundle: {what} failed (exit {done.returncode}): {tail}")


def _locked(lock: Path) -> list[str]:
    """`name==version` lines of the project's lock, the constraint on every dependency."""
    return [
        line.strip() for line in lock.read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    ]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _wheel_requirement(wheel: Path) -> str:
    """`name==version --hash=sha256:...` for a wheel file, from its file name (PEP 427)."""
    name, version = wheel.name.split("-")[:2]
    return f"{name.replace('_', '-').lower()}=={version} --hash=sha256:{_sha256(wheel)}"


def _build_wheels(root: Path, into: Path) -> None:
    stage = into.parent / "source"
    for part in _SOURCES:
        src, dst = root / part, stage / part
        if src.is_dir():
            shutil.copytree(src, dst, ignore=_IGNORED)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    _run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(into),
          str(stage)], "building the skyfleet wheel", env)
    ours = next(into.glob("skyfleet-*.whl"))
    constraints = into.parent / "constraints.txt"
    constraints.write_text("\n".join(_locked(root / REQUIREMENTS)) + "\n")
    platforms = [arg for tag in HOST_PLATFORMS for arg in ("--platform", tag)]
    _run([*pip, "download", "-q", "-d", str(into), "--only-binary=:all:", *platforms,
          "--python-version", HOST_PYTHON, "--implementation", "cp",
          "-c", str(constraints), str(ours), "pip"],
         "downloading the locked dependencies for Debian 12 (python 3.11, x86_64)")


def _tar(wheels: Path, out: Path) -> None:
    """A tar with one fixed owner, mode and time per member, in name order."""
    files = sorted(wheels.glob("*.whl"))
    listing = "".join(_wheel_requirement(w) + "\n" for w in files if not w.name.startswith("pip-"))
    members = [(REQUIREMENTS, listing.encode())] + [(w.name, w.read_bytes()) for w in files]
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(data))


def build_bundle(version: str, cache: Path, root: Path = SOURCE_ROOT,
                 index: str = "") -> RuntimeBundle:
    """The bundle of `version`: built from the program's source in `root` (once per
    source and lock), or, with a private `index`, that version's wheel and its
    dependencies taken from the index (once per index and version: published versions
    do not change). Cached under `cache`."""
    if index:
        tag = hashlib.sha256(f"{index}\0{version}".encode()).hexdigest()[:16]
        return _cached(cache / f"skyfleet-{version}-index-{tag}.tar", version,
                       lambda wheels: _download_from_index(index, version, wheels))
    import skyfleet

    if version != skyfleet.__version__:
        raise StackConfigError(
            f"{key('runtimeVersion')}: {version!r} has no wheel: this program builds "
            f"skyfleet {skyfleet.__version__} (or name a private index holding it in "
            f"{key('runtimeIndex')})"
        )
    if not (root / "pyproject.toml").is_file():
        raise StackConfigError(
            f"runtime bundle: {root} holds no pyproject.toml: run the program from its "
            "source checkout, which `pulumi up` builds the hosts' wheel from"
        )
    return _cached(cache / f"skyfleet-{version}-{_source_fingerprint(root)}.tar", version,
                   lambda wheels: _build_wheels(root, wheels))


def _cached(target: Path, version: str, fill: Callable[[Path], None]) -> RuntimeBundle:
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as work:
            wheels = Path(work) / "wheels"
            fill(wheels)
            partial = Path(work) / "bundle.tar"
            _tar(wheels, partial)
            partial.replace(target)
    return RuntimeBundle(target, _sha256(target), version)


def _download_from_index(index: str, version: str, into: Path) -> None:
    platforms = [arg for tag in HOST_PLATFORMS for arg in ("--platform", tag)]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "download", "-q",
         "-d", str(into), "--index-url", index, "--only-binary=:all:", *platforms,
         "--python-version", HOST_PYTHON, "--implementation", "cp",
         f"skyfleet=={version}", "pip"], capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise StackConfigError(
            f"{key('runtimeVersion')}: {version!r} has no wheel for Debian 12 (python "
            f"{HOST_PYTHON}, x86_64) on {key('runtimeIndex')} {index}: {tail}")


def _source_fingerprint(root: Path) -> str:
    """Hash of every file the wheel is built from and of the lock."""
    digest = hashlib.sha256()
    paths: list[Path] = [root / REQUIREMENTS]
    for part in _SOURCES:
        src = root / part
        paths += sorted(
            p for p in src.rglob("*")
            if p.is_file() and not any(
                seg in ("__pycache__", "venv") or seg.endswith(".egg-info") for seg in p.parts
            ) and p.suffix != ".pyc"
        ) if src.is_dir() else [src]
    for path in paths:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
