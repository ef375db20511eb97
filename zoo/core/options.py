"""A stage's options, stated once: each field of a stage's request carries its default, its help line and how
the command line spells it, and `zoo.cli` builds its options from them (`add_options`) and reads them back
(`values`). So the Python API and the command line share one default, one check and one description.

    @dataclass(frozen=True)
    class ExportOptions:
        opset: int = opt(18, "ONNX opset", type=at_least(7))

The argument types below are also the checks a request runs on values given from Python (`check_fields`).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import field

from zoo.core.errors import ZooError


def opt(default, help: str, *, flag: str | None = None, type=None, choices=None, metavar: str | None = None,
        group: str | None = None, action: str | None = None):
    """A request field with its command-line form. A bool defaulting to False is a switch (`--flag`); `type`
    parses and checks a value (also for values given from Python); `flag` spells it otherwise than --field-name;
    `action` is argparse's (e.g. store_false for a --no-... switch)."""
    meta = {"help": help, "flag": flag, "type": type, "choices": choices, "metavar": metavar, "group": group,
            "action": action}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda d=default: d.copy(), metadata=meta)
    return field(default=default, metadata=meta)


def cli_fields(cls) -> list[dataclasses.Field]:
    """The fields of a request that the command line sets."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def add_options(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """`cls`'s fields as options of `parser` (in groups where a field names one), defaults from the fields."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in cli_fields(cls):
        if f.name in skip:
            continue
        m = f.metadata
        where = parser
        if m["group"]:
            where = groups.get(m["group"]) or groups.setdefault(m["group"], parser.add_argument_group(m["group"]))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kwargs = {"dest": f.name, "help": m["help"], "default": default}
        switch = m["action"] in ("store_true", "store_false") or (default is False and m["type"] is None)
        if switch:
            kwargs["action"] = m["action"] or "store_true"
        else:
            kwargs.update({k: m[k] for k in ("type", "choices", "metavar", "action") if m[k] is not None})
        where.add_argument(m["flag"] or "--" + f.name.replace("_", "-"), **kwargs)


def values(cls, args: argparse.Namespace, **given):
    """A request of type `cls` from parsed arguments (the fields the command line sets), plus `given`."""
    names = {f.name for f in cli_fields(cls)}  # not FolderOptions.seed from zoo train's --seed
    return cls(**{k: v for k, v in vars(args).items() if k in names and k not in given}, **given)


def flag_of(cls, name: str) -> str:
    """How the command line spells field `name` of `cls` (advice names the option the user can change)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.metadata.get("flag") or "--" + name.replace("_", "-")


def check_fields(request) -> None:
    """Run each field's type check on a value given from Python (the command line ran them while parsing)."""
    for f in cli_fields(type(request)):
        kind, value = f.metadata["type"], getattr(request, f.name)
        if value is None:
            continue
        if kind is not None and kind not in (int, float, str):
            try:
                kind(value if isinstance(value, str) else _as_text(value))
            except argparse.ArgumentTypeError as e:
                raise ZooError(f"{flag_of(type(request), f.name)}: {e}") from None
        if f.metadata["choices"] and value not in f.metadata["choices"]:
            raise ZooError(f"{flag_of(type(request), f.name)}: {value!r} is not one of the choices; choose from "
                           f"{', '.join(map(str, f.metadata['choices']))}")


def _as_text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


# ------------------------------------------------------------ the parser
class Help(argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help line (unless the help already says it, or it is a switch), examples kept
    as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, (), argparse.SUPPRESS) or not action.option_strings \
                or action.nargs == 0:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """Usage mistakes in one line, like every other zoo error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command_flags(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Each command's options, e.g. {"train": {"--out", ...}, ...}."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {o for a in p._actions for o in a.option_strings} for name, p in sub.choices.items()}


# ------------------------------------------------------------ argument types (also checks from Python)
def at_least(low: int):
    """An integer >= low (the range is also stated in --help)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def non_negative(unit: str, example: str):
    """A number of `unit` >= 0 (NaN refused)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value >= 0:  # also NaN
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit} >= 0 (e.g. {example})")
        return value
    parse.__name__ = f"{unit} >= 0"
    return parse


def fraction(text: str) -> float:
    """A fraction in (0, 0.5]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in (0, 0.5] (e.g. 0.1)")
    return value


def batches(text: str) -> list[int]:
    """One batch size or a comma list of them, each >= 1."""
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a batch size or a comma list of them (e.g. 1,16,256)") \
            from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return values


def split(value: str | tuple | list | None) -> tuple[str, ...]:
    """A comma list ("fp32, int8") or a sequence, as a tuple of its non-empty items."""
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return tuple(x for x in (value or "").replace(" ", "").split(",") if x)
