"""Routing diagnostics over training: how the modality-driven MoE routes tokens, and how W* shares out the
objectives, per epoch.

`RoutingStats` accumulates, over the training steps of an epoch, from the router logits every view of a batch
produced (every real token of every view, as the load-balancing loss sees them):

- `usage_entropy` [layers]: the entropy (nats) of each MoE layer's expert usage, the mean over tokens of the
  routing weights G~ (a token counts for each of its top-k experts by its weight). log Z when every expert gets
  the same share, 0 when one expert takes every token.
- `token_entropy` [layers]: the mean over tokens of the entropy of the router softmax G: how decided each
  token's routing is (log Z: undecided).
- `expert_share` {text, image} -> [layers][Z]: the share of each modality's tokens routed to each expert
  (routing weight G~ averaged over the modality's real tokens; each row sums to one).
- `wstar_p` [Z][M]: p_{z,m} = softmax over objectives of W* at the end of the epoch, M in `OBJECTIVES` order;
  `wstar_entropy`: the mean over experts of the entropy of p_{z,.} (what L_sparsity is, before beta).
- `omega` {objective: value}: the epoch's mean objective weights (from the loss's `omega_*` metrics).

`start` holds the same figures (omega aside) for the first step of the run (the untrained router and W*), the reference an
"entropy fell by x %" is measured against. With several workers, the sums are all-reduced before the epoch's
figures are taken. `write_routing_page` draws them over the epochs as one HTML page (inline SVG, no script).
This module reads router logits and parameters; it never changes training.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from model.config import OBJECTIVES
from model.moe import objective_preference, routing_weights

MODALITIES = ("text", "image")
KEY = "routing"  # the metrics key that holds the per-epoch figures
PAGE = "routing.html"


def entropy(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy in nats along `dim`; 0 log 0 = 0."""
    return -(p * p.clamp_min(1e-12).log()).sum(dim)


def modality_masks(encoded, text_length: int) -> dict[str, torch.Tensor]:
    """Real text and image tokens of one view's EncoderOutput. The sequence is [visual ; text]: its last
    `text_length` positions are text (0 for an image-only view). Returns {modality: [B, T] bool}."""
    mask = encoded.token_mask
    length = mask.shape[1]
    is_text = torch.zeros(length, dtype=torch.bool, device=mask.device)
    if text_length:
        is_text[length - text_length:] = True
    return {"text": mask & is_text, "image": mask & ~is_text}


class RoutingStats:
    """Sums of routing figures over an epoch's steps; `epoch()` turns them into the epoch's diagnostics."""

    def __init__(self, num_experts: int, layers: int, top_k: int, record_start: bool = True):
        """record_start: keep the first observed step's figures as `start` (False when resuming a run)."""
        self.num_experts, self.layers, self.top_k = num_experts, layers, top_k
        self.start: dict[str, Any] | None = None
        self.record_start, self.start_reported = record_start, False
        self.reset()

    def reset(self) -> None:
        z, layers = self.num_experts, self.layers
        self.weight = torch.zeros(len(MODALITIES), layers, z, dtype=torch.float64)  # summed G~ per modality
        self.tokens = torch.zeros(len(MODALITIES), layers, dtype=torch.float64)  # real tokens per modality
        self.token_entropy = torch.zeros(layers, dtype=torch.float64)  # summed entropy of G over tokens

    @torch.no_grad()
    def observe(self, output, batch) -> None:
        """One training step: `output` is the model's ModelOutput (views, W*), `batch` its TrainBatch."""
        weight = torch.zeros_like(self.weight)
        tokens = torch.zeros_like(self.tokens)
        token_entropy = torch.zeros_like(self.token_entropy)
        for name, encoded in output.views.items():
            if not encoded.router_logits:
                continue
            text_name = batch.views[name][1]
            masks = modality_masks(encoded, batch.texts[text_name][0].shape[1] if text_name is not None else 0)
            for layer, logits in enumerate(encoded.router_logits):
                g_tilde, _ = routing_weights(logits.detach(), self.top_k)  # [B, T, Z]
                probs = F.softmax(logits.detach(), dim=-1, dtype=torch.float32)
                token_entropy[layer] += entropy(probs[encoded.token_mask]).double().sum().cpu()
                for m, modality in enumerate(MODALITIES):
                    selected = masks[modality]
                    weight[m, layer] += g_tilde[selected].double().sum(0).cpu()
                    tokens[m, layer] += float(selected.sum())
        if self.record_start and self.start is None and tokens.sum() > 0:
            self.start = _figures(weight, tokens, token_entropy, output.objective_routing, {})
        self.weight += weight
        self.tokens += tokens
        self.token_entropy += token_entropy

    def epoch(self, wstar: torch.Tensor | None, epoch_metrics: Mapping[str, float] | None = None) -> dict[str, Any]:
        """The epoch's diagnostics (summed over workers when training is distributed), then a reset.
        epoch_metrics: the epoch's mean loss metrics, whose omega_* entries give the objective weights."""
        weight, tokens, token_entropy = _all_reduce(self.weight, self.tokens, self.token_entropy)
        out = _figures(weight, tokens, token_entropy, wstar, dict(_omega(epoch_metrics or {})))
        if self.start is not None and not self.start_reported:  # in the first epoch's figures only
            out["start"] = self.start
            self.start_reported = True
        self.reset()
        return out


