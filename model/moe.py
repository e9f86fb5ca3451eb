"""Modality-driven Mixture-of-Experts: the expert FFN block and the router's losses.

The block (`ModalityDrivenMoE`) is a drop-in replacement for a transformer FFN. It routes each token to its
top-k experts with weights G~ (the router softmax G = softmax(W_g h), renormalised over the top k) and returns
`(output, router_logits)`, as Mixtral's sparse block does. Everything the MOON2.0 objective needs from routing
is a free function of those logits, so the block stays a plain FFN:

- `routing_weights`: G~ from router logits (softmax in float32, top-k, renormalise);
- `sample_routing`: G~_{z,b}, one routing vector per input sample (mean over its tokens, then over layers);
- `objective_preference`: p_{z,m} = softmax over objectives of the dual-alignment matrix W* (experts x objectives);
- `objective_weights`: omega_m = mean over the samples b of objective m of sum_z p_{z,m} G~_{z,b};
- `sparsity_loss`: mean over experts of the entropy of p_{z,.};
- `load_balancing_loss`: the Switch Transformer auxiliary loss.

MOON2.0 (arXiv 2511.12449) defines G, W*, p, omega and the sparsity loss; it adds "the standard load balancing
term" without giving its form, for which we use Switch's (Fedus et al. 2021, arXiv 2101.03961, eq. 4-6).
This module knows nothing about views, batches or datasets.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ModalityDrivenMoE(nn.Module):
    """Z expert FFNs behind a linear token router. Trained from scratch, each expert has its own random init;
    from a dense checkpoint, every expert starts as a copy of the dense FFN (upcycling, see pretrained.py)."""

    def __init__(self, experts: Sequence[nn.Module], width: int, top_k: int):
        super().__init__()
        self.num_experts = len(experts)
        self.top_k = top_k
        self.gate = nn.Linear(width, self.num_experts, bias=False)  # W_g
        self.experts = nn.ModuleList(experts)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length, width = hidden.shape
        tokens = hidden.reshape(-1, width)  # [N, D], N = batch * length
        router_logits = self.gate(tokens)  # [N, Z]
        weights, selected = routing_weights(router_logits, self.top_k)  # [N, Z] float32, [N, Z] bool
        out = torch.zeros_like(tokens)
        for z, expert in enumerate(self.experts):
            index = selected[:, z].nonzero(as_tuple=True)[0]  # tokens routed to expert z
            if index.numel() == 0:
                continue
            contribution = expert(tokens[index]) * weights[index, z, None].to(tokens.dtype)
            out.index_add_(0, index, contribution)
        return out.reshape(batch, length, width), router_logits.reshape(batch, length, self.num_experts)


def routing_weights(router_logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """G~: the router softmax kept on each token's top-k experts and renormalised to sum to one.

    router_logits: [..., Z]. Returns (weights [..., Z] float32 with zeros off the top k, selected [..., Z] bool).
    """
    probs = F.softmax(router_logits, dim=-1, dtype=torch.float32)  # G; float32 keeps near-ties stable in bf16
    top_values, top_index = probs.topk(top_k, dim=-1)
    top_values = top_values / top_values.sum(dim=-1, keepdim=True)
    weights = torch.zeros_like(probs).scatter(-1, top_index, top_values)
    selected = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, top_index, True)
    return weights, selected


def sample_routing(
    router_logits: Sequence[torch.Tensor], token_mask: torch.Tensor, top_k: int
) -> torch.Tensor:
    """G~_{z,b}: each sample's routing vector, the mean of G~ over its valid tokens, then over MoE layers.

    router_logits: one [B, T, Z] tensor per MoE layer; token_mask: [B, T], True on real (non-padding) tokens.
    Returns [B, Z]; each row sums to one.
    """
    mask = token_mask.to(torch.float32).unsqueeze(-1)  # [B, T, 1]
    per_layer = []
    for logits in router_logits:
        weights, _ = routing_weights(logits, top_k)  # [B, T, Z]
        per_layer.append((weights * mask).sum(1) / mask.sum(1).clamp_min(1.0))  # [B, Z]
    return torch.stack(per_layer).mean(0)


def objective_preference(wstar: torch.Tensor) -> torch.Tensor:
    """p_{z,m} = exp(W*_{z,m}) / sum_m' exp(W*_{z,m'}): each expert's preference over the M objectives. [Z, M]"""
    return F.softmax(wstar, dim=1, dtype=torch.float32)


def objective_weights(preference: torch.Tensor, routing: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """omega_m = (1/|B_m|) sum_{b in B_m} sum_z p_{z,m} G~_{z,b}, the experts' collective support for objective m.

    preference: [Z, M]; routing: for each objective m, the [B_m, Z] routing vectors of its samples, or None when
    the batch holds no sample of m (its weight is then 0). Returns [M].
    """
    omegas = []
    for m, samples in enumerate(routing):
        if samples is None or samples.shape[0] == 0:
            omegas.append(preference.new_zeros(()))
        else:
            omegas.append((samples.float() @ preference[:, m]).mean())
    return torch.stack(omegas)


def normalise_objective_weights(omega: torch.Tensor, active: torch.Tensor, floor: float) -> torch.Tensor:
    """Rescale the active objectives' weights to average one, then floor them, so that no objective collapses.

    omega: [M]; active: [M] bool, objectives present in the batch. Inactive objectives get 0.
    """
    active_f = active.to(omega.dtype)
    total = (omega * active_f).sum().clamp_min(1e-12)
    scaled = omega * active_f.sum() / total
    return torch.where(active, scaled.clamp_min(floor), torch.zeros_like(scaled))


def sparsity_loss(preference: torch.Tensor) -> torch.Tensor:
    """L_sparsity = (1/Z) sum_z [ -sum_m p_{z,m} log p_{z,m} ]: low when each expert prefers few objectives."""
    entropy = -(preference * preference.clamp_min(1e-12).log()).sum(dim=1)  # [Z]
    return entropy.mean()


def load_balancing_loss(router_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Switch Transformer's auxiliary loss, Z * sum_z f_z * P_z, averaged over MoE layers.

    router_logits: one [N, Z] tensor per MoE layer holding only real tokens (padding already removed). f_z is
    the fraction of tokens whose top-1 expert is z, P_z the mean router probability of z. Its minimum, 1, is
    reached when tokens spread evenly over the experts.
    """
    losses = []
    for logits in router_logits:
        num_experts = logits.shape[-1]
        probs = F.softmax(logits, dim=-1, dtype=torch.float32)  # [N, Z]
        top1 = F.one_hot(probs.argmax(dim=-1), num_experts).to(torch.float32)  # [N, Z]
        losses.append(num_experts * (top1.mean(0) * probs.mean(0)).sum())
    return torch.stack(losses).mean()
