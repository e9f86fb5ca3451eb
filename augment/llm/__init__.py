"""The MLLM-driven stages (title enrichment, background prompts) and their backends.

requests.py builds chat requests from prompts/ templates; stage.py holds the guarded flow every backend shares
(cache, parse, guard, strict retry, fallbacks); cache.py the response cache; openai_client.py the HTTP client;
openai_backend.py, transformers_backend.py and vllm_backend.py the backends registered in augment.stages.
Nothing here is imported by the CPU default path (augment.stages.enrich_title.template / backgrounds).
"""
