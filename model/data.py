"""Committed shards -> product records -> training triplets and evaluation inputs.

1. `product_records` turns shard rows (the columns of `augment.core.schema.output_schema()`) into one record per
   product: its raw title and image, the usable enriched title and image variants (co-augmentation), the words
   a title query is made of, its labels (`data.query_attributes`, for shopper-intent queries: model/queries.py),
   and a category key for negative mining. Pure over a column batch, so the same function runs in a Ray Data
   `map_batches`, in `moon eval`, and in tests. Products without a usable image are skipped and counted
   (`Skipped`). Before any shard is read, `checked_label_columns` checks every shard's footer against the schema
   and finds the label columns the shards have; `unfinished_run` says when the run has planned shards not
   committed yet.
2. `is_held_out` splits products by a hash of product_id: the same split on every machine and every run.
2b. `fold_of` splits products into cross-validation folds by the same hash (bench/coaug_ablation.py).
3. `pair_batches` arranges a pool of records into batches of same-category pairs: each product's partner is its
   triplet's mined negative (same category, different product), and every other product of the batch is an
   in-batch negative.
4. `collate` draws each product's views and tokenises/decodes them into a `TrainBatch`:
   - query (never co-augmented, as in the paper): text = `query_text` of the title, or the attribute query of
     the product's labels (`data.train_queries`); image = `query_view` of the raw image (a re-framed second
     photo); multimodal = both. Other products of the batch that carry the labels an attribute query names are
     relevant to it too, so the batch marks them (`query_relevant`) and the loss does not use them as negatives;
   - candidate: title and image; with co-augmentation (`data.candidate_views`), either `concat` (the paper's
     token budget): the raw title followed by the enriched title, and the raw image plus up to `max_variants`
     variants (status ok) in one sequence; or `sample`: the title / the image replaced by the enriched title /
     a variant with probability 1 - `original_view_prob` each. Only variants of `data.variant_kinds` are used,
     and the enriched title only with `data.enriched_titles`;
   - `data.variant_target: image` puts the drawn images in the image-only candidate (c_i, the intra-product
     objective's image) only, and keeps the raw image in the multimodal candidate;
   - with `data.query_variant_prob`, an image query re-frames a variant instead of the raw photo that often.
This module must not import Ray; image decoding and tokenising happen here, model code does not.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import logging
import random
from collections import Counter, defaultdict
from typing import Any, Iterable, Iterator, Sequence

import pyarrow as pa
import torch

from augment.core import schema as S
from augment.imaging import untrusted
from model import images as image_ops
from model.batch import TrainBatch
from model.config import INTER_OBJECTIVES, ConfigError, MoonConfig
from model.queries import CATEGORY_LEAF, attribute_query, label_key, matches, product_labels
from model.tokenizer import words

log = logging.getLogger(__name__)

# The shard columns the model reads, named through the schema: every shard has them, with the schema's types
# (checked before reading: checked_label_columns).
SHARD_COLUMNS = S.columns(
    "product_id", "title", "image", "image_uri", "category_path", "category", "entities",
    "enriched_title", "enrichment", "variants", "lineage",
)

RECORD_SCHEMA = pa.schema(
    [
        pa.field("product_id", pa.string()),
        pa.field("category", pa.string()),  # category key for mined negatives; "" when unknown
        pa.field("title", pa.string()),
        pa.field("enriched_title", pa.string()),  # null when absent, rejected, or equal to the title
        pa.field("query_terms", pa.list_(pa.string())),  # entity texts of the title, in title order
        pa.field("labels", pa.list_(pa.string())),  # normalised labels, one per query attribute (null: missing)
        pa.field("image", pa.binary()),
        pa.field("variant_images", pa.list_(pa.binary())),  # status-ok variants only
        pa.field("variant_kinds", pa.list_(pa.string())),
    ]
)


# ---------------------------------------------------------------------------------------------------------
# 1. Shard rows -> product records
# ---------------------------------------------------------------------------------------------------------
def shard_columns(attributes: Sequence[str] = ()) -> list[str]:
    """The shard columns to read: SHARD_COLUMNS plus the label columns of `attributes`."""
    return list(SHARD_COLUMNS) + [a for a in attributes if a != CATEGORY_LEAF and a not in SHARD_COLUMNS]


def check_label_columns(schema: pa.Schema, attributes: Sequence[str], warn: bool = True,
                        where: str = "") -> tuple[str, ...]:
    """The label columns of `attributes` to read, in their order: those `schema` (the union of a run's shard
    columns, augment.core.schema.check_shards) has, and `category_leaf`. Columns no shard has are left out, with a
    warning naming them and `where` (with `warn`), so that nothing lists them as used; where none is present, all
    of them (every product then lacks labels, and what needs them says so, naming them).

    Label columns hold one value per product. Naming a list or struct column (such as `color`, the colours the
    pipeline finds in titles) is a ConfigError that names the catalogue's own column where the run carried one
    as `input_<name>` (augment.core.schema.carried_name)."""
    from augment.core.schema import CARRIED_PREFIX

    for name in attributes:
        if name not in schema.names:
            continue
        kind = schema.field(name).type
        if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_struct(kind):
            carried = CARRIED_PREFIX + name
            hint = (f"; the catalogue's own {name!r} column is carried as {carried!r}: name that"
                    if carried in schema.names else "")
            raise ConfigError(f"data.query_attributes: {name!r} is a {kind} column the pipeline writes, "
                              f"not a label with one value per product{hint}")
    used = tuple(a for a in attributes if a == CATEGORY_LEAF or a in schema.names)
    absent = [a for a in attributes if a not in used]
    if absent and warn:
        leaf = (f"; `{CATEGORY_LEAF}` reads the last level of category_path instead (--set "
                f"'data.query_attributes=[..., \"{CATEGORY_LEAF}\"]')"
                if "category_path" in schema.names and CATEGORY_LEAF not in attributes else "")
        warn_once(f"data.query_attributes: no shard{' of ' + where if where else ''} has the column "
                  f"{_absent(absent, schema)}: "
                  + (f"attribute queries use {', '.join(used)}" if used else "no product has labels") + leaf)
    return used or tuple(attributes)


def _absent(names: Sequence[str], schema: pa.Schema) -> str:
    """'gendr' (did you mean 'gender'?), 'article_type': the absent columns, each with a close column name."""
    known = [n for n in schema.names if n not in S.output_schema().names]
    parts = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1)
        parts.append(repr(name) + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ", ".join(parts)


def checked_label_columns(files: Sequence[str], attributes: Sequence[str], warn: bool = True,
                          where: str = "") -> tuple[str, ...]:
    """Check every shard of `files` before any is read (augment.core.schema.check_shards: a readable Parquet file
    of this schema version with the SHARD_COLUMNS and their output-schema types; footers only, in parallel), and
    return the label columns of `attributes` to read (check_label_columns; `where` names the run in its warning)."""
    labels = [a for a in attributes if a != CATEGORY_LEAF]
    return check_label_columns(S.check_shards(files, SHARD_COLUMNS, extra=labels), attributes, warn, where)


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """Log a warning the first time this process meets it: the same run read twice (`moon eval` reads its run for
    the evaluation and for the trained baseline) says it once."""
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning("%s", message)


def unfinished_run(run_uri: str, files: Sequence[str]) -> str | None:
    """A warning when the run's saved plan (augment/plan.py) has shards that are not committed, a run in progress
    or stopped: its readers see part of the catalogue. None for a finished run, or a folder without a saved plan."""
    from augment import plan as P
    from augment.core import manifest

    try:
        header = P.read_header(run_uri)
    except (P.NoSavedPlan, ValueError, OSError):
        return None
    planned = int(header.get("shards") or 0)
    if len(files) >= planned:
        return None
    committed = sum(1 for _ in manifest.iter_records(run_uri))  # shards whose every row was quarantined count
    if committed >= planned:
        return None
    identity = header.get("identity") or {}
    command = f"moon run --input {header.get('input_uri')} --output {run_uri}"
    command += f" --limit {identity['limit']}" if identity.get("limit") is not None else ""
    command += f" --shard-size {identity['shard_size']}" if identity.get("shard_size") else ""
    return (f"{run_uri}: {committed} of its {planned} planned shards are committed (the run is unfinished, or "
            f"still running), and only those are read; to read every product, resume it (`{command}` with its "
            "config, or its remaining --batch jobs)")


SKIP_REASONS = {
    "no_image": "without an image (image and image_uri null)",
    "no_title": "without a title (title null or blank)",
    "unreadable": "whose image_uri cannot be read",
    "undecodable": "whose image cannot be decoded",
    "duplicate": "whose product_id an earlier row has (the first is kept)",
}


@dataclasses.dataclass
class Skipped:
    """The products a reader skipped, by reason (SKIP_REASONS), with the first few ids, and the variant images it
    left out because they cannot be read or do not decode."""

    reasons: Counter = dataclasses.field(default_factory=Counter)
    examples: list = dataclasses.field(default_factory=list)
    variants: int = 0
    ids: dict | None = None  # product id -> reason of every product skipped, when the reader keeps them (a {})

    def add(self, reason: str, product_id) -> None:
        self.reasons[reason] += 1
        if len(self.examples) < 5:
            self.examples.append(str(product_id))
        if self.ids is not None:
            self.ids[str(product_id)] = reason

    def merge(self, other: "Skipped") -> None:
        """Add what another reader skipped (one per thread; merged in a fixed order, so the examples are too)."""
        self.reasons.update(other.reasons)
        self.examples += other.examples[:max(0, 5 - len(self.examples))]
        self.variants += other.variants

    @property
    def products(self) -> int:
        return sum(self.reasons.values())

    def __bool__(self) -> bool:
        return bool(self.products or self.variants)

    def describe(self, examples: bool = True) -> str:
        """'6 products skipped: 4 without an image (...), 2 whose image cannot be decoded (e.g. 10000, 10012, ...)'."""
        parts = [f"{self.reasons[r]} {why}" for r, why in SKIP_REASONS.items() if self.reasons[r]]
        text = f"{self.products} products skipped: {', '.join(parts)}" if self.products else ""
        if text and examples:
            more = ", ..." if self.products > len(self.examples) else ""
            text += f" (e.g. {', '.join(self.examples)}{more})"
        if self.variants:
            text += ("; " if text else "") + f"{self.variants} variant images left out: they cannot be read or decoded"
        return text


def product_records(columns: dict[str, list], read_uri=None, attributes: Sequence[str] = (),
                    skipped: Skipped | None = None) -> list[dict[str, Any]]:
    """One record per shard row that has a usable image. `read_uri(uri) -> bytes` resolves image_uri / variant
    uri (default: augment.core.storage.read_bytes); `attributes` names the label columns (absent ones read as
    missing). Rows without a title or an image, whose image_uri cannot be read or whose image does not decode
    (images.decodable) are skipped, so that no batch fails on them later; variant images that do not open are
    left out. They are counted into `skipped` when given (the caller reports the total once), else logged here."""
    if read_uri is None:
        from augment.core.storage import read_bytes as read_uri
    count = len(columns["product_id"])
    get = lambda name, i: columns[name][i] if name in columns else None  # noqa: E731
    mine = Skipped() if skipped is None else skipped
    records = []
    for i in range(count):
        title = get("title", i) or ""
        if not title.strip():  # a query and a candidate made of nothing: shards of other writers may hold them
            mine.add("no_title", get("product_id", i))
            continue
        source = (get("lineage", i) or {}).get("source_uri")
        image, reason = _raw_image(get("image", i), get("image_uri", i), source, read_uri)
        if reason:
            mine.add(reason, get("product_id", i))
            continue
        enriched = get("enriched_title", i)
        enrichment = get("enrichment", i) or {}
        ok = S.Status.OK.value
        usable = enriched and enrichment.get("status", ok) == ok and enriched.strip() != title.strip()
        variants = [v for v in (get("variants", i) or []) if v and v.get("status") == ok]
        variant_images, variant_kinds = [], []
        for v in variants:
            data = v.get("image") or _read(read_uri, v.get("uri"))
            if data and image_ops.decodable(data, pixels=False):  # the header only: variants are many
                variant_images.append(data)
                variant_kinds.append(v.get("kind") or "")
            elif data or v.get("uri"):
                mine.variants += 1
        entities = sorted(get("entities", i) or [], key=lambda e: (e.get("start") or 0))
        records.append(
            {
                "product_id": str(get("product_id", i)),
                "category": category_key(get("category_path", i), get("category", i)),
                "title": title,
                "enriched_title": enriched if usable else None,
                "query_terms": _dedupe([e["text"] for e in entities if e.get("text")]),
                "labels": product_labels(get, i, attributes),
                "image": image,
                "variant_images": variant_images,
                "variant_kinds": variant_kinds,
            }
        )
    if skipped is None and mine:
        log.warning("%s", mine.describe())
    return records


def _raw_image(image: bytes | None, uri: str | None, source_uri: str | None,
               read_uri) -> tuple[bytes | None, str | None]:
    """(the product's image bytes, None), or (None, the SKIP_REASONS key of why it has no usable image). An
    image_uri is read where the validate stage read it: relative to the input file it came from (`source_uri`)."""
    if not image:
        if not uri:
            return None, "no_image"
        if source_uri:
            try:
                uri = untrusted.image_address(uri, source_uri)
            except untrusted.ImageRejected:  # validate quarantines these; a shard of an older release may hold one
                return None, "unreadable"
        image = _read(read_uri, uri)
        if not image:
            return None, "unreadable"
    if not image_ops.decodable(image):
        return None, "undecodable"
    return image, None


def records_table(records: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(records), schema=RECORD_SCHEMA)


def category_key(category_path: str | None, category: Sequence[str] | None) -> str:
    if category_path and category_path.strip():
        return " > ".join(part.strip().lower() for part in category_path.split(">"))
    if category:
        return str(category[0]).strip().lower()
    return ""


def _read(read_uri, uri: str | None) -> bytes | None:
    if not uri:
        return None
    try:
        return read_uri(uri)
    except OSError as exc:
        log.debug("cannot read %s: %s", uri, exc)  # counted by the caller (Skipped), not a line per image
        return None


def _dedupe(items: Iterable[str]) -> list[str]:
    seen, out = set(), []
    for item in items:
        if item.lower() not in seen:
            seen.add(item.lower())
            out.append(item)
    return out


# ---------------------------------------------------------------------------------------------------------
# 2. The held-out split
# ---------------------------------------------------------------------------------------------------------
def split_position(product_id: str) -> float:
    """sha256(product_id) read as a number in [0, 1): where a product falls in every split."""
    digest = hashlib.sha256(str(product_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_held_out(product_id: str, fraction: float) -> bool:
    """True for the products of the evaluation split: the first `fraction` of split positions."""
    return split_position(product_id) < fraction


def fold_of(product_id: str, folds: int) -> int:
    """The product's fold among `folds` equal ranges of split positions (cross-validation over a catalogue)."""
    return min(folds - 1, int(split_position(product_id) * folds))


# ---------------------------------------------------------------------------------------------------------
# Query construction
# ---------------------------------------------------------------------------------------------------------
def query_text(title: str, terms: Sequence[str], mode: str, keep: float, rng: random.Random) -> str:
    """A shopper-style text query for a product.

    entities: the title's extracted entities (brand, category, colour, material...) in title order; a title
    with fewer than two entity words falls back to keywords. keywords: a random `keep` share of the title's
    words (at least two), in title order.
    """
    if mode == "entities" and sum(len(words(t)) for t in terms) >= 2:
        return " ".join(terms)
    tokens = words(title)
    if len(tokens) <= 2:
        return " ".join(tokens)
    count = max(2, round(keep * len(tokens)))
    kept = sorted(rng.sample(range(len(tokens)), count))
    return " ".join(tokens[i] for i in kept)


def training_query(record: dict[str, Any], data, rng: random.Random) -> tuple[str, tuple | None]:
    """A training triplet's text query and, for an attribute query, its label key (None for a title query).
    Per `data.train_queries`: title, attributes (title where the product has no labels), or both (either,
    at random)."""
    mode = data.train_queries
    if mode == "both":
        mode = rng.choice(("title", "attributes"))
    key = label_key(record.get("labels"))
    if mode == "attributes" and key is not None:
        return attribute_query(key), key
    return query_text(record["title"], record["query_terms"], data.query_text, data.keyword_keep, rng), None


def query_relevance(keys: Sequence[tuple | None], records: Sequence[dict[str, Any]]) -> torch.Tensor:
    """[B, B] bool: True where product j (j != i) is relevant to triplet i's text query, i.e. carries every
    label its attribute query names. A title query is relevant to its own product only."""
    products = [label_key(r.get("labels")) for r in records]
    out = torch.zeros(len(records), len(records), dtype=torch.bool)
    for i, key in enumerate(keys):
        if key is None:
            continue
        for j, product in enumerate(products):
            out[i, j] = j != i and matches(key, product)
    return out


def product_rng(product_id: str, salt: str) -> random.Random:
    """A generator fixed by product and purpose: evaluation queries are the same on every run."""
    return random.Random(hashlib.sha256(f"{salt}:{product_id}".encode()).hexdigest())


# ---------------------------------------------------------------------------------------------------------
# 3. Batches of same-category pairs
# ---------------------------------------------------------------------------------------------------------
def pair_batches(
    records: Sequence[dict[str, Any]], batch_size: int, rng: random.Random
) -> Iterator[tuple[list[dict[str, Any]], list[int]]]:
    """Yield (batch records, partner index) with batch_size // 2 pairs per batch (fewer in the last one).

    Products are paired inside their category; the odd ones out inside their top-level category; the rest at
    random. A pool with fewer than two records yields nothing.
    """
    pairs = _pairs(list(records), rng)
    rng.shuffle(pairs)
    per_batch = max(1, batch_size // 2)
    for start in range(0, len(pairs), per_batch):
        chunk = pairs[start : start + per_batch]
        batch, partner = [], []
        for a, b in chunk:
            base = len(batch)
            batch += [a, b]
            partner += [base + 1, base]
        yield batch, partner


def _pairs(records: list[dict[str, Any]], rng: random.Random) -> list[tuple[dict, dict]]:
    pairs: list[tuple[dict, dict]] = []
    singles = records
    levels = (lambda r: r["category"], lambda r: r["category"].split(" > ")[0], lambda r: "")
    for level in levels:
        groups: dict[str, list[dict]] = defaultdict(list)
        for record in singles:
            groups[level(record)].append(record)
        singles = []
        for key in sorted(groups):
            group = groups[key]
            rng.shuffle(group)
            pairs += [(group[i], group[i + 1]) for i in range(0, len(group) - 1, 2)]
            if len(group) % 2:
                singles.append(group[-1])
    return pairs


# ---------------------------------------------------------------------------------------------------------
# 4. Views -> tensors
# ---------------------------------------------------------------------------------------------------------
CANDIDATE_VIEWS = {"c_mm": ("candidate", "candidate"), "c_i": ("candidate", None), "c_t": (None, "candidate")}


def collate(
    records: Sequence[dict[str, Any]], partner: Sequence[int], cfg: MoonConfig, tokenizer, rng: random.Random
) -> TrainBatch:
    data, size = cfg.data, cfg.vision.image_size
    mean, std = cfg.vision.mean, cfg.vision.std
    # 1. Candidate views: raw; with co-augmentation, the enriched title and variants joined to the raw ones
    #    (concat) or standing in for them (sample).
    decoded: dict[int, Any] = {}

    def raw(b: int):  # each record's raw image decoded at most once: candidate and query views share it
        if b not in decoded:
            decoded[b] = image_ops.decode(records[b]["image"])
        return decoded[b]

    cand_texts, cand_images = [], []
    for b, r in enumerate(records):
        texts_of, images_of = candidate_inputs(r, data, rng)
        cand_texts.append(" ".join(texts_of))
        cand_images.append([image_ops.candidate_from_bytes(im, size) for im in images_of])
    texts = {"candidate": tokenizer(cand_texts)}
    image_masks: dict[str, torch.Tensor] = {}
    images: dict[str, torch.Tensor] = {}
    views = dict(CANDIDATE_VIEWS)
    if data.coaug and data.variant_target == "image":
        # Variants stand in the image-only candidate (the intra-product objective's image) only; the
        # multimodal candidate keeps the raw image, as every test candidate does.
        _image_entry(images, image_masks, "candidate_image", cand_images, mean, std)
        cand_images = [[image_ops.candidate_from_bytes(r["image"], size)] for r in records]
        views["c_i"] = ("candidate_image", None)
    _image_entry(images, image_masks, "candidate", cand_images, mean, std)

    # 2. Query views: every triplet gives all three (joint), or one drawn by the image:text:mm ratio.
    if data.query_mode == "joint":
        modality = {name: list(range(len(records))) for name in INTER_OBJECTIVES}
    else:
        modality = {name: [] for name in INTER_OBJECTIVES}
        ratio = data.query_ratio  # image : text : multimodal
        for b in range(len(records)):
            name = rng.choices(("i->mm", "t->mm", "mm->mm"), weights=(ratio[0], ratio[1], ratio[2]))[0]
            modality[name].append(b)
    drawn = [training_query(r, data, rng) for r in records]  # one text query per triplet, shared by t and mm

    def query_image(b: int):  # the photo an image query re-frames: the raw one, or a variant (query_variant_prob)
        if data.coaug and data.query_variant_prob > 0 and rng.random() < data.query_variant_prob:
            variants = usable_variants(records[b], data)
            if variants:
                return image_ops.decode(rng.choice(variants))
        return raw(b)

    query_keys = [key for _, key in drawn]
    for name, rows in modality.items():
        if not rows:
            continue
        key = "query" if data.query_mode == "joint" else f"query_{name.split('->')[0]}"
        if name in ("t->mm", "mm->mm") and key not in texts:
            texts[key] = tokenizer([drawn[b][0] for b in rows])
        if name in ("i->mm", "mm->mm") and key not in images:
            images[key] = image_ops.to_tensor(
                [image_ops.query_view(query_image(b), size, rng) for b in rows], mean, std
            )
        views[name] = {
            "t->mm": (None, key), "i->mm": (key, None), "mm->mm": (key, key)
        }[name]
    query_index = {name: torch.tensor(rows, dtype=torch.long) for name, rows in modality.items() if rows}
    relevant = query_relevance(query_keys, records)
    views = {k: v for k, v in views.items() if k in CANDIDATE_VIEWS or k in query_index}
    return TrainBatch(
        images=images,
        texts=texts,
        views=views,
        query_index=query_index,
        partner=torch.tensor(partner, dtype=torch.long),
        product_ids=[r["product_id"] for r in records],
        image_masks=image_masks,
        query_relevant=relevant if bool(relevant.any()) else None,
    )


def usable_variants(record: dict[str, Any], data) -> list[bytes]:
    """The record's variant images (encoded) of the kinds `data.variant_kinds` names."""
    kinds = set(data.variant_kinds)
    images = record.get("variant_images") or []
    return [im for im, kind in zip(images, record.get("variant_kinds") or []) if kind in kinds]


def candidate_inputs(record: dict[str, Any], data, rng: random.Random) -> tuple[list[str], list[bytes]]:
    """The titles and images (encoded) a training candidate is made of this time."""
    title, image = record["title"], record["image"]
    if not data.coaug:
        return [title], [image]
    enriched = record.get("enriched_title") if data.enriched_titles else None
    variants = usable_variants(record, data)
    if data.candidate_views == "concat":
        chosen = rng.sample(variants, min(data.max_variants, len(variants)))
        return [title] + ([enriched] if enriched else []), [image] + chosen
    if enriched and rng.random() >= data.original_view_prob:
        title = enriched
    if variants and rng.random() >= data.original_view_prob:
        image = rng.choice(variants)
    return [title], [image]


def _image_entry(images: dict, masks: dict, name: str, sets: list[list], mean, std) -> None:
    """Per-product lists of PIL images as the image entry `name`: [B, 3, S, S] when every list holds one
    image, else zero-padded [B, N, 3, S, S] with a [B, N] mask of real images."""
    if max(len(s) for s in sets) == 1:
        images[name] = image_ops.to_tensor([s[0] for s in sets], mean, std)
    else:
        images[name], masks[name] = _image_sets(sets, mean, std)


def _image_sets(sets: list[list], mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-product lists of PIL images -> [B, N, 3, S, S] (zero padded) and a [B, N] mask of real images."""
    count = max(len(s) for s in sets)
    flat = image_ops.to_tensor([im for s in sets for im in s], mean, std)  # [R, 3, S, S]
    pixels = flat.new_zeros(len(sets), count, *flat.shape[1:])
    mask = torch.zeros(len(sets), count, dtype=torch.bool)
    for b, s in enumerate(sets):
        mask[b, : len(s)] = True
    pixels[mask] = flat
    return pixels, mask
