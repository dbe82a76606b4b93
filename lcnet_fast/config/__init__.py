"""The run configuration: every number a training run depends on, in one typed, nested dataclass.

Resolution order (later wins): dataclass defaults < ``--preset`` < ``--config file.yaml`` < CLI
``--key value`` overrides. The resolved config is written to ``<run dir>/config.yaml`` so a run can
be repeated from that file alone. Keys are addressed as ``section.field`` (``--optim.lr 1e-3``) or,
when the field name is unique across sections, as the bare field (``--lr 1e-3``); dashes and
underscores are interchangeable (``--batch-size`` == ``--batch_size``).

The defaults are the built-in synthetic job (``python -m lcnet_fast.train`` with no argument): a
tiny randomly initialised backbone that reaches mAP >= 70 on the synthetic test split. The presets
hold the paper's settings.

One job per module, all re-exported here (``from lcnet_fast.config import RunConfig, ...``)::

    sections.py  the dataclasses: every key's type, default and help; RunConfig.validate
    presets.py   the paper's settings (--preset)
    resolve.py   defaults < preset < YAML < overrides; YAML in and out; the CLI token parser
    help.py      --help: every key with its type, default and help, grouped by section

The submodules import each other, never this package, so there is no import cycle.
"""

from lcnet_fast.config.help import ConfigHelpAction, add_config_groups, config_keys
from lcnet_fast.config.presets import PRESETS
from lcnet_fast.config.resolve import (
    apply_overrides,
    canonical_key,
    config_from_dict,
    config_to_dict,
    load_yaml,
    merge_config,
    parse_override_tokens,
    resolve_config,
    save_config,
)
from lcnet_fast.config.sections import (
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
)
from lcnet_fast.errors import ConfigError

__all__ = [
    "ConfigError",
    "ConfigHelpAction",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "PRESETS",
    "RunConfig",
    "TrainConfig",
    "add_config_groups",
    "apply_overrides",
    "canonical_key",
    "config_from_dict",
    "config_to_dict",
    "config_keys",
    "load_yaml",
    "merge_config",
    "parse_override_tokens",
    "resolve_config",
    "save_config",
]
