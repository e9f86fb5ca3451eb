"""The transformers backend with a tiny random Llava built from config, on real product photos."""
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from augment.llm import requests as rq  # noqa: E402
from augment.llm.transformers_engine import split_images  # noqa: E402
from augment.stages.background_prompts import guards  # noqa: E402
from augment.stages.background_prompts.model import (  # noqa: E402
    TransformersBackgroundOptions,
    TransformersBackgroundPrompts,
)
from augment.stages.enrich_title.model import TransformersEnrichOptions, TransformersEnrichStage  # noqa: E402
from augment.stages.enrich_title.requests import enrich_request  # noqa: E402
from augment.stages.base import RunContext  # noqa: E402
from testkit.tiny_models import build_llama, build_llava  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return str(build_llava(tmp_path_factory.mktemp("llava") / "tiny-llava"))


@pytest.fixture
def rows(products):
    n = 3
    entities = [[{"label": "BRAND", "text": t.split()[0], "start": 0, "end": len(t.split()[0]), "id": None}]
                for t in products["title"][:n]]
    return {k: v[:n] for k, v in products.items()} | {"entities": entities}


def test_split_images_turns_data_urls_into_pil_images(products):
    url = rq.image_data_url(products["_image"][0])
    messages = [{"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": "hi"}]}]
    hf_messages, images = split_images(messages)
    assert hf_messages == [{"role": "system", "content": [{"type": "text", "text": "sys"}]},
                           {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}]
    from PIL import Image
    import io

    assert len(images) == 1 and images[0].mode == "RGB"
    assert images[0].size == Image.open(io.BytesIO(products["_image"][0])).size


def test_vision_model_sees_images_and_gibberish_is_rejected(llava_dir, rows):
    stage = TransformersEnrichStage(TransformersEnrichOptions(model=llava_dir, max_tokens=24, batch_size=2),
                                    RunContext())
    stage.setup()
    assert stage.engine.is_vision
    seen = []
    processor = stage.engine.processor

    def recording_processor(*args, **kwargs):
        seen.append(len(kwargs.get("images") or []))
        return processor(*args, **kwargs)

    stage.engine.processor = recording_processor
    stage.engine.processor.apply_chat_template = processor.apply_chat_template
    stage.engine.processor.tokenizer = processor.tokenizer
    result = stage.process(rows)
    assert seen == [2, 1, 2, 1]  # every request carried its product photo (two attempts, sub-batches of 2)
    assert result.columns["enriched_title"] == rows["title"]
    for record in result.columns["enrichment"]:
        assert record["status"].startswith("rejected:"), record
        assert (record["backend"], record["model"], record["prompt_id"], record["attempts"]) == (
            "transformers", llava_dir, "enrich_title_strict.v1", 2)


def test_answers_are_deterministic(llava_dir, rows):
    options = TransformersEnrichOptions(model=llava_dir, max_tokens=16)
    request = enrich_request(rows["title"][0], None, rows["entities"][0], rq.image_data_url(rows["_image"][0]), 1)
    first = TransformersEnrichStage(options, RunContext())
    second = TransformersEnrichStage(options, RunContext())
    assert first.engine.generate([request]) == second.engine.generate([request])


def test_background_prompts_fall_back_on_gibberish(llava_dir, rows):
    stage = TransformersBackgroundPrompts(TransformersBackgroundOptions(model=llava_dir, max_tokens=24), RunContext())
    lists = stage.process(rows).columns["background_prompts"]
    assert len(lists) == 3 and all(guards.check_background_prompts(p, 10) is None for p in lists)


def test_text_model_with_send_image_false(tmp_path, rows):
    model = str(build_llama(tmp_path / "tiny-llama"))
    stage = TransformersEnrichStage(TransformersEnrichOptions(model=model, max_tokens=16, send_image=False),
                                    RunContext())
    stage.setup()
    assert not stage.engine.is_vision
    records = stage.process(rows).columns["enrichment"]
    assert all(r["status"].startswith("rejected:") for r in records)


def test_text_model_with_images_is_an_engine_error_per_row(tmp_path, rows):
    model = str(build_llama(tmp_path / "tiny-llama"))
    stage = TransformersEnrichStage(TransformersEnrichOptions(model=model, max_tokens=8), RunContext())
    records = stage.process(rows).columns["enrichment"]
    assert [r["status"] for r in records] == ["fallback:engine"] * 3


def test_missing_directory_is_a_clear_error(tmp_path):
    stage = TransformersEnrichStage(TransformersEnrichOptions(model=str(tmp_path / "nope")), RunContext())
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        stage.setup()


def test_pickle_only_checkpoint_is_refused(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    stage = TransformersEnrichStage(TransformersEnrichOptions(model=str(tmp_path)), RunContext())
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors weights"):
        stage.setup()


def test_a_device_torch_cannot_name_is_refused_with_the_config():
    """`moon config` and --dry-run refuse it (check_data); it was a torch RuntimeError when the model loaded."""
    from augment.core.config import ConfigError

    options = TransformersEnrichOptions(model="/m", device="gpu")
    with pytest.raises(ConfigError, match=r"stages\.enrich_title\.options\.device: expected auto"):
        options.check_data("stages.enrich_title.options")
