"""The MOON2.0 bi-encoder: a ViT, a projector, and a language encoder whose upper FFNs are modality-driven MoEs.

One encoder embeds every input, whatever its modalities (a "unified" encoder, as in the paper); queries and
candidates are embedded separately (bi-encoder), so candidates can be indexed ahead of time.

    image  -> ViT (open_clip layout) -> [CLS + patch tokens] -> projector (2-layer MLP) -> visual tokens
    text   -> token embedding + learned positions                                      -> text tokens
    [visual tokens ; text tokens] -> language encoder (pre-LN blocks, MoE FFN in the top `moe.layers`)
           -> final LayerNorm -> mean over all real tokens -> L2 normalise -> embedding

Fusion of an image+text input is early fusion: both token streams enter the language encoder as one sequence
and attend to each other in every layer; image-only and text-only inputs are the same sequence with one stream
absent. The embedding is the mean of the last hidden states over every real token, visual and textual (the
paper's MeanPool; no CLS readout, no projection head), so its size is `text.width`.

Block, attention and MLP parameter names follow open_clip (ln_1, attn.in_proj, mlp.c_fc, ...) so that CLIP
checkpoints map onto them one to one (see pretrained.py). This module does no I/O.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from model.config import OBJECTIVES, MoonConfig, TextConfig, VisionConfig
from model.moe import ModalityDrivenMoE


class EncoderOutput(NamedTuple):
    embedding: torch.Tensor  # [B, D], unit norm
    router_logits: tuple[torch.Tensor, ...]  # one [B, T, Z] per MoE layer, bottom to top
    token_mask: torch.Tensor  # [B, T] bool, True on real tokens (visual tokens first, then text)


class ModelOutput(NamedTuple):
    views: dict[str, EncoderOutput]  # view name -> its embeddings and router logits
    # W*, passed through the graph: a parameter the loss uses must reach it from forward's outputs, or DDP
    # (find_unused_parameters) takes it for unused and then sees its gradient arrive.
    objective_routing: torch.Tensor  # [Z, M]


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the activation OpenAI's CLIP weights were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def activation_layer(name: str) -> nn.Module:
    return QuickGELU() if name == "quick_gelu" else nn.GELU()


class MLP(nn.Module):
    def __init__(self, width: int, mlp_ratio: float, activation: str):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.c_fc = nn.Linear(width, hidden)
        self.act = activation_layer(activation)
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class Attention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection (the layout of open_clip's in_proj_weight)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.in_proj(x).split(width, dim=-1)  # 3 x [B, T, D]
        # [B, T, D] -> [B, H, T, D/H]
        q, k, v = (t.view(batch, length, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [B, H, T, D/H]
        y = y.transpose(1, 2).reshape(batch, length, width)  # [B, T, D]
        return self.out_proj(y)


class Block(nn.Module):
    """Pre-LN transformer block; its FFN is a dense MLP or a ModalityDrivenMoE."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, activation: str, moe: tuple[int, int] | None):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        if moe is None:
            self.mlp = MLP(width, mlp_ratio, activation)
        else:
            experts = [MLP(width, mlp_ratio, activation) for _ in range(moe[0])]
            self.mlp = ModalityDrivenMoE(experts, width, top_k=moe[1])

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x + self.attn(self.ln_1(x), attn_mask)
        if isinstance(self.mlp, ModalityDrivenMoE):
            out, router_logits = self.mlp(self.ln_2(x))
            return x + out, router_logits
        return x + self.mlp(self.ln_2(x)), None


