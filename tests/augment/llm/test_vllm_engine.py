"""The vllm (ray.data.llm) backend: request building and answer handling, without an engine.

vLLM's engine needs CUDA; everything around it is tested here: the rows the processor gets, how its output
rows become statuses, and (with Ray Data and the engine replaced by a scripted function) the whole
cache / retry / union plumbing of `transform_dataset`.
"""
import json

import pytest

from augment.llm import vllm_engine as vb
from augment.stages.background_prompts.model import VllmBackgroundOptions, VllmBackgroundPrompts
from augment.stages.enrich_title.model import OpenAIEnrichOptions, OpenAIEnrichStage, VllmEnrichOptions, VllmEnrichStage
from augment.stages.base import RunContext

NIKE = "Nike Men's Breakli Navy Blue Track Pants"
NIKE_ENTITIES = [{"label": "BRAND", "text": "Nike", "start": 0, "end": 4, "id": "nike"}]
GOOD = "Nike Men's Breakli Navy Blue Track Pants with Elastic Waist"


def stage(**options):
    return VllmEnrichStage(VllmEnrichOptions(model="/models/qwen2.5-vl", **options), RunContext())


def row(title=NIKE, entities=NIKE_ENTITIES, image=None, pid="p1"):
    return {"product_id": pid, "title": title, "description": None, "entities": entities, "_image": image}


def with_request(st, r):
    return {**r, vb.REQUEST: st.first_request(r, st.image_url_of(r))}


def test_registered():
    from augment.stages import resolve

    assert resolve("enrich_title", "vllm") is VllmEnrichStage
    assert resolve("background_prompts", "vllm") is VllmBackgroundPrompts
    assert VllmEnrichStage.is_dataset_stage


def test_processor_config():
    config = stage(engine_kwargs={"tensor_parallel_size": 2}, replicas=4, engine_batch_size=32).engine.processor_config()
    assert config.model_source == "/models/qwen2.5-vl"
    assert config.engine_kwargs["tensor_parallel_size"] == 2 and config.engine_kwargs["max_model_len"] == 8192
    assert (config.concurrency, config.batch_size, config.should_continue_on_error) == (4, 32, True)


def test_engine_input_has_messages_and_structured_output(products):
    st = stage()
    r = with_request(st, row(image=products["_image"][0]))
    engine_row = vb.engine_input(r, st.options)
    assert engine_row["messages"][1]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    params = engine_row["sampling_params"]
    assert params["structured_outputs"]["json"]["required"] == ["enriched_title"]
    assert (params["temperature"], params["max_tokens"]) == (0.0, 256)
    assert params["seed"] == RunContext().seed("p1", "enrich_title") % (2**31)


def test_same_request_as_the_openai_backend():
    st = stage()
    openai = OpenAIEnrichStage(OpenAIEnrichOptions(model="/models/qwen2.5-vl"), RunContext())
    batch = {k: [v] for k, v in row().items()}
    assert vb.request_from_row(with_request(st, row())) == openai._request(batch, 0, None)


def test_engine_output_success_truncation_and_error():
    ok = vb.engine_output({"a": 1, "generated_text": "{}", "num_generated_tokens": 3, "prompt": "x"}, ["a"], 256)
    assert ok == {"a": 1, vb.TEXT: "{}", vb.FINISH: "stop", vb.ERROR: ""}
    cut = vb.engine_output({"a": 1, "generated_text": '{"enr', "num_generated_tokens": 256}, ["a"], 256)
    assert cut[vb.FINISH] == "length"
    failed = vb.engine_output({"a": 1, "__inference_error__": "CUDA OOM"}, ["a"], 256)
    assert (failed[vb.TEXT], failed[vb.ERROR]) == (None, "engine")


def answered(st, r, text, tokens=10, error=""):
    return {**with_request(st, r), vb.TEXT: text, vb.FINISH: "stop" if tokens < 256 else "length", vb.ERROR: error}


def test_judge_first_ok():
    st = stage()
    out = st.judge_first(answered(st, row(), json.dumps({"enriched_title": GOOD})))
    assert out["enriched_title"] == GOOD and out["enrichment"]["status"] == "ok" and out[vb.RETRY] == ""


def test_judge_first_marks_retry_with_reason():
    st = stage()
    out = st.judge_first(answered(st, row(), json.dumps({"enriched_title": "Men's Navy Blue Track Pants"})))
    assert out[vb.RETRY] == "missing_entity" and out["enriched_title"] == NIKE


def test_judge_first_engine_error_is_fallback():
    st = stage()
    out = st.judge_first(answered(st, row(), None, error="engine"))
    assert out["enrichment"]["status"] == "fallback:engine" and out[vb.RETRY] == ""


def test_retry_uses_strict_prompt_and_records_it():
    st = stage()
    first = st.judge_first(answered(st, row(), "not json"))
    second = st.retry_request(first, None)
    assert second[vb.REQUEST]["prompt_id"] == "enrich_title_strict.v1"
    done = st.judge_retry({**second, vb.TEXT: "still not json", vb.FINISH: "stop", vb.ERROR: ""})
    assert done["enrichment"] == {"backend": "vllm", "model": "/models/qwen2.5-vl",
                                  "prompt_id": "enrich_title_strict.v1", "status": "rejected:not_json",
                                  "attempts": 2}


