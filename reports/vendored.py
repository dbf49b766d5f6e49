"""Third-party files shipped with the public dashboard, pinned by SHA-256.

Each is vendored from the npm registry into ``reports/assets/`` (see its ``README.md`` for
how to refresh one) and read only through :meth:`Vendored.read`, which refuses changed
bytes. The artifact audit (:mod:`reports.scan`) knows these files by their digests: a
minified library is code, not a table, and would otherwise be read as one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"


class VendoredFileError(ValueError):
    """A vendored file whose bytes differ from its pinned digest (names the fix)."""


@dataclass(frozen=True)
class Vendored:
    """A third-party file shipped with the site: where it came from and its pinned digest."""

    package: str
    version: str
    file: str
    size: int
    sha256: str
    npm_integrity: str
    licence: str
    licence_size: int
    licence_sha256: str

    def read(self) -> bytes:
        """The file's bytes, refused when they differ from the pinned digest."""
        data = (ASSETS / self.file).read_bytes()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise VendoredFileError(
                f"{ASSETS / self.file}: SHA-256 differs from the pinned {self.sha256} "
                f"({self.package} {self.version}); fix: restore it with `npm pack "
                f"{self.package}@{self.version}` (see reports/assets/README.md)"
            )
        return data

    def read_licence(self) -> bytes:
        data = (ASSETS / self.licence).read_bytes()
        if hashlib.sha256(data).hexdigest() != self.licence_sha256:
            raise VendoredFileError(
                f"{ASSETS / self.licence}: SHA-256 differs from the pinned one; fix: restore "
                "it from the package (see reports/assets/README.md)"
            )
        return data


#: Vega 6.4.0 (BSD-3-Clause), ``build/vega.min.js`` of the npm package (integrity of the
#: package tarball as the npm registry states it).
VEGA = Vendored(
    package="vega",
    version="6.4.0",
    file="vega.min.js",
    size=521_123,
    sha256="8f6a3587cf8d4f42c7e08120e3eb05d067e746d554e39d2dcf52acc0bd5ba28f",
    npm_integrity=(
        "sha512-rHXCq2LpEWCLMjXBEj7hocY9G0/i5TGYRayGGSj06VTF4+l2IG2Z7oeZKCjWbUh/7hTE/mVhbaOPB72wCElh6g=="
    ),
    licence="vega-LICENSE.txt",
    licence_size=3_513,
    licence_sha256="06e0e3485cf04cc197473d343f7d9025089578b3d703ca78c576413201e65a7a",
)
VENDORED = (VEGA,)


#: every pinned digest (library and licence) -> what it is
DIGESTS = {
    digest: f"{v.package} {v.version}" for v in VENDORED for digest in (v.sha256, v.licence_sha256)
}
#: their sizes, so the audit hashes only files that could be one of them
SIZES = frozenset(size for v in VENDORED for size in (v.size, v.licence_size))