class VisionTransformer(nn.Module):
    """open_clip's ViT without its pooling head: returns every token after ln_post."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.grid = cfg.image_size // cfg.patch_size
        scale = cfg.width**-0.5
        self.conv1 = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(cfg.width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid**2 + 1, cfg.width))
        self.ln_pre = nn.LayerNorm(cfg.width)
        self.blocks = nn.ModuleList(
            [Block(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.activation, None) for _ in range(cfg.layers)]
        )
        self.ln_post = nn.LayerNorm(cfg.width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv1(images)  # [B, W, G, G]
        x = x.flatten(2).transpose(1, 2)  # [B, G*G, W]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # [B, 1, W]
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # [B, 1+G*G, W]
        x = self.ln_pre(x)
        for block in self.blocks:
            x, _ = block(x, None)
        return self.ln_post(x)


class LanguageEncoder(nn.Module):
    """Transformer over [visual tokens ; text tokens]; the top `moe_layers` blocks have MoE FFNs."""

    def __init__(self, cfg: TextConfig, num_experts: int, top_k: int, moe_layers: int):
        super().__init__()
        self.causal = cfg.causal
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.width))
        # Marks visual tokens (their positions come from the ViT). Zero at init, so that a text-only input
        # sees exactly the pretrained text tower.
        self.visual_type_embedding = nn.Parameter(torch.zeros(cfg.width))
        first_moe = cfg.layers - moe_layers
        self.blocks = nn.ModuleList(
            [
                Block(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.activation,
                      (num_experts, top_k) if i >= first_moe else None)
                for i in range(cfg.layers)
            ]
        )
        self.ln_final = nn.LayerNorm(cfg.width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)

    def forward(
        self,
        text: torch.Tensor | None,
        text_mask: torch.Tensor | None,
        visual: torch.Tensor | None,
        visual_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """text: [B, L] ids, text_mask: [B, L] bool, visual: [B, V, D], visual_mask: [B, V] bool (default: all
        real). Returns (hidden [B, T, D], token mask [B, T], router logits per MoE layer)."""
        parts, masks = [], []
        if visual is not None:
            parts.append(visual + self.visual_type_embedding.to(visual.dtype))  # [B, V, D]
            if visual_mask is None:
                visual_mask = torch.ones(visual.shape[:2], dtype=torch.bool, device=visual.device)
            masks.append(visual_mask)
        if text is not None:
            length = text.shape[1]
            parts.append(self.token_embedding(text) + self.positional_embedding[:length])  # [B, L, D]
            masks.append(text_mask)
        x = torch.cat(parts, dim=1)  # [B, T, D], T = V + L
        token_mask = torch.cat(masks, dim=1)  # [B, T]
        attn_mask = self._attention_mask(token_mask)
        router_logits = []
        for block in self.blocks:
            x, logits = block(x, attn_mask)
            if logits is not None:
                router_logits.append(logits)
        return self.ln_final(x), token_mask, tuple(router_logits)

    def _attention_mask(self, token_mask: torch.Tensor) -> torch.Tensor:
        # [B, 1, 1, T]: every query may attend to every real key; padding keys are hidden
        mask = token_mask[:, None, None, :]
        if self.causal:
            length = token_mask.shape[1]
            causal = torch.ones(length, length, dtype=torch.bool, device=token_mask.device).tril()
            mask = mask & causal  # [B, 1, T, T]
        return mask


class MoonModel(nn.Module):
    """The bi-encoder. `encode_text`, `encode_image`, `encode_multimodal` embed one kind of input;
    `forward` embeds the several views of a training batch in one call (one call, so DDP sees every use)."""

    def __init__(self, cfg: MoonConfig):
        super().__init__()
        self.config = cfg
        self.visual = VisionTransformer(cfg.vision)
        self.visual_pool = cfg.vision.pool_grid
        # The MLLM-style projector from ViT width to language-encoder width (LLaVA-1.5's two-layer MLP).
        self.projector = nn.Sequential(
            nn.Linear(cfg.vision.width, cfg.text.width), nn.GELU(), nn.Linear(cfg.text.width, cfg.text.width)
        )
        self.text = LanguageEncoder(cfg.text, cfg.moe.num_experts, cfg.moe.top_k, cfg.moe.layers)
        # W*: each expert's preference (logits) over the alignment objectives. Zero: no preference at start.
        self.objective_routing = nn.Parameter(torch.zeros(cfg.moe.num_experts, len(OBJECTIVES)))

    # -- building blocks --------------------------------------------------------------------------------------
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, 3, S, S] normalised pixels -> visual tokens [B, V, D] in the language encoder's space."""
        tokens = self.visual(images)  # [B, 1+G*G, Wv]
        if self.visual_pool:
            cls, patches = tokens[:, :1], tokens[:, 1:]
            grid = self.visual.grid
            patches = patches.transpose(1, 2).reshape(tokens.shape[0], -1, grid, grid)  # [B, Wv, G, G]
            patches = F.adaptive_avg_pool2d(patches, self.visual_pool).flatten(2).transpose(1, 2)  # [B, P*P, Wv]
            tokens = torch.cat([cls, patches], dim=1)
        return self.projector(tokens)  # [B, V, D]

    def embed_image_sets(self, images: torch.Tensor, image_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Several images per input, their visual tokens in one sequence (a product's photo and its variants).

        images: [B, N, 3, S, S], image_mask: [B, N] bool (False: padding, never run through the ViT).
        Returns (visual tokens [B, N*V, D], visual mask [B, N*V]).
        """
        batch, count = image_mask.shape
        real = self.embed_images(images[image_mask])  # [R, V, D], R real images
        visual = real.new_zeros(batch, count, real.shape[1], real.shape[2])  # [B, N, V, D]
        visual[image_mask] = real
        mask = image_mask[:, :, None].expand(-1, -1, real.shape[1])  # [B, N, V]
        return visual.flatten(1, 2), mask.flatten(1, 2)

    def encode(
        self,
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        visual: torch.Tensor | None = None,
        visual_mask: torch.Tensor | None = None,
    ) -> EncoderOutput:
        if text is None and visual is None:
            raise ValueError("encode needs text, visual tokens or both")
        if text is not None and text_mask is None:
            text_mask = torch.ones_like(text, dtype=torch.bool)
        hidden, token_mask, router_logits = self.text(text, text_mask, visual, visual_mask)  # [B, T, D]
        weights = token_mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # [B, D], mean over real tokens
        return EncoderOutput(F.normalize(pooled.float(), dim=-1), router_logits, token_mask)

    # -- the symmetric API --------------------------------------------------------------------------------------
    def encode_text(self, text: torch.Tensor, text_mask: torch.Tensor | None = None) -> EncoderOutput:
        return self.encode(text=text, text_mask=text_mask)

    def encode_image(self, images: torch.Tensor) -> EncoderOutput:
        return self.encode(visual=self.embed_images(images))

    def encode_multimodal(
        self, images: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None = None
    ) -> EncoderOutput:
        return self.encode(text=text, text_mask=text_mask, visual=self.embed_images(images))

    def forward(
        self,
        images: dict[str, torch.Tensor],
        texts: dict[str, tuple[torch.Tensor, torch.Tensor]],
        views: dict[str, tuple[str | None, str | None]],
        image_masks: dict[str, torch.Tensor] | None = None,
    ) -> ModelOutput:
        """Embed named views of a batch. images: name -> [B, 3, S, S], or [B, N, 3, S, S] with
        image_masks[name]: [B, N] for several images per input; texts: name -> (ids [B, L], mask [B, L]);
        views: view name -> (image name or None, text name or None). Each image batch goes through the ViT
        once, however many views use it."""
        image_masks = image_masks or {}
        visual = {}
        for name, pixels in images.items():
            if name in image_masks:
                visual[name] = self.embed_image_sets(pixels, image_masks[name])
            else:
                visual[name] = (self.embed_images(pixels), None)
        out = {}
        for view, (image_name, text_name) in views.items():
            text, mask = texts[text_name] if text_name is not None else (None, None)
            tokens, tokens_mask = visual[image_name] if image_name else (None, None)
            out[view] = self.encode(text=text, text_mask=mask, visual=tokens, visual_mask=tokens_mask)
        return ModelOutput(out, self.objective_routing.clone())


def count_parameters(cfg: MoonConfig) -> dict[str, int]:
    """Parameter counts of a config, built on the meta device: nothing is allocated, so `paper` is safe.

    `active` counts what one token uses: dense parameters plus top_k of the num_experts experts per MoE layer.
    """
    with torch.device("meta"):
        model = MoonModel(cfg)
    total = sum(p.numel() for p in model.parameters())
    experts = sum(
        p.numel() for name, p in model.named_parameters() if ".experts." in name
    )
    per_token_experts = experts * cfg.moe.top_k // max(cfg.moe.num_experts, 1)
    return {
        "total": total,
        "vision": sum(p.numel() for p in model.visual.parameters()),
        "projector": sum(p.numel() for p in model.projector.parameters()),
        "language": sum(p.numel() for p in model.text.parameters()),
        "experts": experts,
        "active": total - experts + per_token_experts,
    }