def _figures(weight, tokens, token_entropy, wstar, omega) -> dict[str, Any]:
    """weight [2, L, Z], tokens [2, L], token_entropy [L] sums -> the diagnostics as plain lists and floats."""
    all_weight, all_tokens = weight.sum(0), tokens.sum(0).clamp_min(1.0)  # [L, Z], [L]
    usage = all_weight / all_tokens[:, None]
    out: dict[str, Any] = {
        "usage_entropy": _round(entropy(usage).tolist()),
        "token_entropy": _round((token_entropy / all_tokens).tolist()),
        "expert_share": {m: _round((weight[i] / tokens[i].clamp_min(1.0)[:, None]).tolist())
                         for i, m in enumerate(MODALITIES)},
        "tokens": {m: int(tokens[i, 0]) if tokens.shape[1] else 0 for i, m in enumerate(MODALITIES)},
        "omega": {k: round(v, 6) for k, v in omega.items()},
    }
    if wstar is not None:
        p = objective_preference(wstar.detach().float().cpu())
        out["wstar_p"] = _round(p.tolist())
        out["wstar_entropy"] = round(float(entropy(p).mean()), 6)
    return out


def _omega(metrics: Mapping[str, float]):
    """(objective, omega) pairs from the loss's omega_* metrics, named as in OBJECTIVES."""
    names = {"omega_inter_t": "t->mm", "omega_inter_i": "i->mm", "omega_inter_mm": "mm->mm", "omega_intra": "i->t"}
    return [(names[k], float(v)) for k, v in metrics.items() if k in names]


