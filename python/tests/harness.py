"""A tiny test runner for the interop suites: each check runs once, its
failure is printed with the traceback, and the last line is the
`N passed, M failed` the suites report (tests/interop/run.sh)."""

import os
import sys
import traceback
from typing import Callable, List, Optional, Tuple

RESULTS: List[Tuple[str, Optional[str]]] = []

#: Checks of directory versions (issue 13: `reg push DIR`).
NEEDS_DIRS = "[directories] "


def check(name: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Run the decorated function now; record pass or the traceback."""

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        try:
            fn()
            RESULTS.append((name, None))
            print(f"ok   {name}", flush=True)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - every failure (DCP raises BaseException)
            tb = traceback.format_exc()
            RESULTS.append((name, tb))
            print(f"FAIL {name}\n{tb}", flush=True)
        return fn

    return wrap


def finish() -> None:
    """Print the summary line and exit 1 if anything failed."""
    failed = [n for n, tb in RESULTS if tb]
    for n in failed:
        print(f"failed: {n}")
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed", flush=True)
    sys.exit(1 if failed else 0)


def fixtures() -> str:
    """tests/fixtures of the repository ($ROOT, else found from this file)."""
    root = os.environ.get("ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    return os.path.join(root, "tests", "fixtures")


def assert_installed(module) -> None:
    """The module was imported from the installed wheel, not the source tree."""
    src = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    where = os.path.realpath(module.__file__)
    assert not where.startswith(src + os.sep), f"{module.__name__} imported from the source tree: {where}"
