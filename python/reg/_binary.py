"""Which ``reg`` binary the Python code runs.

In order: the binary installed by this package's own wheel (the one built
from the same commit as this code), then ``$REG_BIN``, then ``reg`` on
``PATH``. The wheel's binary counts only when this very ``reg`` package is
the installed one, so a source checkout on ``sys.path`` next to an
installed wheel does not run that wheel's (maybe older) binary.
"""

import os
import shutil
import sys
from functools import lru_cache
from typing import Optional

from .errors import BinaryNotFoundError

#: The distribution whose wheel carries the binary (python/pyproject.toml).
DISTRIBUTION = "reg-checkpoints"

INSTALL_HINT = (
    "install the wheel (`pip install ./python` from the reg repository, or a built "
    "reg_checkpoints-*.whl), or `cargo install --path crates/reg-cli`, or set REG_BIN to a reg binary"
)


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


@lru_cache(maxsize=1)
def bundled_binary() -> Optional[str]:
    """The ``reg`` this package's wheel installed (in the venv's ``bin/``),
    or None when this package was not installed from the wheel."""
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    here = os.path.realpath(os.path.join(os.path.dirname(__file__), "__init__.py"))
    installed = os.path.realpath(str(dist.locate_file("reg/__init__.py")))
    if here != installed:
        return None
    names = ("reg.exe",) if sys.platform == "win32" else ("reg",)
    for entry in dist.files or ():
        # Scripts are recorded relative to site-packages (../../../bin/reg,
        # or bin/reg for --target installs); the packages' own files start
        # with reg/ or reg_lightning/.
        if entry.name in names and entry.parts[0] not in ("reg", "reg_lightning"):
            path = os.path.realpath(str(dist.locate_file(entry)))
            if _executable(path):
                return path
    return None


def find_binary() -> str:
    """The reg binary to run: the wheel's, else ``$REG_BIN``, else PATH.

    Raises :class:`~reg.BinaryNotFoundError` naming what was tried.
    """
    bundled = bundled_binary()
    if bundled:
        return bundled
    explicit = os.environ.get("REG_BIN")
    if explicit:
        if _executable(explicit):
            return explicit
        raise BinaryNotFoundError(f"REG_BIN={explicit} is not an executable file; " + INSTALL_HINT)
    found = shutil.which("reg")
    if found:
        return found
    raise BinaryNotFoundError("the reg binary was not found: " + INSTALL_HINT)
