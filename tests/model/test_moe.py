"""The router and its losses against values computed by hand."""
import math

import pytest
import torch
from torch import nn

from model.moe import (
    ModalityDrivenMoE,
    load_balancing_loss,
    normalise_objective_weights,
    objective_preference,
    objective_weights,
    routing_weights,
    sample_routing,
    sparsity_loss,
)


def logits_for(probs):
    """Router logits whose softmax is `probs` (log-probabilities)."""
    return torch.tensor(probs, dtype=torch.float32).log()


def test_routing_weights_keep_top_k_and_renormalise():
    weights, selected = routing_weights(logits_for([[0.1, 0.2, 0.3, 0.4]]), top_k=2)
    # top-2 are 0.3 and 0.4 -> 3/7 and 4/7
    assert torch.allclose(weights, torch.tensor([[0.0, 0.0, 3 / 7, 4 / 7]]))
    assert selected.tolist() == [[False, False, True, True]]


def test_routing_weights_are_float32_for_bf16_logits():
    weights, _ = routing_weights(logits_for([[0.25, 0.75]]).to(torch.bfloat16), top_k=1)
    assert weights.dtype == torch.float32
    assert weights.tolist() == [[0.0, 1.0]]


def test_sample_routing_averages_real_tokens_then_layers():
    # one sample, three tokens, the last is padding; top-1 routing
    layer1 = logits_for([[[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1]]])
    layer2 = logits_for([[[0.1, 0.1, 0.1, 0.7], [0.1, 0.1, 0.1, 0.7], [0.7, 0.1, 0.1, 0.1]]])
    mask = torch.tensor([[True, True, False]])
    routing = sample_routing([layer1, layer2], mask, top_k=1)
    # layer 1: tokens to experts 0 and 1 -> [0.5, 0.5, 0, 0]; layer 2: both to 3 -> [0, 0, 0, 1]
    assert torch.allclose(routing, torch.tensor([[0.25, 0.25, 0.0, 0.5]]))


def test_objective_preference_is_softmax_over_objectives_per_expert():
    wstar = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    assert torch.allclose(objective_preference(wstar), torch.tensor([[0.25, 0.75], [0.5, 0.5]]))


def test_objective_weights_are_mean_support_of_the_objectives_samples():
    preference = torch.tensor([[0.25, 0.75], [0.5, 0.5]])  # [Z=2, M=2]
    routing = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.5, 0.5]])]
    omega = objective_weights(preference, routing)
    # m=0: mean(0.25, 0.5) = 0.375; m=1: 0.5 * 0.75 + 0.5 * 0.5 = 0.625
    assert torch.allclose(omega, torch.tensor([0.375, 0.625]))


def test_objective_weight_of_an_objective_without_samples_is_zero():
    omega = objective_weights(torch.full((2, 2), 0.5), [torch.tensor([[1.0, 0.0]]), None])
    assert omega.tolist() == [0.5, 0.0]


def test_normalised_objective_weights_average_one_over_active_objectives_with_a_floor():
    omega = torch.tensor([0.375, 0.625, 0.3])
    active = torch.tensor([True, True, False])
    assert torch.allclose(normalise_objective_weights(omega, active, floor=0.1), torch.tensor([0.75, 1.25, 0.0]))
    assert torch.allclose(normalise_objective_weights(omega, active, floor=0.9), torch.tensor([0.9, 1.25, 0.0]))


def test_sparsity_loss_is_mean_entropy_of_expert_preferences():
    preference = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    assert sparsity_loss(preference).item() == pytest.approx(math.log(2) / 2)


def test_load_balancing_loss_switch_form():
    # layer 1: top-1 experts [0, 0, 1, 0] -> f = [0.75, 0.25]; P = [0.65, 0.35] -> 2 * (0.4875 + 0.0875) = 1.15
    layer1 = logits_for([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    # layer 2: balanced -> f = P = [0.5, 0.5] -> 1.0
    layer2 = logits_for([[0.7, 0.3], [0.3, 0.7]])
    assert load_balancing_loss([layer1]).item() == pytest.approx(1.15, abs=1e-6)
    assert load_balancing_loss([layer1, layer2]).item() == pytest.approx(1.075, abs=1e-6)


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_moe_block_mixes_top_k_expert_outputs_by_routing_weight():
    moe = ModalityDrivenMoE([Scale(1.0), Scale(2.0), Scale(3.0)], width=2, top_k=2)
    with torch.no_grad():
        moe.gate.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    h = torch.tensor([[[2.0, 1.0]]])  # logits [2, 1, 0]: experts 0 and 1 are the top 2
    out, router_logits = moe(h)
    p0, p1 = math.exp(2), math.exp(1)
    w0, w1 = p0 / (p0 + p1), p1 / (p0 + p1)
    expected = h * (w0 * 1.0 + w1 * 2.0)
    assert torch.allclose(out, expected)
    assert router_logits.tolist() == [[[2.0, 1.0, 0.0]]]


def test_moe_block_with_identical_experts_equals_the_dense_ffn():
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
    import copy

    moe = ModalityDrivenMoE([copy.deepcopy(dense) for _ in range(4)], width=8, top_k=2)
    h = torch.randn(3, 5, 8)
    out, _ = moe(h)
    assert torch.allclose(out, dense(h), atol=1e-6)
