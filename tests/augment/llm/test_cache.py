"""The response cache: persisted with the run on local disk and S3, safe with concurrent writers."""
import threading

import pytest

from augment.llm.cache import ResponseCache
from testkit.s3 import moto_s3

KEY = "ab" + "0" * 62


def test_missing_key_is_none(tmp_path):
    assert ResponseCache(str(tmp_path)).get(KEY) is None


def test_put_then_get_from_another_instance(tmp_path):
    ResponseCache(str(tmp_path)).put(KEY, {"text": "{}", "finish_reason": "stop"})
    assert ResponseCache(str(tmp_path)).get(KEY) == {"text": "{}", "finish_reason": "stop"}
    assert (tmp_path / "_cache" / "mllm" / "ab" / f"{KEY}.json").is_file()


def test_an_answer_holding_half_a_surrogate_pair_is_kept_as_it_came(tmp_path):
    """Valid JSON from the server, but no UTF-8 text: kept escaped, so that the guards judge the cached answer as
    they judged the fresh one, instead of the write failing the batch."""
    answer = {"text": '{"enriched_title": "Regular Fit \ud800"}', "finish_reason": "stop"}
    ResponseCache(str(tmp_path)).put(KEY, answer)
    assert ResponseCache(str(tmp_path)).get(KEY) == answer


def test_damaged_entry_is_treated_as_absent(tmp_path):
    cache = ResponseCache(str(tmp_path))
    path = tmp_path / "_cache" / "mllm" / "ab" / f"{KEY}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert cache.get(KEY) is None


def test_an_entry_storage_cannot_read_is_a_miss_said_once(tmp_path, monkeypatch, caplog):
    from augment.core import storage

    def failing(uri):
        raise OSError("AWS Error SLOW_DOWN during GetObject operation: Please reduce your request rate.")

    monkeypatch.setattr(storage, "read_bytes", failing)
    cache = ResponseCache(str(tmp_path))
    with caplog.at_level("WARNING", logger="augment.llm.cache"):
        assert [cache.get(KEY), cache.get("cd" + "0" * 62)] == [None, None]
    assert [r.message for r in caplog.records if "cannot read" in r.message][0].endswith(
        "such entries count as misses and the model is asked again")
    assert sum("cannot read" in r.message for r in caplog.records) == 1


def test_many_keys_at_once(tmp_path):
    cache = ResponseCache(str(tmp_path))
    keys = [f"{i:064x}" for i in range(20)]
    cache.put_many([(k, {"text": k}) for k in keys[::2]])
    assert cache.get_many(keys) == [{"text": k} if i % 2 == 0 else None for i, k in enumerate(keys)]


def test_concurrent_writers_and_readers_never_see_partial_entries(tmp_path):
    cache = ResponseCache(str(tmp_path))
    value = {"text": "x" * 200_000}
    seen, errors = [], []

    def writer():
        for _ in range(20):
            cache.put(KEY, value)

    def reader():
        for _ in range(200):
            try:
                got = cache.get(KEY)
            except Exception as exc:  # noqa: BLE001 - any error is a failure of the guarantee
                errors.append(exc)
                return
            if got is not None:
                seen.append(got == value)

    threads = [threading.Thread(target=writer) for _ in range(4)] + [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and seen and all(seen)
    assert [p.name for p in (tmp_path / "_cache" / "mllm" / "ab").iterdir()] == [f"{KEY}.json"]


@pytest.fixture
def s3_run():
    with moto_s3("runs"):
        yield "s3://runs/run-1"


def test_cache_on_s3(s3_run):
    ResponseCache(s3_run).put(KEY, {"text": "hello"})
    assert ResponseCache(s3_run).get_many([KEY, "cd" + "0" * 62]) == [{"text": "hello"}, None]


def test_a_cache_travels_to_ray_workers_by_pickle(tmp_path):
    import pickle

    cache = pickle.loads(pickle.dumps(ResponseCache(str(tmp_path))))
    cache.put(KEY, {"text": "{}"})
    assert cache.get(KEY) == {"text": "{}"} and not cache.warned
