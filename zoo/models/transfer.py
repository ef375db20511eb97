"""Trained weights onto a model built for another dataset: the classifier's rows follow the class names, and
the first convolution follows the channels.

    state, said = transfer_state(model, state, source_classes=mnist.class_names, target_classes=folder.class_names)
    said.line()      # "head: 10 of 10 classes mapped by name; input: ..."
    said.record()    # {"head": "map", "mapped": [...], "fresh": [...], ...}: recorded in config.json and the cards

A folder's classes sort by name (`eight, five, four, …`) where MNIST's are `0 … 9`: carried over row for row,
every pretrained row would point at the wrong class (a fine-tune at the defaults reached 53.5% where mapping
by name starts above 90%). Names match when they are equal after `class_key`: case, separators and digits
written as words do not count (`7`, `seven`, `7 - seven` are one class).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from zoo.core.errors import ZooError

HEAD_MODES = ("map", "keep", "fresh")  # by class name (default); row for row; from scratch
NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def class_key(name: str) -> str:
    """A class name as compared across datasets: lower case, separators dropped, number words as digits,
    a repeated token once ('7 - seven' -> '7', 'Lawn_Mower' -> 'lawnmower')."""
    tokens = [NUMBER_WORDS.get(t, t) for t in re.findall(r"[^\W_]+", str(name).lower())]
    return "".join(dict.fromkeys(tokens))


def map_classes(source: list[str] | tuple[str, ...], target: list[str] | tuple[str, ...]) -> list[int | None]:
    """For each target class, the index of the source class of the same name (class_key), or None. Target
    classes whose names are one name to class_key (cat, Cat, c_a_t) would share one row, and a head whose rows
    agree cannot tell them apart: none of them takes it."""
    index: dict[str, int] = {}
    for i, name in enumerate(source):
        index.setdefault(class_key(name), i)
    keys = [class_key(name) for name in target]
    return [index.get(k) if keys.count(k) == 1 else None for k in keys]


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first convolution's weight [out, C, kh, kw] for `in_chans` input channels, as timm's
    `adapt_input_conv`: summed over the channels for 1 (a grey image seen as its three equal channels gives the
    same response), repeated and rescaled by C / in_chans otherwise (the same response to a grey image
    replicated over the new channels)."""
    c = weight.shape[1]
    if c == in_chans:
        return weight
    w = weight.float()
    if in_chans == 1:
        out = w.sum(dim=1, keepdim=True)
    else:
        reps = -(-in_chans // c)
        out = w.repeat(1, reps, 1, 1)[:, :in_chans] * (c / in_chans)
    return out.to(weight.dtype)


@dataclass
class Transfer:
    """What transfer_state did, for one line of output and the run's record."""
    head: str = "map"
    mapped: list[str] = field(default_factory=list)  # target classes that took a pretrained row
    fresh: list[str] = field(default_factory=list)  # target classes whose row starts fresh
    source: str = ""  # the source dataset, for the message
    note: str = ""  # why the head is as it is, when not mapped by name
    input: str = ""  # "1 to 3 channels (conv1.weight)" when the first convolution was adapted
    started_fresh: list[str] = field(default_factory=list)  # head tensors that start wholly fresh

    def line(self) -> str:
        n = len(self.mapped) + len(self.fresh)
        if self.note:
            head = f"head: {self.note}"
        elif not self.mapped:
            head = f"head started fresh: no class names in common with {self.source or 'the weights'}"
        elif not self.fresh:
            head = f"head: {n} classes mapped by name"
        else:
            head = (f"head: {len(self.mapped)} of {n} classes mapped by name ({_few(self.mapped)}); "
                    f"{len(self.fresh)} start fresh ({_few(self.fresh)})")
        return head + (f"; first convolution adapted from {self.input}" if self.input else "")

    def record(self) -> dict:
        return {"head": self.head, "mapped": self.mapped, "fresh": self.fresh,
                **({"input_adapted": self.input} if self.input else {})}


def _few(names: list[str], k: int = 5) -> str:
    return ", ".join(names[:k]) + (f", … {len(names) - k} more" if len(names) > k else "")


def classifier(model: nn.Module) -> nn.Module:
    """The layer that maps features to classes: timm's get_classifier(), else the model's last Linear."""
    if hasattr(model, "get_classifier"):
        return model.get_classifier()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ZooError(f"{type(model).__name__} has no Linear classifier to train alone")
    return linears[-1]


def head_names(model: nn.Module) -> tuple[str | None, str | None]:
    """State-dict names of the classifier's weight and bias (None when the model has no Linear head)."""
    try:
        head = classifier(model)
    except ZooError:
        return None, None
    prefix = next((n for n, m in model.named_modules() if m is head), None)
    if prefix is None:
        return None, None
    own = model.state_dict()
    w, b = f"{prefix}.weight", f"{prefix}.bias"
    return (w if w in own else None), (b if b in own else None)


def _adapt_first_conv(own: dict, state: dict) -> str:
    """Adapt, in `state`, the first 4-D weight whose shape differs from the model's in its channels only."""
    for k, t in own.items():
        if t.dim() == 4 and k in state:
            s = state[k]
            if s.shape != t.shape and s.shape[0] == t.shape[0] and s.shape[2:] == t.shape[2:]:
                state[k] = adapt_input_conv(s, t.shape[1])
                return f"{s.shape[1]} to {t.shape[1]} channels ({k})"
            return ""
    return ""


def transfer_state(model: nn.Module, state: dict[str, torch.Tensor], source_classes=None, target_classes=None,
                   head: str = "map", source: str = "") -> tuple[dict[str, torch.Tensor], Transfer]:
    """`state` made to fit `model` where it can: the first convolution adapted to the model's channels, the
    classifier's rows mapped by class name (`head="map"`), kept row for row (`"keep"`) or left to start
    fresh (`"fresh"`). Tensors that still differ in shape start fresh when loaded (load_state_dict_transfer)."""
    if head not in HEAD_MODES:
        raise ZooError(f"--head must be one of {', '.join(HEAD_MODES)}, got {head!r}")
    own, state = model.state_dict(), dict(state)
    said = Transfer(head=head, source=source, input=_adapt_first_conv(own, state))
    w, b = head_names(model)
    targets = list(target_classes or [])
    if w is None or w not in state:
        return state, _with_note(said, "the model has no classifier to carry over", targets)
    said.started_fresh = [n for n in (w, b) if n is not None]  # until rows are mapped below
    if head == "fresh":
        return _fresh(state, own, w, b), _with_note(said, "started fresh (--head fresh)", targets)
    if head == "keep" or source_classes is None or not targets:
        if state[w].shape == own[w].shape:
            why = "kept row for row" + ("" if head == "keep" else " (the weights name no classes)")
            said.started_fresh = []
            return state, _with_note(said, why, [], mapped=targets)
        return _fresh(state, own, w, b), _with_note(said, "started fresh (another number of classes)", targets)
    if state[w].shape[1:] != own[w].shape[1:]:
        return _fresh(state, own, w, b), _with_note(said, "started fresh (another feature width)", targets)
    rows = map_classes(list(source_classes), targets)
    said.mapped = [t for t, r in zip(targets, rows) if r is not None]
    said.fresh = [t for t, r in zip(targets, rows) if r is None]
    if said.mapped:
        said.started_fresh = []
    for name in (w, b):
        if name is not None and name in state:
            new = own[name].clone()
            for i, r in enumerate(rows):
                if r is not None:
                    new[i] = state[name][r].to(new.dtype)
            state[name] = new
    return state, said


def _fresh(state: dict, own: dict, *names: str | None) -> dict:
    """`state` with the model's own (freshly initialized) tensors in place of `names`."""
    return {**state, **{k: own[k].clone() for k in names if k is not None}}


def _with_note(said: Transfer, note: str, fresh: list[str], mapped: list[str] | None = None) -> Transfer:
    said.note, said.fresh, said.mapped = note, list(fresh), list(mapped or [])
    return said
