"""A Debian 12 root filesystem like the clouds' Debian 12 images, made once by
debootstrap from Debian's packages and cached on the machine.

The package set is what the boot path uses of Debian's cloud images (cloud-init with its
python3 3.11, systemd, curl and CA certificates, iproute2, sudo, locales for cloud-init's
locale module); python3-venv and pip are
left out on purpose, as on the images, because the bootstrap must not need them.
python3-cffi-backend is named only because debootstrap's resolver cannot satisfy
python3-cryptography's virtual dependency on it (apt would).

Boots never change the cache: each one runs on a throwaway overlay
(`systemd-nspawn --volatile=overlay`). The NoCloud datasource is configured here, as a
cloud's image has its own datasource: the user data is applied exactly as on a cloud.
Run `python -m tests.boot.rootfs` to build it ahead of the tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("cloud-init", "python3-cffi-backend", "curl", "ca-certificates", "systemd-sysv",
            "iproute2", "sudo", "locales")
DATASOURCE = "datasource_list: [ NoCloud, None ]\n"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "skyfleet/rootfs"


def rootfs_path() -> Path:
    recipe = "\n".join([SUITE, MIRROR, *PACKAGES, DATASOURCE])
    return CACHE / f"debian-12-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def ensure_rootfs() -> Path:
    """The cached root filesystem, built first if absent (about a minute)."""
    target = rootfs_path()
    if (target / "etc/os-release").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
         str(partial), MIRROR], capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-10:] + done.stderr.splitlines()[-10:])
        raise RuntimeError(f"debootstrap failed (exit {done.returncode}):\n{tail}")
    (partial / "etc/cloud/cloud.cfg.d/90-skyfleet-boot-test.cfg").write_text(DATASOURCE)
    # Images ship without a machine id; systemd makes one at first boot.
    (partial / "etc/machine-id").write_text("")
    partial.rename(target)
    return target


if __name__ == "__main__":
    print(ensure_rootfs())
    sys.exit(0)
