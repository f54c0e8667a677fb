#!/usr/bin/env python3
"""Fetch Debian's Prometheus tools (promtool, alertmanager) into the project's cache.

The tests check the shipped Prometheus rules with ``promtool test rules`` and deliver alerts
to a real Alertmanager on loopback. Both come from Debian's packages (``prometheus``,
``prometheus-alertmanager``). Installing them with ``apt-get install`` would start system
services and needs root; instead this script downloads the .deb files with
``apt-get download`` (refreshing the package lists once if they are missing, which does
need root, as on CI) and unpacks them with ``dpkg -x`` into ``<cache>/root``. Done once,
then skipped. The only files put outside the cache are Alertmanager's templates, at the fixed
path Debian's binary reads them from.

Usage: ``python3 scripts/debian_tools.py fetch`` prints the directory holding the binaries;
``python3 scripts/debian_tools.py path promtool`` prints one binary's path.
Stdlib only. Environment: ``LABELWATCH_DEBIAN_CACHE`` (default ``<repo>/.cache/debian``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = ("prometheus", "prometheus-alertmanager")
BINARIES = ("promtool", "prometheus", "alertmanager")
_BIN_NAMES = {"alertmanager": "prometheus-alertmanager"}  # Debian's name for the binary

REPO = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    return Path(os.environ.get("LABELWATCH_DEBIAN_CACHE", REPO / ".cache" / "debian"))


def binary(name: str) -> Path:
    """Where ``name`` (promtool, prometheus, alertmanager) is after :func:`fetch`."""
    return cache_dir() / "root" / "usr" / "bin" / _BIN_NAMES.get(name, name)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


# Debian builds Alertmanager with its notification templates at a fixed path (no flag moves
# it); the unpacked package has them under <cache>/root, so they are copied there.
ALERTMANAGER_TEMPLATES = Path("/usr/share/prometheus/alertmanager")


def _install_templates() -> None:
    unpacked = cache_dir() / "root" / ALERTMANAGER_TEMPLATES.relative_to("/")
    try:
        for template in sorted(unpacked.glob("*.tmpl")):
            target = ALERTMANAGER_TEMPLATES / template.name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(template, target)
    except OSError as exc:
        sys.exit(
            f"debian_tools: Alertmanager reads its templates from {ALERTMANAGER_TEMPLATES} "
            f"(as the prometheus-alertmanager package installs them); copying failed: {exc}"
        )


def fetch() -> Path:
    """Download and unpack the packages (once); returns the directory of the binaries."""
    if all(binary(name).exists() for name in BINARIES):
        _install_templates()
        return binary("promtool").parent
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    result = _run(["apt-get", "download", *PACKAGES], debs)
    if result.returncode != 0:
        update = _run(["apt-get", "update", "-qq"], debs)
        if update.returncode != 0:
            sys.exit(
                "debian_tools: apt-get download failed and apt-get update could not refresh "
                f"the package lists (root needed):\n{result.stderr}{update.stderr}"
            )
        result = _run(["apt-get", "download", *PACKAGES], debs)
        if result.returncode != 0:
            sys.exit(f"debian_tools: apt-get download failed:\n{result.stderr}")
    root = cache_dir() / "root"
    for deb in sorted(debs.glob("*.deb")):
        unpack = _run(["dpkg", "-x", str(deb), str(root)], debs)
        if unpack.returncode != 0:
            sys.exit(f"debian_tools: dpkg -x {deb.name} failed:\n{unpack.stderr}")
    missing = [name for name in BINARIES if not binary(name).exists()]
    if missing:
        sys.exit(f"debian_tools: unpacked, but {missing} not found under {root}")
    _install_templates()
    return binary("promtool").parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch")
    path = sub.add_parser("path")
    path.add_argument("name", choices=sorted(BINARIES))
    args = parser.parse_args()
    if args.command == "fetch":
        print(fetch())
    else:
        print(binary(args.name))


if __name__ == "__main__":
    main()
