"""User-facing error types: what goes wrong because of the input (config, files, data, weights,
environment), as opposed to a bug. Every command line tool reports them as one line, ``error:
<message>``, and exit code 2 (lcnet_fast/engine/cli.py); everything else keeps its traceback.

A leaf module: it imports nothing, so every layer (ops, models, data, inference, engine, the
drivers) may import it. The modules that raise these errors re-export them under their old
names (``lcnet_fast.config.ConfigError``, ``lcnet_fast.checkpoint.CheckpointError``, ...).
"""

__all__ = [
    "BackendUnavailableError",
    "CheckpointError",
    "CheckpointIntegrityError",
    "CheckpointMismatchError",
    "CollectiveTimeoutError",
    "ConfigError",
    "DatasetError",
    "DivergenceError",
    "EmptySplitError",
    "ImageLoadError",
    "ExportError",
    "NonFiniteLossError",
    "NonFiniteScoresError",
    "OutputError",
    "USER_ERRORS",
    "VisualizeError",
]


class ConfigError(ValueError):
    """A config key does not exist, a value has the wrong type, or a value is out of range."""


class ImageLoadError(OSError):
    """An image file is missing, truncated or not an image. The message names the file."""


class DatasetError(ValueError):
    """An annotation file or dataset directory is malformed, empty, or disagrees with the classes
    it must have (unknown class name, other class columns). The message names the file and, where
    there is one, the line or entry."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or not an lcnet_fast checkpoint."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint does not fit the model/dataset it is loaded for; the message says how."""


class CheckpointIntegrityError(CheckpointError):
    """A checkpoint's contents are damaged (do not match their checksum) or hold NaN/inf weights,
    or such weights were about to be saved. The message names the file and the tensor."""


class EmptySplitError(ValueError):
    """A split that training or evaluation needs has no images."""


class NonFiniteLossError(FloatingPointError):
    """The training loss or gradient norm became NaN/inf; the message names the step."""


class DivergenceError(FloatingPointError):
    """Training diverged: the weights grew beyond train.max_weight_growth times their initial norm,
    or an optimizer step made them NaN/inf. The message names the step and the bound."""


class NonFiniteScoresError(FloatingPointError):
    """A model produced NaN/inf scores on an evaluation split (its weights diverged)."""


class OutputError(OSError):
    """An output file or directory cannot be created or written (disk full, permission denied, a
    file where a directory should be, ...). The message names the path and the reason."""


class CollectiveTimeoutError(RuntimeError):
    """A collective waited train.collective_timeout_s for the other ranks (or lost its
    connection to one); the message names the ranks that stopped responding."""


class BackendUnavailableError(RuntimeError):
    """A backend was explicitly requested but cannot run the op here."""


class ExportError(RuntimeError):
    """Export failed or the exported model does not match PyTorch (the message says by how much)."""


class VisualizeError(ValueError):
    """A picture cannot be drawn for this input (the message says why)."""


#: The errors every tool reports as one line. ExportError and VisualizeError are not here: only
#: their own tools catch them.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    CheckpointError,
    EmptySplitError,
    NonFiniteLossError,
    FileNotFoundError,
    OutputError,
    NonFiniteScoresError,
    BackendUnavailableError,
    DivergenceError,
    CollectiveTimeoutError,
    ImageLoadError,
    DatasetError,
)
