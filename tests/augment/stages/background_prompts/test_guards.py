"""The guards every background prompt must pass, whichever backend made it."""
from augment.stages.background_prompts import guards


def test_background_prompt_checks():
    good = "A clean white studio background with soft even lighting."
    assert guards.check_background_prompt(good) is None
    assert guards.check_background_prompt("White.") == "too_short"
    assert guards.check_background_prompt(good + "\n" + good) == "control_chars"
    assert guards.check_background_prompt("<img src=x> " + good) == "html"


def test_background_prompt_list_checks():
    prompts = [f"A bright studio backdrop number {i} with soft light." for i in range(10)]
    assert guards.check_background_prompts(prompts, 10) is None
    assert guards.check_background_prompts(prompts[:9], 10) == "wrong_count"
    assert guards.check_background_prompts(prompts[:9] + [prompts[0].upper()], 10) == "repeated"
