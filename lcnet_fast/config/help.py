"""``python -m lcnet_fast.train --help``: every config key with its type, default and one-line
help, grouped by section (as timm's train.py groups its arguments), generated from the dataclass
fields of lcnet_fast/config/sections.py so that it cannot drift from them.

The keys are listed by argparse but not parsed by it: ``--section.key VALUE`` tokens are what
argparse's parse_known_args leaves over, parsed by parse_override_tokens
(lcnet_fast/config/resolve.py), which keeps bare ``--key``, ``--key=value``, boolean switches and
dash/underscore spellings working, with the precedence command line > --config > --preset >
defaults. ConfigHelpAction adds the groups to the parser only when -h/--help is given, just
before printing the help and exiting.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, get_args, get_origin, get_type_hints

from lcnet_fast.config.sections import RunConfig, field_help, section_types

__all__ = ["ConfigHelpAction", "add_config_groups", "config_keys", "format_default", "type_name"]


def type_name(annotation: Any) -> str:
    """The metavar of a field type: int -> INT, list[float] -> FLOAT,... (comma-separated)."""
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return f"{type_name(item)},..."
    return annotation.__name__.upper()


def format_default(value: Any) -> str:
    """A default as it would be written on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(format_default(v) for v in value)
    if value == "":
        return '""'
    return str(value)


def config_keys() -> list[tuple[str, str, str, str]]:
    """(section.key, type, default, help) of every config field, in section and field order."""
    defaults = RunConfig()
    rows = []
    for section, cls in section_types().items():
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            value = getattr(getattr(defaults, section), f.name)
            rows.append(
                (
                    f"{section}.{f.name}",
                    type_name(hints[f.name]),
                    format_default(value),
                    field_help(f),
                )
            )
    return rows


def add_config_groups(parser: argparse.ArgumentParser, sections=None, note: str = "") -> None:
    """One argument group per config section (all, or those named in `sections`), one entry per
    key (for the help text only); `note` is appended to each group's summary."""
    rows = config_keys()
    for section, cls in section_types().items():
        if sections is not None and section not in sections:
            continue
        summary = " ".join(filter(None, [(cls.__doc__ or "").strip().splitlines()[0], note]))
        group = parser.add_argument_group(f"config section {section!r}", summary)
        for key, kind, default, text in rows:
            if key.split(".", 1)[0] == section:
                # argparse %-formats help strings: a literal % must be doubled
                group.add_argument(
                    f"--{key}", metavar=kind, help=f"{text} (default: {default})".replace("%", "%%")
                )


class ConfigHelpAction(argparse.Action):
    """-h/--help that also lists every config key (or those of `sections`, e.g. ("data",) for
    evaluate), by section, then exits like argparse's own."""

    def __init__(
        self,
        option_strings,
        dest=argparse.SUPPRESS,
        default=argparse.SUPPRESS,
        help=None,
        sections=None,
        note="",
    ):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)
        self.sections, self.note = sections, note

    def __call__(self, parser, namespace, values, option_string=None):
        if parser.usage is None:  # the usage line stays the driver's own options
            own = parser.format_usage().removeprefix("usage: ").rstrip()
            parser.usage = f"{own} [--section.key VALUE ...]"
        add_config_groups(parser, self.sections, self.note)
        parser.print_help()
        parser.exit()
