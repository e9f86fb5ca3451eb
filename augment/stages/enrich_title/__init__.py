"""The `enrich_title` stage: T+ = MLLM(T, I, E), an enriched title that keeps every extracted entity.

template.py: the CPU default (`template`); model.py: the model backends (`openai`, `transformers`, `vllm`), one
guarded flow over the engines of augment.llm; requests.py: the prompts each model backend sends; guards.py: the
checks every enriched title passes, whatever made it.
"""
