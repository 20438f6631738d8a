"""Old module path of :mod:`reg.lightning.checkpoint_io`."""

from reg.lightning.checkpoint_io import RegCheckpointIO, best_model_paths  # noqa: F401