# -- the Ray Data plumbing with a scripted engine --------------------------------------------------------------
def scripted_build_processor(config, preprocess=None, postprocess=None, **kwargs):
    """Stands in for ray.data.llm.build_processor: the same row contract, a scripted 'model'."""

    def engine(r):
        r = preprocess(r)
        user = [p["text"] for p in r["messages"][1]["content"] if p["type"] == "text"][0]
        if "CRASH" in user:
            return {**r, "__inference_error__": "engine died"}  # error rows skip postprocess
        strict = "previous answer was rejected" in user
        if "Nike" in user:
            text = json.dumps({"enriched_title": GOOD})
        elif "Puma" in user and strict:
            text = json.dumps({"enriched_title": "Puma Women Red Cap with Curved Brim"})
        else:
            text = json.dumps({"enriched_title": "Something else entirely here"})
        return postprocess({**r, "generated_text": text, "num_generated_tokens": 12, "__inference_error__": ""})

    return lambda ds: ds.map(engine)


@pytest.mark.slow
def test_transform_dataset_end_to_end(monkeypatch, tmp_path, ray_local):
    import ray.data
    import ray.data.llm

    monkeypatch.setattr(ray.data.llm, "build_processor", scripted_build_processor)
    rows = [
        row(NIKE, NIKE_ENTITIES, pid="a"),
        row("Puma Women Red Cap", [{"label": "BRAND", "text": "Puma", "start": 0, "end": 4, "id": None}], pid="b"),
        row("Adidas Men Black Shoes", [{"label": "BRAND", "text": "Adidas", "start": 0, "end": 6, "id": None}],
            pid="c"),
        row("CRASH Test Product Title", [], pid="d"),
        row("Quarantined Earlier Product", [], pid="e"),
        row("Nike Men Grey Track Pants", NIKE_ENTITIES, pid="f"),  # its image cannot be sent: only it is quarantined
    ]
    for r in rows:
        r["_image"] = b"not an image" if r["product_id"] == "f" else b""  # empty bytes mean "no image"
        r["_quarantine_reason"] = "image_undecodable" if r["product_id"] == "e" else None
    st = VllmEnrichStage(VllmEnrichOptions(model="/models/x"), RunContext(output_uri=str(tmp_path)))
    out = {r["product_id"]: r for r in st.transform_dataset(ray.data.from_items(rows)).take_all()}
    again = {r["product_id"]: r for r in st.transform_dataset(ray.data.from_items(rows)).take_all()}
    assert (out["e"]["enriched_title"], out["e"]["enrichment"]) == (None, None)  # not sent to the engine
    assert out["f"]["_quarantine_reason"].startswith("stage_error:")
    assert (out["f"]["enriched_title"], out["f"]["enrichment"]) == (None, None) and set(out["f"]) == set(out["a"])
    status = {pid: (r["enrichment"]["status"], r["enrichment"]["attempts"]) for pid, r in out.items()
              if pid not in "ef"}
    assert status == {"a": ("ok", 1), "b": ("ok", 2), "c": ("rejected:missing_entity", 2),
                      "d": ("fallback:engine", 1)}
    assert out["a"]["enriched_title"] == GOOD and out["c"]["enriched_title"] == "Adidas Men Black Shoes"
    assert set(out["a"]) == {"product_id", "title", "description", "entities", "_image", "_quarantine_reason",
                             "enriched_title", "enrichment"}
    assert {pid: r["enrichment"] for pid, r in again.items()} == {pid: r["enrichment"] for pid, r in out.items()}
    # Answers (not engine failures) were cached: a, b x2, c x2.
    assert len(list((tmp_path / "_cache" / "mllm").rglob("*.json"))) == 5

    backgrounds = VllmBackgroundPrompts(VllmBackgroundOptions(model="/models/x"), RunContext(output_uri=str(tmp_path)))
    prompts = {r["product_id"]: r for r in backgrounds.transform_dataset(ray.data.from_items(rows)).take_all()}
    assert prompts["f"]["_quarantine_reason"].startswith("stage_error:") and prompts["f"]["background_prompts"] is None
    assert prompts["e"]["background_prompts"] is None and set(prompts["f"]) == set(prompts["a"])
    assert all(len(prompts[pid]["background_prompts"]) == backgrounds.count for pid in "abcd")  # answers or fallbacks


def test_a_row_function_that_raises_quarantines_its_row_only():
    def enrich(row):
        if row["title"] is None:
            raise ValueError("no title\nsecond line")
        return {**row, "enriched_title": row["title"].upper(), vb.REQUEST: {}}

    run = vb.isolated(enrich, "enrich_title", ["enriched_title", "enrichment"], adds=[vb.REQUEST])
    assert run({"product_id": "a", "title": "x", "_quarantine_reason": None})["enriched_title"] == "X"
    bad = run({"product_id": "b", "title": None, "_quarantine_reason": None, "_quarantine_stage": None,
               "_quarantine_detail": None})
    assert bad == {"product_id": "b", "title": None, "enriched_title": None, "enrichment": None, vb.REQUEST: None,
                   "_quarantine_reason": "stage_error:ValueError", "_quarantine_stage": "enrich_title",
                   "_quarantine_detail": "no title"}
