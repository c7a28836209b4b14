"""Delivery stages and the actions that tie a criterion to them."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """A delivery stage, ordered commit < merge < release < production."""

    COMMIT = "commit"
    MERGE = "merge"
    RELEASE = "release"
    PRODUCTION = "production"

    @property
    def rank(self) -> int:
        return list(Stage).index(self)


class Action(StrEnum):
    """The consequence of a failed criterion: a block from a stage on, or a warning."""

    BLOCK_COMMIT = "block-commit"
    BLOCK_MERGE = "block-merge"
    BLOCK_RELEASE = "block-release"
    BLOCK_PRODUCTION = "block-production"
    WARN = "warn"

    @property
    def blocking_stage(self) -> Stage | None:
        """Return the first stage at which this action blocks, or None for ``warn``."""
        if self is Action.WARN:
            return None
        return Stage(self.value.removeprefix("block-"))

    def blocks_at(self, stage: Stage) -> bool:
        first = self.blocking_stage
        return first is not None and stage.rank >= first.rank


ENVIRONMENTS = ("development", "staging", "production")
