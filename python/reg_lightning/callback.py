"""Old module path of :mod:`reg.lightning.callback`."""

from reg.lightning.callback import RegistryCallback  # noqa: F401
