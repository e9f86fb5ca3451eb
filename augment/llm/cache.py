"""The response cache of the MLLM stages, persisted with the run (local folder or s3://).

A resumed or repeated run must not pay twice for the same model call. Each answer is one small JSON object at
`<run>/_cache/mllm/<key[:2]>/<key>.json`, where the key (augment.llm.requests.ChatRequest.key) covers the
prompt ids and versions, the model, the decoding parameters and the input including the image bytes. Objects are
written with storage.write_atomic, so any number of Ray actors may read and write concurrently: a reader sees a
whole answer or none, and two writers of one key write the same call's answer. The `_cache` prefix is skipped by
the shard listing (storage.list_files ignores underscore names).

Only answers the server actually gave are stored (including ones the guards reject: the model would give them
again); transport failures are not, so a rerun tries them again.

Must not: decide what to do with an answer, or hold a whole run's answers in memory.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

from augment.core import storage

log = logging.getLogger(__name__)

CACHE_DIR = "_cache/mllm"


class ResponseCache:
    def __init__(self, run_uri: str, threads: int = 8):
        self.root = storage.join(run_uri, CACHE_DIR)
        self.threads = threads
        self.warned = False  # said that storage could not read an entry (once per cache)

    def uri(self, key: str) -> str:
        return storage.join(self.root, key[:2], f"{key}.json")

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(storage.read_bytes(self.uri(key)))
        except FileNotFoundError:
            return None
        except OSError as exc:  # storage failing after its retries: a miss costs one model call, not the batch
            if not self.warned:
                self.warned = True
                log.warning("response cache: cannot read %s (%s); such entries count as misses and the model is "
                            "asked again", self.uri(key), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return None
        except ValueError:  # a foreign or damaged object: treat as absent, it will be rewritten
            log.warning("response cache: unreadable entry %s ignored", self.uri(key))
            return None

    def put(self, key: str, value: dict) -> None:
        # ASCII escapes: an answer may hold half a surrogate pair (`\ud800`), which no UTF-8 text can; read back it
        # is the same string, which the guards reject as the fresh answer was
        storage.write_atomic(self.uri(key), json.dumps(value).encode("ascii"))

    # Object stores answer one key at a time; look keys up in parallel so a batch costs one round trip.
    def get_many(self, keys: list[str]) -> list[dict | None]:
        if len(keys) <= 1:
            return [self.get(k) for k in keys]
        with ThreadPoolExecutor(min(self.threads, len(keys))) as pool:
            return list(pool.map(self.get, keys))

    def put_many(self, items: list[tuple[str, dict]]) -> None:
        if len(items) <= 1:
            for key, value in items:
                self.put(key, value)
            return
        with ThreadPoolExecutor(min(self.threads, len(items))) as pool:
            list(pool.map(lambda kv: self.put(*kv), items))
