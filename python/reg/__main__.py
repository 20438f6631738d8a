"""``python -m reg ARGS...`` runs the reg binary (the wheel's, else
``$REG_BIN``, else ``PATH``) with ARGS, as ``reg ARGS...`` would."""

import os
import subprocess
import sys

from ._binary import find_binary
from .errors import RegError


def main() -> int:
    """Run the binary; return its exit code (POSIX: replace this process)."""
    try:
        binary = find_binary()
    except RegError as e:
        print(f"reg: error: {e}", file=sys.stderr)
        return 1
    argv = [binary, *sys.argv[1:]]
    if os.name == "posix":
        sys.stdout.flush()
        os.execv(binary, argv)
    return subprocess.call(argv)


if __name__ == "__main__":
    sys.exit(main())
