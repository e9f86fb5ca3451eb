"""MOON2.0's training objective: dual-level alignment, Dynamic Sample Filtering, and the router terms.

    L = sum_{m in {t->mm, i->mm, mm->mm}} omega_m L_inter^m  +  omega_{i->t} L_intra
        + alpha L_load_balance + beta L_sparsity

- L_inter^m: InfoNCE of query view m (text, image, or image+text) against multimodal candidates; the positive
  is the query's own product, the negatives every other candidate of the batch (across workers), which include
  the triplet's mined negative (a product of the same category).
- L_intra: InfoNCE of a product's image-only embedding against text-only embeddings; the positive is its own
  title, the negatives the other products' titles, among them its triplet partner's.
- omega_m: objective weights from routing and W* (moe.py), renormalised to average one; all ones without W*.
- DSF: each triplet's terms are weighted by w = 1 if phi >= threshold else phi, with
  phi = sigmoid(kappa ((q.p) - (q.n) - margin)), computed without gradient; the margin decays over training.
  Weighted means divide by the sum of weights, not the batch size.

`MoonLoss` returns a dict whose `*_loss` entries are already weighted, so the total is their sum
(open_clip's convention); other entries are diagnostics. This module reads embeddings, never raw data.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from model.config import INTER_OBJECTIVES, OBJECTIVES, LossConfig, MoEConfig
from model.moe import (
    load_balancing_loss,
    normalise_objective_weights,
    objective_preference,
    objective_weights,
    sample_routing,
    sparsity_loss,
)


def info_nce(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    positive_index: torch.Tensor,
    temperature: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """-log softmax(q.c / tau)[positive], averaged over queries (weighted: sum(w * l) / sum(w)).

    queries: [Q, D], candidates: [C, D], positive_index: [Q] long, weights: [Q] or None.
    """
    logits = queries.float() @ candidates.float().T / temperature  # [Q, C]
    per_query = F.cross_entropy(logits, positive_index, reduction="none")  # [Q]
    if weights is None:
        return per_query.mean()
    return (per_query * weights).sum() / weights.sum().clamp_min(1e-12)


@torch.no_grad()
def dsf_reliability(
    query: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, kappa: float, margin: float
) -> torch.Tensor:
    """phi = sigmoid(kappa * ((q.p) - (q.n) - margin)) per triplet. [B, D] x 3 -> [B]"""
    gap = (query * positive).sum(-1) - (query * negative).sum(-1)
    return torch.sigmoid(kappa * (gap - margin))


def dsf_weights(phi: torch.Tensor, threshold: float, hard: bool = False) -> torch.Tensor:
    """Triplet weights: 1 where phi >= threshold; below it phi (soft, default) or 0 (hard)."""
    below = torch.zeros_like(phi) if hard else phi
    return torch.where(phi >= threshold, torch.ones_like(phi), below)


def dsf_margin(step: int, total_steps: int, start: float, end: float) -> float:
    """The DSF margin on a cosine from `start` (step 0) to `end` (last step)."""
    progress = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def gather_candidates(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All workers' candidates, with gradient through this worker's own slice; returns (all, offset of ours)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local, 0
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local.detach())
    rank = dist.get_rank()
    gathered[rank] = local
    return torch.cat(gathered), rank * local.shape[0]


class MoonLoss(nn.Module):
    """The weighted sum of the alignment, DSF, load-balancing and sparsity terms for one training batch.

    Inputs per call:
    - `queries`: objective name ("t->mm", "i->mm", "mm->mm") -> (EncoderOutput of the query views, index [Q_m]
      of the triplet each query belongs to). In joint mode every objective has all B triplets; in ratio mode
      each triplet appears under one objective.
    - `candidate_mm`, `candidate_image`, `candidate_text`: EncoderOutputs of each product's candidate views [B].
    - `partner`: [B] long, the in-batch index of each triplet's mined negative.
    - `wstar`: the model's W* parameter [Z, M]; `step`, `total_steps` drive the DSF margin.
    """

    def __init__(self, loss: LossConfig, moe: MoEConfig):
        super().__init__()
        self.cfg = loss
        self.moe = moe

    def forward(
        self,
        queries: Mapping[str, tuple],
        candidate_mm,
        candidate_image,
        candidate_text,
        partner: torch.Tensor,
        wstar: torch.Tensor,
        step: int,
        total_steps: int,
    ) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        batch = candidate_mm.embedding.shape[0]
        device = candidate_mm.embedding.device
        out: dict[str, torch.Tensor] = {}

        # 1. DSF: one reliability per triplet, from its multimodal query when it has one, else its only query.
        margin = dsf_margin(step, total_steps, cfg.dsf_margin_start, cfg.dsf_margin_end)
        phi = torch.ones(batch, device=device)
        for name in ("t->mm", "i->mm", "mm->mm"):  # later names overwrite: mm wins in joint mode
            if name in queries:
                encoded, index = queries[name]
                p = candidate_mm.embedding[index]
                n = candidate_mm.embedding[partner[index]]
                phi[index] = dsf_reliability(encoded.embedding, p, n, cfg.dsf_kappa, margin)
        dsf_active = cfg.dsf and step >= cfg.dsf_warmup * total_steps
        weights = dsf_weights(phi, cfg.dsf_threshold, cfg.dsf_hard) if dsf_active else torch.ones_like(phi)
        out["dsf_phi_mean"] = phi.mean().detach()
        out["dsf_below_threshold"] = (phi < cfg.dsf_threshold).float().mean().detach()
        out["dsf_margin"] = torch.tensor(margin)

        # 2. Raw alignment losses, one per objective present in the batch.
        candidates, offset = gather_candidates(candidate_mm.embedding)
        raw: dict[str, torch.Tensor] = {}
        for name in INTER_OBJECTIVES:
            if name in queries and queries[name][1].numel() > 0:
                encoded, index = queries[name]
                raw[name] = info_nce(encoded.embedding, candidates, index + offset, cfg.tau, weights[index])
        texts, text_offset = gather_candidates(candidate_text.embedding)
        own = torch.arange(batch, device=device) + text_offset
        raw["i->t"] = info_nce(candidate_image.embedding, texts, own, cfg.intra_tau, weights)

        # 3. Objective weights omega from routing and W*; ones without W* or without MoE layers.
        omega = self._objective_weights(queries, candidate_image, wstar, raw)
        for m, name in enumerate(OBJECTIVES):
            if name in raw:
                out[f"{_key(name)}_loss"] = omega[m] * raw[name]
                out[f"{_key(name)}_raw"] = raw[name].detach()
                out[f"omega_{_key(name)}"] = omega[m].detach()

        # 4. Router regularisers.
        router = self._router_logits(queries, candidate_mm, candidate_image, candidate_text)
        if router:
            out["load_balance_loss"] = cfg.alpha * load_balancing_loss(router)
            if self.moe.use_wstar:
                out["sparsity_loss"] = cfg.beta * sparsity_loss(objective_preference(wstar))
        return out

    def _objective_weights(self, queries, candidate_image, wstar, raw) -> torch.Tensor:
        active = torch.tensor([name in raw for name in OBJECTIVES], device=wstar.device)
        if not self.moe.use_wstar or not candidate_image.router_logits:
            return active.to(torch.float32)
        routing: list[torch.Tensor | None] = []
        for name in OBJECTIVES:
            encoded = candidate_image if name == "i->t" else queries.get(name, (None, None))[0]
            if encoded is None or name not in raw:
                routing.append(None)
            else:
                routing.append(sample_routing(encoded.router_logits, encoded.token_mask, self.moe.top_k))
        omega = objective_weights(objective_preference(wstar), routing)
        omega = normalise_objective_weights(omega, active, self.cfg.omega_min)
        return omega if self.cfg.omega_grad else omega.detach()

    @staticmethod
    def _router_logits(queries, *candidates) -> list[torch.Tensor]:
        """Per MoE layer, the router logits of every real token of every view: [N_l, Z]."""
        encoded = [q for q, _ in queries.values()] + list(candidates)
        layers = len(encoded[0].router_logits)
        return [
            torch.cat([e.router_logits[layer][e.token_mask] for e in encoded]) for layer in range(layers)
        ]


def _key(objective: str) -> str:
    """'t->mm' -> 'inter_t', 'i->t' -> 'intra' (loss dict keys)."""
    return "intra" if objective == "i->t" else "inter_" + objective.split("->")[0]


def total_loss(losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return sum(value for key, value in losses.items() if key.endswith("_loss"))
