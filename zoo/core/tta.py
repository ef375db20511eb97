"""Test-time augmentation by name: one spelling for each, whatever a card, a file name or an option wrote.

Cards and metadata record the value ("" for none, as every zoo file has); file names, messages and options
say the label ("none"); `Tta.of` reads any of them (None, "", "none", "flip", "flip-shift"). What each does is
zoo.models.tta's (torch); this is the name alone, importable anywhere.
"""

from __future__ import annotations

from enum import Enum

from zoo.core.errors import ZooError


class Tta(str, Enum):
    NONE = ""
    FLIP = "flip"  # the mean of the logits for the image and its left-right mirror: two passes
    FLIP_SHIFT = "flip-shift"  # flip, and half over the image shifted one pixel each way (airbench94's): six

    @classmethod
    def of(cls, value: str | Tta | None) -> Tta:
        """The Tta a card, metadata or an option names (None, "" and "none" are NONE)."""
        if value is None or value == "none":
            return cls.NONE
        try:
            return cls(value)
        except ValueError:
            raise ZooError(f"unknown test-time augmentation {value!r}; choose from "
                           f"{', '.join(t.label for t in cls)}") from None

    @property
    def label(self) -> str:
        """The word for it in file names, options and messages."""
        return self.value or "none"
