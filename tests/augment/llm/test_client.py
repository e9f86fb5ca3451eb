"""augment.llm.client.options_class: one options dataclass from the parts of a model backend."""
from __future__ import annotations

import dataclasses

import pytest

from augment.core.config import NOT_HASHED, ConfigError, unhashed_fields
from augment.llm.client import ModelOptions, options_class


@dataclasses.dataclass(frozen=True)
class Engine:
    address: str = dataclasses.field(default="http://127.0.0.1:1", metadata=NOT_HASHED)
    batch: int = 4

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ConfigError(f"batch must be at least 1, got {self.batch}")


@dataclasses.dataclass(frozen=True)
class Task:
    max_tokens: int = 1024  # replaces ModelOptions' default

    def check_data(self, key: str) -> None:
        if self.max_tokens > 4096:
            raise ConfigError(f"{key}.max_tokens must be at most 4096")


Options = options_class("Options", __name__, ModelOptions, Engine, Task)


def test_the_parts_fields_defaults_checks_and_hash_marks_are_carried():
    options = Options(model="m")
    assert (options.max_tokens, options.batch, options.send_image) == (1024, 4, True)
    assert unhashed_fields(Options) == {"address"}
    with pytest.raises(ConfigError, match="batch must be at least 1, got 0"):  # the part's __post_init__
        Options(model="m", batch=0)
    with pytest.raises(ConfigError, match=r"^stages.x.options.max_tokens must be at most 4096"):
        Options(model="m", max_tokens=5000).check_data("stages.x.options")
    with pytest.raises(ConfigError, match=r"^stages.x.options.model is required"):  # ModelOptions' own check
        Options().check_data("stages.x.options")
