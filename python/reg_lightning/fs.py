"""Old module path of :mod:`reg.fs`."""

from reg.fs import RegFileSystem, fetch, parse, register  # noqa: F401