def _all_reduce(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensors
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    out = []
    for t in tensors:
        t = t.to(backend_device)
        dist.all_reduce(t)
        out.append(t.cpu())
    return tuple(out)


def _round(values, digits: int = 6):
    if isinstance(values, list):
        return [_round(v, digits) for v in values]
    return round(float(values), digits)


# ---------------------------------------------------------------------------------------------------------
# Reading them back
# ---------------------------------------------------------------------------------------------------------
def entropy_fall(history: Sequence[Mapping[str, Any]], figure: str = "wstar_entropy",
                 within: int | None = None) -> dict[str, float] | None:
    """How far an entropy fell from the run's first step to its lowest epoch value (within the first `within`
    epochs, or all): {"start", "lowest", "epoch", "fall"} with fall = 1 - lowest / start. Per-layer figures are
    averaged over layers. None when the history has no routing figures."""
    rows = [r for r in history if KEY in r and figure in r[KEY]]
    if not rows or "start" not in rows[0][KEY] or figure not in rows[0][KEY]["start"]:
        return None
    value = lambda fig: sum(fig) / len(fig) if isinstance(fig, list) else fig  # noqa: E731
    start = value(rows[0][KEY]["start"][figure])
    rows = rows[:within] if within else rows
    lowest_row = min(rows, key=lambda r: value(r[KEY][figure]))
    lowest = value(lowest_row[KEY][figure])
    return {"start": start, "lowest": lowest, "epoch": lowest_row.get("epoch", 0),
            "fall": 1.0 - lowest / start if start > 0 else 0.0}


# ---------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------
SERIES_COLOURS = ("#4f6bed", "#d64545", "#1f9d63", "#d98e04", "#7a5af8", "#0d7a8a", "#b02a68", "#687086")


def write_routing_page(output_dir: str | Path, history: Sequence[Mapping[str, Any]]) -> Path | None:
    """Write `routing.html` into a training output directory from its per-epoch metrics; None when the history
    holds no routing figures (a dense model)."""
    rows = [r for r in history if KEY in r]
    if not rows:
        return None
    path = Path(output_dir) / PAGE
    path.write_text(render_routing_page(rows))
    return path


def render_routing_page(history: Sequence[Mapping[str, Any]]) -> str:
    from augment.ops.report import charts

    rows = [r[KEY] for r in history]
    epochs = [int(r.get("epoch", i + 1)) for i, r in enumerate(history)]
    start = rows[0].get("start")
    x = ([0] if start else []) + epochs  # epoch 0: the first step, before any update
    points = ([start] if start else []) + rows
    layers = len(rows[0]["usage_entropy"])
    experts = len(rows[0]["expert_share"]["text"][0]) if layers else 0
    sections = []

    entropy_series = []
    for layer in range(layers):
        entropy_series.append((f"usage, MoE layer {layer + 1}", [p["usage_entropy"][layer] for p in points]))
        entropy_series.append((f"per token, MoE layer {layer + 1}", [p["token_entropy"][layer] for p in points]))
    if all("wstar_entropy" in p for p in points):
        entropy_series.append(("W* preference p(z, ·)", [p["wstar_entropy"] for p in points]))
    falls = []
    for figure, label in (("wstar_entropy", "W* preference entropy"), ("usage_entropy", "expert-usage entropy"),
                          ("token_entropy", "per-token routing entropy")):
        fall = entropy_fall(history, figure)
        if fall:
            change = (f"{100 * fall['fall']:.0f} % fall" if fall["fall"] >= 0
                      else f"never below the start: {-100 * fall['fall']:.0f} % above it")
            falls.append(f"{label}: {fall['start']:.3f} → lowest {fall['lowest']:.3f} nats at epoch {fall['epoch']} "
                         f"({change})")
    sections.append(_panel(
        "Entropies (nats)", charts.lines(x, entropy_series, SERIES_COLOURS, y_min=0.0,
                                         y_max=max(math.log(max(experts, 2)), math.log(len(OBJECTIVES)))),
        f"Epoch 0 is the first training step. Maximum: log Z = {math.log(max(experts, 1)):.3f} (experts), "
        f"log M = {math.log(len(OBJECTIVES)):.3f} (objectives). " + "; ".join(falls)))

    omega_names = [m for m in OBJECTIVES if all(m in r.get("omega", {}) for r in rows)]
    if omega_names:
        sections.append(_panel("Objective weights ω_m (epoch means)", charts.lines(
            epochs, [(m, [r["omega"][m] for r in rows]) for m in omega_names], SERIES_COLOURS, y_min=0.0),
            "Rescaled to average 1 over the objectives of a batch, floored at loss.omega_min."))

    last = rows[-1]
    if "wstar_p" in last:
        sections.append(_panel(f"p(z, m) of W* after epoch {epochs[-1]}", _heatmap(last["wstar_p"]),
                               "Each expert's preference over the objectives (rows sum to 1)."))
    share_rows = []
    for layer in range(layers):
        for modality in MODALITIES:
            share = last["expert_share"][modality][layer]
            if last.get("tokens", {}).get(modality, 1):
                share_rows.append((f"layer {layer + 1}, {modality}",
                                   [(f"expert {z + 1}", v) for z, v in enumerate(share)],
                                   " / ".join(f"{100 * v:.0f}" for v in share)))
    colours = {f"expert {z + 1}": SERIES_COLOURS[z % len(SERIES_COLOURS)] for z in range(experts)}
    sections.append(_panel(f"Share of tokens per expert by modality, epoch {epochs[-1]}",
                           charts.stacked(share_rows, colours),
                           "A token counts for each of its top-k experts by its routing weight G~; percent."))
    table = "".join(
        f"<tr><td>{e}</td>" + "".join(f"<td>{v:.3f}</td>" for v in r["usage_entropy"] + r["token_entropy"])
        + f"<td>{r.get('wstar_entropy', float('nan')):.3f}</td></tr>" for e, r in zip(epochs, rows))
    head = "".join(f"<th>usage L{i + 1}</th>" for i in range(layers)) + "".join(
        f"<th>token L{i + 1}</th>" for i in range(layers))
    sections.append(_panel("Per epoch", f"<table><thead><tr><th>epoch</th>{head}<th>W*</th></tr></thead>"
                                        f"<tbody>{table}</tbody></table>"))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Routing diagnostics</title>'
        f"<style>{_CSS}</style></head><body><main><h1>Routing diagnostics</h1>"
        f'<p class="note">{len(rows)} epochs, {layers} MoE layers, {experts} experts, objectives '
        f'{", ".join(OBJECTIVES)}.</p>{"".join(sections)}</main></body></html>'
    )


def _heatmap(p: Sequence[Sequence[float]]) -> str:
    head = "".join(f"<th>{html.escape(m)}</th>" for m in OBJECTIVES)
    body = []
    for z, row in enumerate(p):
        cells = "".join(
            f'<td style="background: rgba(79,107,237,{min(1.0, v):.2f}); color: {"#fff" if v > 0.55 else "#1d2230"}">'
            f"{v:.3f}</td>" for v in row)
        body.append(f"<tr><td>expert {z + 1}</td>{cells}</tr>")
    return f'<table class="heat"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _panel(title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return f'<section class="panel"><h2>{html.escape(title)}</h2>{body}{note_html}</section>'


_CSS = """
body { margin: 0; background: #f5f6fa; color: #1d2230; font: 14px/1.5 -apple-system, "Segoe UI", Roboto, Arial,
  "DejaVu Sans", sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 4px 0; } h2 { font-size: 16px; margin: 0 0 12px; }
section.panel { background: #fff; border: 1px solid #e3e6ee; border-radius: 10px; padding: 18px 20px; margin: 16px 0; }
.note { color: #687086; font-size: 12.5px; margin: 8px 0 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e3e6ee; text-align: right; }
th { color: #687086; font-weight: 600; font-size: 12px; }
svg.chart { max-width: 100%; height: auto; display: block; }
svg.chart text { font-size: 12px; fill: #1d2230; dominant-baseline: middle; }
svg.chart text.value, svg.chart text.legend, svg.chart text.axis { fill: #687086; font-size: 11.5px; }
"""
