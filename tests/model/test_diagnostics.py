"""Routing diagnostics: figures from a real forward pass of the tiny model, their shapes, and the page."""
import math
import random

import pytest
import torch

from model.checkpoint import build_model
from model.config import OBJECTIVES, load_config
from model.data import collate, pair_batches, product_records
from model.diagnostics import (
    KEY, RoutingStats, entropy, entropy_fall, modality_masks, render_routing_page, write_routing_page,
)
from model.losses import MoonLoss
from model.step import make_optimizer, train_step
from model.tokenizer import build_tokenizer
from tests.model.shards import product_rows


def batch_of(cfg, count=8, seed=0):
    rows = product_rows(count)
    records = product_records({k: [r[k] for r in rows] for k in rows[0]}, attributes=cfg.data.query_attributes)
    rng = random.Random(seed)
    batch, partner = next(pair_batches(records, count, rng))
    return collate(batch, partner, cfg, build_tokenizer(cfg.text), rng)


def test_modality_masks_split_visual_then_text_tokens():
    cfg = load_config("tiny")
    model, _ = build_model(cfg)
    batch = batch_of(cfg)
    views, _ = model(batch.images, batch.texts, batch.views, batch.image_masks)
    text_length = batch.texts["candidate"][0].shape[1]
    masks = modality_masks(views["c_mm"], text_length)
    assert torch.equal(masks["text"][:, -text_length:], batch.texts["candidate"][1])  # the title's real tokens
    assert not masks["text"][:, :-text_length].any() and masks["image"][:, :-text_length].any()
    image_only = modality_masks(views["c_i"], 0)
    assert not image_only["text"].any() and torch.equal(image_only["image"], views["c_i"].token_mask)


def test_epoch_figures_have_the_shapes_of_layers_experts_and_objectives():
    cfg = load_config("tiny", {"moe.num_experts": 3, "moe.top_k": 2, "moe.layers": 2})
    model, _ = build_model(cfg)
    loss_fn = MoonLoss(cfg.loss, cfg.moe)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    stats = RoutingStats(cfg.moe.num_experts, cfg.moe.layers, cfg.moe.top_k)
    sums = {}
    for step in range(2):
        metrics = train_step(model, loss_fn, batch_of(cfg, seed=step), optimizer, scheduler, step, 2, cfg,
                             observe=stats.observe)
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + v / 2
    figures = stats.epoch(model.objective_routing, sums)

    assert len(figures["usage_entropy"]) == 2 and len(figures["token_entropy"]) == 2
    assert all(0 <= h <= math.log(3) + 1e-6 for h in figures["usage_entropy"] + figures["token_entropy"])
    for modality in ("text", "image"):
        share = torch.tensor(figures["expert_share"][modality])
        assert share.shape == (2, 3)
        assert torch.allclose(share.sum(1), torch.ones(2, dtype=share.dtype), atol=1e-5)
        assert figures["tokens"][modality] > 0
    p = torch.tensor(figures["wstar_p"])
    assert p.shape == (3, len(OBJECTIVES)) and torch.allclose(p.sum(1), torch.ones(3, dtype=p.dtype), atol=1e-5)
    assert figures["wstar_entropy"] == pytest.approx(float(entropy(torch.softmax(model.objective_routing.detach(), 1)).mean()),
                                                     abs=1e-5)
    assert set(figures["omega"]) == set(OBJECTIVES)
    assert figures["omega"]["t->mm"] == pytest.approx(sums["omega_inter_t"], abs=1e-5)
    # the first step is kept as the start: W* is zero then, every expert's preference uniform
    assert figures["start"]["wstar_entropy"] == pytest.approx(math.log(len(OBJECTIVES)), abs=1e-6)
    assert stats.tokens.sum() == 0  # reset for the next epoch
    assert "start" not in stats.epoch(model.objective_routing)  # the start is in the first epoch's figures only


def test_usage_entropy_is_zero_when_one_expert_takes_every_token_and_log_z_when_spread():
    stats = RoutingStats(num_experts=4, layers=1, top_k=1)
    encoded = type("E", (), {})()
    mask = torch.ones(2, 5, dtype=torch.bool)
    one_expert = torch.tensor([10.0, 0.0, 0.0, 0.0]).expand(2, 5, 4)
    encoded.router_logits, encoded.token_mask = (one_expert,), mask
    output = type("O", (), {"views": {"c_t": encoded}, "objective_routing": torch.zeros(4, 4)})()
    batch = type("B", (), {"views": {"c_t": (None, "t")}, "texts": {"t": (torch.zeros(2, 5), mask)}})()
    stats.observe(output, batch)
    assert stats.epoch(None)["usage_entropy"][0] == pytest.approx(0.0, abs=1e-6)
    spread = torch.eye(4).repeat(3, 1)[:10].reshape(2, 5, 4) * 10.0  # tokens cycle over the four experts
    encoded.router_logits = (spread,)
    stats.observe(output, batch)
    figures = stats.epoch(None)
    assert figures["usage_entropy"][0] == pytest.approx(entropy(torch.tensor([0.3, 0.3, 0.2, 0.2])).item(), abs=1e-4)
    assert figures["expert_share"]["text"][0] == pytest.approx([0.3, 0.3, 0.2, 0.2], abs=1e-4)
    assert figures["tokens"] == {"text": 10, "image": 0}


def history(values):
    """metrics.jsonl rows whose W* entropy goes through `values` (the first one is the start)."""
    rows = []
    for epoch, value in enumerate(values[1:], start=1):
        figures = {"usage_entropy": [1.0, 0.9], "token_entropy": [1.2, 1.1], "wstar_entropy": value,
                   "expert_share": {"text": [[0.5, 0.5], [0.4, 0.6]], "image": [[0.7, 0.3], [0.2, 0.8]]},
                   "tokens": {"text": 10, "image": 20}, "wstar_p": [[0.7, 0.1, 0.1, 0.1], [0.25] * 4],
                   "omega": {m: 1.0 for m in OBJECTIVES}}
        if epoch == 1:
            figures["start"] = {**figures, "wstar_entropy": values[0], "usage_entropy": [1.3, 1.3]}
        rows.append({"epoch": epoch, "loss": 1.0, KEY: figures})
    return rows


def test_entropy_fall_is_measured_from_the_first_step_to_the_lowest_epoch():
    fall = entropy_fall(history([1.0, 0.8, 0.38, 0.5]))
    assert fall == pytest.approx({"start": 1.0, "lowest": 0.38, "epoch": 2, "fall": 0.62})
    assert entropy_fall(history([1.0, 0.8, 0.38, 0.5]), within=1)["fall"] == pytest.approx(0.2)
    assert entropy_fall(history([1.0, 0.8]), "usage_entropy")["start"] == pytest.approx(1.3)  # layers averaged
    assert entropy_fall([{"epoch": 1, "loss": 1.0}]) is None


def test_routing_page_draws_every_figure(tmp_path):
    page = render_routing_page(history([1.386, 1.0, 0.5]))
    assert page.count("<svg") == 3  # entropies, omega, shares
    assert "62 %" not in page and "64 % fall" in page  # 1.386 -> 0.5
    assert "expert 2" in page and "layer 2, image" in page and "0.700" in page  # the p matrix
    assert write_routing_page(tmp_path, history([1.386, 1.0])).name == "routing.html"
    assert write_routing_page(tmp_path / "x", [{"epoch": 1, "loss": 1.0}]) is None  # a dense model: no page
