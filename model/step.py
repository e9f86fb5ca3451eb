"""One optimisation step of the bi-encoder: the learning-rate schedule, the optimizer, forward and backward.

Pure torch (no Ray, no pyarrow, no image decoding), so the Ray Train loop, tests and the GPU benchmark share it.
"""
from __future__ import annotations

import math

import torch

from model.batch import TrainBatch
from model.config import ConfigError, MoonConfig
from model.losses import MoonLoss, total_loss


class NonFiniteLoss(ConfigError):
    """The loss or its gradient became NaN or infinite: training diverged, and the optimizer step would write NaN
    into the weights. A config error: the cure is in the config (learning rate, temperatures), not in the data."""


def check_finite(loss: float, grad_norm: float, step: int, epoch: int | None = None) -> None:
    """Raise NonFiniteLoss naming the step (0-based `step`, shown from 1 as the step logs count) and epoch when
    the loss or the gradient norm is not finite."""
    bad = [(name, value) for name, value in (("loss", loss), ("gradient norm", grad_norm)) if not math.isfinite(value)]
    if not bad:
        return
    (name, value), where = bad[0], f"epoch {epoch} step {step + 1}" if epoch is not None else f"step {step + 1}"
    raise NonFiniteLoss(f"training diverged at {where}: the {name} is {value}; lower train.lr, raise loss.tau / "
                        "loss.intra_tau, or check train.grad_clip and train.precision")


def lr_factor(step: int, total_steps: int, warmup: float) -> float:
    """Linear warm-up over the first `warmup` share of steps, then cosine decay to zero."""
    warmup_steps = max(1, int(warmup * total_steps))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: torch.nn.Module, cfg: MoonConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on 1-D parameters (norms, biases, the class and type embeddings). W* (2-D, experts x
    objectives) is decayed like the weight matrices."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.train.lr, betas=(0.9, 0.999),
    )


def compute_losses(model, loss_fn: MoonLoss, batch: TrainBatch, step: int, total_steps: int,
                   observe=None) -> dict[str, torch.Tensor]:
    """The loss terms of one batch. observe(model_output, batch), if given, sees the forward's output (the
    routing diagnostics read router logits from it)."""
    output = model(batch.images, batch.texts, batch.views, batch.image_masks)
    if observe is not None:
        observe(output, batch)
    views, wstar = output
    queries = {name: (views[name], index) for name, index in batch.query_index.items()}
    return loss_fn(queries, views["c_mm"], views["c_i"], views["c_t"], batch.partner, wstar, step, total_steps,
                   batch.query_relevant)


def train_step(model, loss_fn: MoonLoss, batch: TrainBatch, optimizer, scheduler, step: int, total_steps: int, cfg: MoonConfig,
               observe=None, epoch: int | None = None) -> dict:
    """Forward every view, backward the summed `*_loss` terms, clip, step. Returns float metrics.
    observe: passed to compute_losses. A loss or gradient norm that is not finite raises NonFiniteLoss (naming
    `step` and `epoch`) before the optimizer step, so the weights stay as they were. The check follows backward:
    under DDP every rank then sees the same all-reduced gradient norm and stops at the same step."""
    use_bf16 = cfg.train.precision == "bf16"
    device_type = batch.partner.device.type
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=use_bf16):
        losses = compute_losses(model, loss_fn, batch, step, total_steps, observe)
    loss = total_loss(losses)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
    loss_value, norm = loss.item(), grad_norm.item()
    check_finite(loss_value, norm, step, epoch)
    optimizer.step()
    scheduler.step()
    metrics = {key: float(value.detach()) for key, value in losses.items()}
    metrics.update(loss=loss_value, grad_norm=norm, lr=optimizer.param_groups[0]["lr"])
    return metrics
