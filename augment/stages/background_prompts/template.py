"""Background prompts, CPU default: ten background descriptions per product from a curated, category-aware set.

The paper asks an MLLM for ten background prompts per product (Algorithms 5-6) and renders each into the
Algorithm 7 image-editing prompt. This backend picks them instead from prompts/data/backgrounds.vN.json: the
product's group (footwear, bags, apparel...) is found from its CATEGORY entities, else its title; about 70 % of
the prompts come from that group and the rest from the generic set, in an order seeded by (product, config), so
a rerun picks the same ones. No prompt repeats within a product. The model backends (model.py) fall back
to `choose_backgrounds` when a model's list is rejected.

Must not: call a model or read the image.
"""
from __future__ import annotations

import dataclasses
import math
import random

from augment.core.config import ConfigError
from augment.stages.base import Batch, Stage, StageResult
from prompts import backgrounds as background_sets

# Share of the prompts drawn from the product's own group when it has one.
GROUP_SHARE = 0.7


@dataclasses.dataclass(frozen=True)
class TemplateBackgroundOptions:
    count: int = 10  # prompts per product
    backgrounds: str = background_sets.LATEST  # curated set version, e.g. backgrounds.v1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"stages.background_prompts.options.count: must be at least 1, got {self.count}")

    def check_data(self, key: str) -> None:
        """The set must exist and its generic prompts alone must fill a product's list (then every product's
        can): checked when the config is validated, so that `moon config` and `--dry-run` refuse it too."""
        try:
            bset = background_sets.load(self.backgrounds)
        except KeyError as exc:
            raise ConfigError(f"{key}.backgrounds: {exc.args[0]}") from None
        if self.count > len(bset.generic):
            raise ConfigError(f"{key}.count: must be between 1 and {len(bset.generic)} for set {bset.version}, "
                              f"got {self.count}")


def choose_backgrounds(
    bset: background_sets.BackgroundSet, title: str, entities: list[dict] | None, count: int, seed: int
) -> list[str]:
    """`count` distinct descriptions for one product, the same for the same (product, seed)."""
    categories = [e.get("text") or "" for e in entities or () if e.get("label") == "CATEGORY"]
    group = bset.group_of(categories, title or "")
    rng = random.Random(seed)
    own = list(bset.groups.get(group, ())) if group else []
    generic = [g for g in bset.generic if g not in own]
    rng.shuffle(own)
    rng.shuffle(generic)
    take = min(len(own), math.ceil(GROUP_SHARE * count))
    chosen = own[:take] + generic[: count - take]
    if len(chosen) < count:  # a small group: top up from the rest of it
        chosen += own[take : take + count - len(chosen)]
    return chosen


class TemplateBackgroundPrompts(Stage):
    name = "background_prompts"
    backend = "template"
    reads = ("title", "entities")
    writes = ("background_prompts",)
    options_cls = TemplateBackgroundOptions

    def __init__(self, options=None, context=None):
        super().__init__(options, context)
        self.set = background_sets.load(self.options.backgrounds)  # a KeyError names the sets there are
        self.options.check_data(f"stages.{self.name}.options")  # the count against the set, as `moon config` checks it

    def process(self, batch: Batch) -> StageResult:
        prompts = [
            choose_backgrounds(
                self.set, title, entities, self.options.count, self.context.seed(pid, "background_prompts")
            )
            for pid, title, entities in zip(batch["product_id"], batch["title"], batch["entities"])
        ]
        return StageResult(columns={"background_prompts": prompts})
