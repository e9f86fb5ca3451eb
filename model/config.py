"""Configuration of the bi-encoder, its losses, its training data and its training run.

One dataclass per concern, nested in `MoonConfig`. Named configs live as JSON files in `model/configs/` (`tiny`,
`base`, `paper` today; a new JSON file there is a new named config); a config file (JSON or YAML) names a base with
`"extends": "tiny"` (a named config, or a file: a relative path is taken beside the extending file, else from the
working directory) and overrides any key; its `name` is the file's stem unless it sets one (a file without
`extends` keeps its own `name`, else `custom`; a named config's `name`, when it sets one, must be its stem). Unknown keys, wrong types and numbers out of range
(`MoonConfig._range_checks`) are errors naming the dotted key. This module imports no torch: the CLI parses and
validates configs before anything heavy is loaded.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from augment.core import config as loader
from augment.core.config import ConfigError, parse_override  # noqa: F401 - `--set` of moon train/eval/sweep
from augment.core.schema import VARIANT_KINDS

CONFIG_DIR = Path(__file__).parent / "configs"

# The alignment objectives W* routes between, in column order: three inter-product directions (query view ->
# multimodal candidate) and the intra-product direction (a product's image -> its own title).
OBJECTIVES = ("t->mm", "i->mm", "mm->mm", "i->t")
INTER_OBJECTIVES = OBJECTIVES[:3]

# OpenAI CLIP's pixel statistics, shared by open_clip and HF CLIP checkpoints.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass
class VisionConfig:
    """The ViT (open_clip layout): patchify, class token, learned positions, pre-LN blocks."""

    image_size: int = 64
    patch_size: int = 16
    width: int = 64
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    activation: str = "gelu"  # gelu | quick_gelu (OpenAI-trained CLIP weights use quick_gelu)
    # Average-pool the patch grid to pool_grid x pool_grid tokens before they enter the language encoder
    # (0: keep every patch). The class token is always kept.
    pool_grid: int = 0
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    # Local open_clip or HF CLIP directory to initialise the tower from; its dimensions replace the ones above.
    init_from: str | None = None


@dataclasses.dataclass
class TextConfig:
    """The language encoder: it reads text tokens, visual tokens, or both in one sequence."""

    vocab_size: int = 4096
    context_length: int = 32  # text tokens per input; longer titles are truncated
    width: int = 64
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    activation: str = "gelu"
    causal: bool = False  # True reproduces CLIP's causal text attention (needed to reuse CLIP text weights)
    # "hash": a word-level feature-hashing tokenizer (no files, any language with word separators);
    # otherwise a local directory holding a HF tokenizer (tokenizer.json, or files AutoTokenizer reads).
    tokenizer: str = "hash"
    init_from: str | None = None


@dataclasses.dataclass
class MoEConfig:
    """Modality-driven MoE: expert FFNs in the upper language-encoder layers, routed per token."""

    num_experts: int = 4  # Z
    top_k: int = 2
    layers: int = 2  # how many of the top language-encoder layers get an MoE FFN (0: dense model)
    use_wstar: bool = True  # False: the "w/o W*" ablation (fixed, equal objective weights, no sparsity loss)


@dataclasses.dataclass
class LossConfig:
    """Loss weights and temperatures. Defaults where the paper is silent follow method-notes.md."""

    tau: float = 0.05  # inter-product InfoNCE temperature
    intra_tau: float = 0.05  # intra-product InfoNCE temperature
    alpha: float = 0.01  # weight of the load-balancing loss
    beta: float = 0.05  # weight of the W* sparsity (mean entropy) loss
    omega_min: float = 0.1  # floor of each objective weight after renormalisation (against collapse)
    omega_grad: bool = True  # False: objective weights are constants in the loss (stop-gradient variant)
    dsf: bool = True  # Dynamic Sample Filtering; False: the "w/o DSF" ablation
    dsf_kappa: float = 10.0
    dsf_threshold: float = 0.6
    dsf_margin_start: float = 0.2
    dsf_margin_end: float = 0.0  # the margin decays on a cosine from start to end over training
    dsf_warmup: float = 0.03  # fraction of steps before DSF starts weighting
    dsf_hard: bool = False  # True: triplets below the threshold get weight 0 instead of phi


@dataclasses.dataclass
class DataConfig:
    """How shard rows become training triplets and evaluation queries."""

    coaug: bool = True  # False: raw titles and images only (the co-augmentation ablation)
    query_mode: str = "joint"  # joint: every triplet gives t, i and mm queries; ratio: one, drawn by query_ratio
    query_ratio: tuple[int, int, int] = (12, 3, 2)  # image : text : multimodal (MOON's fixed mix)
    # Title queries: entities (the title's extracted entities) or keywords (a subset of its words).
    query_text: str = "entities"
    # Label columns (pass-through input columns; `category_leaf`: the last level of category_path) that
    # shopper-intent queries are built from: "women white skirts" = gender + base_colour + article_type.
    query_attributes: tuple[str, ...] = ("gender", "base_colour", "article_type")
    # Text queries of training triplets: title (query_text of the product's title), attributes (its labels'
    # query; title where it has no labels), or both (one of the two at random each time).
    train_queries: str = "attributes"
    # Text queries of the evaluation: attributes (one per distinct label combination of the held-out products,
    # relevant: every held-out product with those labels) or title (one per product, from its own title).
    eval_queries: str = "attributes"
    keyword_keep: float = 0.5  # share of title words a keyword query keeps (at least two)
    # How co-augmented views enter a training candidate. concat (the paper's token budget 2L + (n_c+1)V): the
    # raw title followed by the enriched title, and the raw image plus up to max_variants variants, in one
    # sequence. sample: one title and one image, each replaced by an enriched title / a variant with
    # probability 1 - original_view_prob.
    candidate_views: str = "concat"
    max_variants: int = 2  # n_c: variants per candidate in concat mode, drawn afresh every epoch
    original_view_prob: float = 0.5
    # Which co-augmented views training uses: variants of these kinds (others are ignored), and the enriched
    # title (enriched_titles). The bench's per-kind ablation sets them.
    variant_kinds: tuple[str, ...] = ("subject", "background", "angle", "logo", "detail")
    enriched_titles: bool = True
    # Where drawn variants go: candidate (the candidate's image, in c_mm and c_i) or image (the image-only
    # candidate c_i of the intra-product objective only; c_mm keeps the raw image, as test candidates do).
    variant_target: str = "candidate"
    # Probability that a triplet's image query (i->mm, mm->mm) is a variant, re-framed like the raw photo, instead
    # of the raw photo: variants as query-side augmentation; candidates keep the layout above.
    query_variant_prob: float = 0.0
    eval_fraction: float = 0.2  # share of products held out for evaluation (by a hash of product_id)
    negative_pool: int = 256  # products among which same-category negatives are mined
    cache_records: bool = False  # keep the decoded product records in Ray's object store across epochs


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32  # triplets per worker per step
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.03  # fraction of steps with a linear learning-rate warm-up, then cosine to zero
    grad_clip: float = 1.0
    num_workers: int = 1  # Ray Train workers (data parallel)
    use_gpu: bool = False
    cpus_per_worker: int = 1
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    seed: int = 0
    log_every: int = 10  # steps between log lines (shown with -v)
    # Checkpoints: the last `keep_last` epochs are kept as epoch-NNNN/ (weights and optimizer state, for
    # --resume; 0 keeps every epoch), and the weights of the best epoch so far as best/, by `best_metric` on the
    # held-out products after each epoch: R@1, R@5, R@10 or nDCG@10 averaged over the five directions, or one
    # direction's ("t->mm/R@10"); "" validates nothing and keeps no best/.
    keep_last: int = 2
    best_metric: str = "R@10"
    val_products: int = 1000  # held-out products validated after each epoch (the first N by product id)


@dataclasses.dataclass
class MoonConfig:
    name: str = "custom"
    vision: VisionConfig = dataclasses.field(default_factory=VisionConfig)
    text: TextConfig = dataclasses.field(default_factory=TextConfig)
    moe: MoEConfig = dataclasses.field(default_factory=MoEConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def validate(self) -> "MoonConfig":
        _refuse_failed(self._range_checks())  # first: the checks below divide by some of these numbers
        v, t, m = self.vision, self.text, self.moe
        checks = [
            (v.image_size % v.patch_size == 0, "vision.image_size must be a multiple of vision.patch_size"),
            (v.width % v.heads == 0, "vision.width must be divisible by vision.heads"),
            (t.width % t.heads == 0, "text.width must be divisible by text.heads"),
            (0 <= m.layers <= t.layers, "moe.layers must be between 0 and text.layers"),
            (1 <= m.top_k <= m.num_experts, "moe.top_k must be between 1 and moe.num_experts"),
            (v.activation in ACTIVATIONS and t.activation in ACTIVATIONS, f"activation must be one of {ACTIVATIONS}"),
            (self.data.query_mode in ("joint", "ratio"), "data.query_mode must be joint or ratio"),
            (self.data.query_text in ("entities", "keywords"), "data.query_text must be entities or keywords"),
            (self.data.train_queries in ("title", "attributes", "both"),
             "data.train_queries must be title, attributes or both"),
            (self.data.eval_queries in ("attributes", "title"), "data.eval_queries must be attributes or title"),
            (self.data.eval_queries == "title" or len(self.data.query_attributes) > 0,
             "data.query_attributes is empty: attribute queries need at least one label column"),
            (self.data.candidate_views in ("concat", "sample"), "data.candidate_views must be concat or sample"),
            (self.data.max_variants >= 0, "data.max_variants must be >= 0"),
            (set(self.data.variant_kinds) <= set(VARIANT_KINDS),
             f"data.variant_kinds must name kinds among {', '.join(VARIANT_KINDS)}"),
            (self.data.variant_target in ("candidate", "image"), "data.variant_target must be candidate or image"),
            (0.0 <= self.data.original_view_prob <= 1.0, "data.original_view_prob must be in [0, 1]"),
            (0.0 <= self.data.query_variant_prob <= 1.0, "data.query_variant_prob must be in [0, 1]"),
            (sum(self.data.query_ratio) > 0 and min(self.data.query_ratio) >= 0, "data.query_ratio must be >= 0"),
            (0 < self.data.eval_fraction < 1,
             "data.eval_fraction must be in (0, 1) (`moon eval --split all` evaluates every product)"),
            (self.train.precision in ("fp32", "bf16"), "train.precision must be fp32 or bf16"),
            (self.train.batch_size >= 2, "train.batch_size must be at least 2"),
            (self.train.keep_last >= 0, "train.keep_last must be >= 0 (0 keeps every epoch)"),
            (self.train.val_products >= 2, "train.val_products must be at least 2"),
            (valid_best_metric(self.train.best_metric),
             f"train.best_metric must be one of {', '.join(VALIDATION_METRICS)}, a direction's (t->mm/R@10; "
             f"directions {', '.join(DIRECTIONS)}), or empty"),
            (v.pool_grid >= 0 and v.pool_grid <= v.image_size // v.patch_size, "vision.pool_grid too large"),
        ]
        _refuse_failed(checks)
        return self

    def _range_checks(self) -> list[tuple[bool, str]]:
        """Numbers that pass the type check but cannot work: a zero that would divide (heads, workers, log_every),
        an empty resource request, a temperature of 0 (every logit infinite, the loss NaN), nothing to train."""
        tr = self.train
        return [
            *_each(self, ("vision.image_size", "vision.patch_size", "vision.width", "vision.heads",
                          "text.context_length", "text.width", "text.heads", "moe.num_experts", "train.epochs",
                          "train.num_workers"), lambda x: x >= 1, "must be at least 1"),
            *_each(self, ("text.vocab_size",), lambda x: x >= 3, "must be at least 3 (ids 0 and 1 are reserved)"),
            *_each(self, ("vision.layers", "text.layers", "loss.alpha", "loss.beta", "loss.dsf_kappa",
                          "train.weight_decay"), lambda x: x >= 0, "must be >= 0"),
            *_each(self, ("vision.mlp_ratio", "text.mlp_ratio", "train.lr"), lambda x: x > 0, "must be > 0"),
            *_each(self, ("loss.tau", "loss.intra_tau"), lambda x: x > 0,
                   "must be > 0 (a temperature divides the logits; the default is 0.05)"),
            *_each(self, ("train.grad_clip",), lambda x: x > 0,
                   "must be > 0 (the largest gradient norm a step applies)"),
            *_each(self, ("loss.omega_min", "loss.dsf_threshold", "loss.dsf_warmup", "train.warmup"),
                   lambda x: 0 <= x <= 1, "must be in [0, 1]"),
            *_each(self, ("data.keyword_keep",), lambda x: 0 < x <= 1, "must be in (0, 1]"),
            (tr.cpus_per_worker >= 1 or (tr.use_gpu and tr.cpus_per_worker == 0),
             "train.cpus_per_worker must be at least 1 (0 only with train.use_gpu: each worker then asks for a GPU "
             "only)"),
            *_each(self, ("train.log_every",), lambda x: x >= 1, "must be at least 1 (steps between log lines)"),
        ]


def _each(cfg: MoonConfig, keys: tuple[str, ...], ok, rule: str) -> list[tuple[bool, str]]:
    """(ok(value), "<key> <rule>") for each dotted key of `cfg`."""
    checks = []
    for key in keys:
        section, name = key.split(".")
        checks.append((ok(getattr(getattr(cfg, section), name)), f"{key} {rule}"))
    return checks


def _refuse_failed(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


ACTIVATIONS = ("gelu", "quick_gelu")
# Retrieval directions and metrics of model/evaluate.py, named here so that configs validate without torch.
DIRECTIONS = ("t->mm", "i->mm", "mm->mm", "t->i", "i->t")
VALIDATION_METRICS = ("R@1", "R@5", "R@10", "nDCG@10")


def valid_best_metric(name: str) -> bool:
    if name in ("",) + VALIDATION_METRICS:
        return True
    direction, _, metric = name.partition("/")
    return direction in DIRECTIONS and metric in VALIDATION_METRICS


def named_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_config(name_or_path: str, overrides: dict[str, Any] | None = None) -> MoonConfig:
    """A named config (`tiny`) or a JSON/YAML file, with optional dotted-key overrides applied last."""
    data = _load_raw(name_or_path)
    for key, value in (overrides or {}).items():
        loader.set_dotted(data, key, value)
    return from_dict(data)


def with_overrides(cfg: MoonConfig, overrides: dict[str, Any]) -> MoonConfig:
    """`cfg` with dotted-key overrides applied, validated again."""
    data = cfg.to_dict()
    for key, value in overrides.items():
        loader.set_dotted(data, key, value)
    return from_dict(data)


def from_dict(data: dict[str, Any]) -> MoonConfig:
    return loader.from_dict(MoonConfig, data).validate()


def _is_named(name: str) -> bool:
    return not Path(name).suffix and (CONFIG_DIR / f"{name}.json").exists()


def _load_raw(name_or_path: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    path = Path(name_or_path)
    if _is_named(name_or_path):
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.exists():
        raise ConfigError(f"no config named {name_or_path!r} (named: {', '.join(named_configs())}) and no such file")
    if str(path) in seen:
        raise ConfigError(f"config {path} extends itself")
    data = loader.read_mapping(path)
    if path.parent == CONFIG_DIR and data.get("name", path.stem) != path.stem:
        raise ConfigError(f"{path}: name {data['name']!r} is not the file's name: a named config is called by its "
                          f"file name, and trains, evaluates and is recorded as that; set \"name\": \"{path.stem}\" "
                          "or leave it out")
    base = data.pop("extends", None)
    if base is None:
        return data
    beside = path.parent / str(base)  # a file named by a relative path sits beside the file that extends it
    if not _is_named(str(base)) and not Path(str(base)).is_absolute() and beside.exists():
        base = str(beside)
    merged = loader.deep_merge(_load_raw(base, seen + (str(path),)), data)
    if "name" not in data:
        merged["name"] = path.stem
    return merged
