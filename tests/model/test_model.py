"""The bi-encoder: named configs, parameter counts on the meta device, masking, and the views API."""
import pytest
import torch

from model.config import OBJECTIVES, load_config, named_configs
from model.model import MoonModel, count_parameters


def block_params(width, mlp_ratio=4.0):
    hidden = int(width * mlp_ratio)
    attention = 3 * width * width + 3 * width + width * width + width
    mlp = width * hidden + hidden + hidden * width + width
    return attention + 4 * width, mlp  # (attention + two LayerNorms, one FFN)


def expected_parameters(cfg):
    v, t, m = cfg.vision, cfg.text, cfg.moe
    grid = v.image_size // v.patch_size
    attn_v, mlp_v = block_params(v.width, v.mlp_ratio)
    vision = 3 * v.patch_size**2 * v.width + v.width + (grid**2 + 1) * v.width + 4 * v.width + v.layers * (attn_v + mlp_v)
    projector = v.width * t.width + t.width + t.width * t.width + t.width
    attn_t, mlp_t = block_params(t.width, t.mlp_ratio)
    dense_layers, moe_layers = t.layers - m.layers, m.layers
    language = (t.vocab_size * t.width + t.context_length * t.width + t.width + 2 * t.width
                + dense_layers * (attn_t + mlp_t)
                + moe_layers * (attn_t + m.num_experts * mlp_t + t.width * m.num_experts))
    return vision + projector + language + m.num_experts * len(OBJECTIVES), moe_layers * m.num_experts * mlp_t


def test_paper_config_has_the_supplementary_dimensions():
    cfg = load_config("paper")
    assert (cfg.text.layers, cfg.text.heads, cfg.text.width, cfg.text.vocab_size) == (24, 24, 3072, 129_280)
    assert (cfg.vision.layers, cfg.vision.heads, cfg.vision.width, cfg.vision.patch_size, cfg.vision.image_size) == \
        (32, 16, 1280, 14, 378)


@pytest.mark.parametrize("name", named_configs())
def test_parameter_count_matches_the_closed_form(name):
    cfg = load_config(name)
    counts = count_parameters(cfg)
    total, experts = expected_parameters(cfg)
    assert counts["total"] == total
    assert counts["experts"] == experts
    assert counts["active"] == total - experts + experts * cfg.moe.top_k // cfg.moe.num_experts


def test_paper_config_size():
    counts = count_parameters(load_config("paper"))
    # ViT-H/14 at 378 px (632 M) + a 24-layer 3072-wide encoder with 4 experts in the top 12 layers
    assert 6.4e9 < counts["total"] < 6.6e9
    assert 631e6 < counts["vision"] < 632e6


def test_model_built_on_meta_device_allocates_no_storage():
    with torch.device("meta"):
        model = MoonModel(load_config("paper"))
    assert {p.device.type for p in model.parameters()} == {"meta"}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return MoonModel(load_config("tiny")).eval()


def test_embeddings_are_unit_norm_and_text_width(tiny):
    ids = torch.randint(2, 100, (3, 6))
    out = tiny.encode_multimodal(torch.randn(3, 3, 64, 64), ids)
    assert out.embedding.shape == (3, 64)
    assert torch.allclose(out.embedding.norm(dim=-1), torch.ones(3), atol=1e-5)
    # 17 visual tokens (class + 4x4 patches) before 6 text tokens; one router tensor per MoE layer
    assert out.token_mask.shape == (3, 23)
    assert [tuple(r.shape) for r in out.router_logits] == [(3, 23, 4), (3, 23, 4)]


def test_padding_does_not_change_the_embedding(tiny):
    ids = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0]])
    mask = torch.tensor([[True, True, True, False, False]])
    with torch.no_grad():
        a = tiny.encode_text(ids).embedding
        b = tiny.encode_text(padded, mask).embedding
    assert torch.allclose(a, b, atol=1e-6)


def test_forward_views_equal_the_single_encoders(tiny):
    images = torch.randn(2, 3, 64, 64)
    ids = torch.randint(2, 100, (2, 5))
    mask = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        out, wstar = tiny({"img": images}, {"txt": (ids, mask)},
                          {"mm": ("img", "txt"), "i": ("img", None), "t": (None, "txt")})
        assert torch.equal(wstar, tiny.objective_routing)
        assert torch.allclose(out["mm"].embedding, tiny.encode_multimodal(images, ids, mask).embedding, atol=1e-6)
        assert torch.allclose(out["i"].embedding, tiny.encode_image(images).embedding, atol=1e-6)
        assert torch.allclose(out["t"].embedding, tiny.encode_text(ids, mask).embedding, atol=1e-6)


def test_image_sets_skip_padding_images(tiny):
    images = torch.randn(2, 3, 3, 64, 64)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    with torch.no_grad():
        visual, visual_mask = tiny.embed_image_sets(images, mask)
        assert visual.shape == (2, 3 * 17, 64) and visual_mask.sum(1).tolist() == [34, 17]
        one = tiny.encode(visual=visual[1:, :17]).embedding
        padded = tiny.encode(visual=visual[1:], visual_mask=visual_mask[1:]).embedding
        assert torch.allclose(one, padded, atol=1e-6)  # padding images change nothing
        assert torch.allclose(visual[0, 17:34], tiny.embed_images(images[0, 1:2])[0], atol=1e-6)


def test_visual_pooling_reduces_visual_tokens():
    torch.manual_seed(0)
    model = MoonModel(load_config("tiny", {"vision.pool_grid": 2}))
    visual = model.embed_images(torch.randn(1, 3, 64, 64))
    assert visual.shape == (1, 1 + 2 * 2, 64)


def test_dense_model_has_no_router_logits():
    torch.manual_seed(0)
    model = MoonModel(load_config("tiny", {"moe.layers": 0}))
    assert model.encode_text(torch.tensor([[3, 4]])).router_logits == ()
