"""The text checks every text-writing stage shares."""
from augment.stages import text


def test_dominant_script():
    assert text.dominant_script("Nike 耐克运动裤") == "CJK"
    assert text.dominant_script("Кроссовки Nike") == "CYRILLIC"
    assert text.dominant_script("1234 !!") is None
