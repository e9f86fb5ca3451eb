"""Each loss term against values computed by hand."""
import math

import pytest
import torch

from model.config import LossConfig, MoEConfig
from model.losses import MoonLoss, dsf_margin, dsf_reliability, dsf_weights, info_nce, total_loss
from model.model import EncoderOutput

LOG_1P_EXP_M1 = math.log(1 + math.exp(-1))  # -log(e / (e + 1)): positive logit 1, one negative logit 0


def test_info_nce_with_one_negative():
    q = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert info_nce(q, c, torch.tensor([0]), temperature=1.0).item() == pytest.approx(LOG_1P_EXP_M1)


def test_info_nce_temperature_divides_the_logits():
    q = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # logits [2, 0] -> log(1 + e^-2)
    loss = info_nce(q, c, torch.tensor([0]), temperature=0.5).item()
    assert loss == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_info_nce_weighted_mean_divides_by_the_sum_of_weights():
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # query 0 -> positive 0: log(1 + e^-1); query 1 -> positive 1: log(1 + e^1)
    l0, l1 = LOG_1P_EXP_M1, math.log(1 + math.e)
    loss = info_nce(q, c, torch.tensor([0, 1]), 1.0, weights=torch.tensor([1.0, 0.25]))
    assert loss.item() == pytest.approx((l0 + 0.25 * l1) / 1.25)


def test_dsf_reliability_is_sigmoid_of_the_scaled_margin_gap():
    q = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[0.8, 0.6]])
    n = torch.tensor([[0.6, 0.8]])
    # gap = 0.8 - 0.6 = 0.2
    assert dsf_reliability(q, p, n, kappa=10.0, margin=0.1).item() == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert dsf_reliability(q, p, n, kappa=10.0, margin=0.2).item() == pytest.approx(0.5)


def test_dsf_weights_soft_and_hard():
    phi = torch.tensor([0.7, 0.6, 0.59, 0.2])
    assert torch.allclose(dsf_weights(phi, 0.6), torch.tensor([1.0, 1.0, 0.59, 0.2]))
    assert dsf_weights(phi, 0.6, hard=True).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_dsf_margin_decays_on_a_cosine():
    assert dsf_margin(0, 11, 0.2, 0.0) == pytest.approx(0.2)
    assert dsf_margin(5, 11, 0.2, 0.0) == pytest.approx(0.1)
    assert dsf_margin(10, 11, 0.2, 0.0) == pytest.approx(0.0)


# ---- MoonLoss on a two-triplet batch: embeddings in 2-D, temperature 1 -------------------------------------
E0, E1 = [1.0, 0.0], [0.0, 1.0]


def encoded(rows, router=None, tokens=1):
    embedding = torch.tensor(rows)
    logits = () if router is None else (router.expand(len(rows), tokens, -1),)
    return EncoderOutput(embedding, logits, torch.ones(len(rows), tokens, dtype=torch.bool))


def batch_inputs(router=None):
    index = torch.tensor([0, 1])
    queries = {
        "t->mm": (encoded([E0, E1], router), index),  # each query on its own product: log(1 + e^-1)
        "i->mm": (encoded([E1, E0], router), index),  # each query on the other product: log(1 + e)
        "mm->mm": (encoded([E0, E1], router), index),
    }
    c_mm = encoded([E0, E1], router)
    c_i = encoded([E0, E1], router)
    c_t = encoded([E1, E0], router)  # each image's own title is the other vector: log(1 + e)
    return queries, c_mm, c_i, c_t, torch.tensor([1, 0])


def no_dsf(**kwargs):
    return LossConfig(tau=1.0, intra_tau=1.0, dsf=False, **kwargs)


def test_moon_loss_without_wstar_sums_unweighted_terms():
    loss = MoonLoss(no_dsf(), MoEConfig(use_wstar=False))
    out = loss(*batch_inputs(), wstar=torch.zeros(4, 4), step=0, total_steps=10)
    assert out["inter_t_loss"].item() == pytest.approx(LOG_1P_EXP_M1)
    assert out["inter_i_loss"].item() == pytest.approx(math.log(1 + math.e))
    assert out["inter_mm_loss"].item() == pytest.approx(LOG_1P_EXP_M1)
    assert out["intra_loss"].item() == pytest.approx(math.log(1 + math.e))
    assert total_loss(out).item() == pytest.approx(2 * LOG_1P_EXP_M1 + 2 * math.log(1 + math.e))
    assert "sparsity_loss" not in out and "load_balance_loss" not in out  # no router logits, no W*


