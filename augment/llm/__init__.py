"""Calling language models, for any stage: requests and answers, the response cache, the HTTP client, and the
engines that answer requests (an OpenAI-compatible server, a local transformers model, vLLM replicas in Ray Data).

- `requests`: ChatRequest (one call, with its cache key), Completion (one answer), image data URLs;
- `client`: LLMClient (cache, then engine), the options every engine shares, flat stage options;
- `cache`: the response cache under <run>/_cache/mllm;
- `http`: the async OpenAI-compatible HTTP client (concurrency, retries, Retry-After);
- `openai_engine`, `transformers_engine`, `vllm_engine`: the engines and their options.
Which prompt to send and how to judge the answer is the stage's business (augment/stages/enrich_title,
augment/stages/background_prompts); nothing here imports a stage. Nothing here is imported by the CPU default path.
"""
