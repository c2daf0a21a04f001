#!/usr/bin/env python3
"""Writes a slim copy of a Debian root filesystem tarball: without apt's
package lists, manual pages, info pages, translations and documentation
(each package's copyright file stays), plus a dpkg configuration that keeps
packages installed later from adding them back. Used by
scripts/container_test.sh to make the debian:bookworm-slim base image from
the debootstrap tarball, as no registry is reachable.

    slim_rootfs.py IN.tar OUT.tar
"""
import io
import re
import sys
import tarfile

DROP = re.compile(
    r"^\./(var/lib/apt/lists/.+|var/cache/apt/.+\.bin|usr/share/(man|info|locale|lintian)/.+"
    r"|usr/share/doc/[^/]+/(?!copyright$).+)$")

DPKG_CFG = b"""# Installed by llmload's slim base image: no documentation, manual pages
# or translations from packages installed later (copyright files stay).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
"""


def main(src: str, dst: str) -> None:
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for member in tin:
            if DROP.match(member.name):
                continue
            data = tin.extractfile(member) if member.isfile() else None
            tout.addfile(member, data)
        info = tarfile.TarInfo("./etc/dpkg/dpkg.cfg.d/llmload-slim")
        info.size = len(DPKG_CFG)
        info.mode = 0o644
        tout.addfile(info, io.BytesIO(DPKG_CFG))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