def test_moon_loss_weights_objectives_by_wstar_routing_support():
    # Z=2 experts; every token routed to expert 0 (top-1); W* row 0 prefers t->mm: p_0 = [1/2, 1/6, 1/6, 1/6]
    router = torch.tensor([[[20.0, -20.0]]])
    wstar = torch.zeros(2, 4)
    wstar[0, 0] = math.log(3.0)
    cfg = no_dsf(alpha=0.5, beta=0.25, omega_min=0.1)
    loss = MoonLoss(cfg, MoEConfig(num_experts=2, top_k=1, use_wstar=True))
    out = loss(*batch_inputs(router), wstar=wstar, step=0, total_steps=10)
    # omega = p_0 = [1/2, 1/6, 1/6, 1/6], rescaled to average one over 4 objectives: [2, 2/3, 2/3, 2/3]
    assert out["omega_inter_t"].item() == pytest.approx(2.0, rel=1e-5)
    assert out["omega_intra"].item() == pytest.approx(2 / 3, rel=1e-5)
    assert out["inter_t_loss"].item() == pytest.approx(2.0 * LOG_1P_EXP_M1, rel=1e-5)
    assert out["inter_i_loss"].item() == pytest.approx(2 / 3 * math.log(1 + math.e), rel=1e-5)
    # sparsity: mean of H([1/2, 1/6, 1/6, 1/6]) and H(uniform over 4)
    h0 = -(0.5 * math.log(0.5) + 3 * (1 / 6) * math.log(1 / 6))
    assert out["sparsity_loss"].item() == pytest.approx(0.25 * (h0 + math.log(4)) / 2, rel=1e-5)
    # load balance: every token's top-1 is expert 0 with probability ~1 -> Z * 1 * 1 = 2
    assert out["load_balance_loss"].item() == pytest.approx(0.5 * 2.0, rel=1e-5)


def test_moon_loss_dsf_down_weights_unreliable_triplets():
    # triplet 0: q.p - q.n = 1 - 0 = 1 -> phi = sigmoid(10 * (1 - 0.2)) ~ 1 -> weight 1
    # triplet 1: its mm query E0 sits on its negative (product 0): gap -1 -> phi = sigmoid(-12) -> weight phi
    queries, c_mm, c_i, c_t, partner = batch_inputs()
    queries["mm->mm"] = (encoded([E0, E0]), torch.tensor([0, 1]))
    cfg = LossConfig(tau=1.0, intra_tau=1.0, dsf=True, dsf_warmup=0.0, dsf_margin_start=0.2, dsf_margin_end=0.2)
    out = MoonLoss(cfg, MoEConfig(use_wstar=False))(queries, c_mm, c_i, c_t, partner, torch.zeros(4, 4), 0, 10)
    phi1 = 1 / (1 + math.exp(12.0))
    w = [1.0, phi1]
    # t->mm: both queries have loss log(1 + e^-1), so the weighted mean is unchanged
    assert out["inter_t_loss"].item() == pytest.approx(LOG_1P_EXP_M1)
    # mm->mm: query 0 -> log(1 + e^-1); query 1 (E0 vs positive E1) -> log(1 + e)
    expected = (w[0] * LOG_1P_EXP_M1 + w[1] * math.log(1 + math.e)) / (w[0] + w[1])
    assert out["inter_mm_loss"].item() == pytest.approx(expected, rel=1e-5)
    assert out["dsf_below_threshold"].item() == pytest.approx(0.5)


def test_moon_loss_dsf_waits_for_its_warmup():
    queries, c_mm, c_i, c_t, partner = batch_inputs()
    queries["mm->mm"] = (encoded([E0, E0]), torch.tensor([0, 1]))
    cfg = LossConfig(tau=1.0, intra_tau=1.0, dsf=True, dsf_warmup=0.5)
    out = MoonLoss(cfg, MoEConfig(use_wstar=False))(queries, c_mm, c_i, c_t, partner, torch.zeros(4, 4), 2, 10)
    assert out["inter_mm_loss"].item() == pytest.approx((LOG_1P_EXP_M1 + math.log(1 + math.e)) / 2)


def test_moon_loss_ratio_mode_uses_only_the_objectives_present():
    _, c_mm, c_i, c_t, partner = batch_inputs()
    queries = {"i->mm": (encoded([E1]), torch.tensor([1]))}  # one image query, on triplet 1
    out = MoonLoss(no_dsf(), MoEConfig(use_wstar=False))(queries, c_mm, c_i, c_t, partner, torch.zeros(4, 4), 0, 10)
    assert set(k for k in out if k.endswith("_loss")) == {"inter_i_loss", "intra_loss"}
    assert out["inter_i_loss"].item() == pytest.approx(LOG_1P_EXP_M1)
