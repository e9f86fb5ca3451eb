"""The `background_prompts` stage: ten background descriptions per product (Algorithms 5-6).

template.py: the CPU default (`template`, a curated category-aware set), also the model backends' fallback;
model.py: the model backends (`openai`, `transformers`, `vllm`); requests.py: the Algorithm 6 request;
guards.py: the checks every background prompt passes.
"""
