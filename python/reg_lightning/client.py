"""Old module path of the client: :class:`reg.Registry` and the errors."""

from reg._binary import find_binary  # noqa: F401
from reg.errors import BinaryNotFoundError as RegNotFoundError  # noqa: F401
from reg.errors import RegError  # noqa: F401
from reg.registry import Registry as RegClient  # noqa: F401
