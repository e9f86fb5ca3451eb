"""Validation while training: retrieval metrics on held-out products after each epoch, and the score that picks
the best checkpoint.

`Validator` reads the first `train.val_products` held-out products (by product id: the products `moon eval`
evaluates first) once, and after each epoch runs the evaluation of model/evaluate.py on them with the training
config's protocol: the five directions, R@1/5/10 and nDCG@10. Where the held-out products carry none of the
label columns attribute queries need, it uses title queries instead (and says so once). The score is
`train.best_metric`: a metric averaged over the five directions ("R@10") or one direction's ("t->mm/R@10").

It runs on rank 0 only, under torch.random.fork_rng, so validating never changes what training draws next.
"""
from __future__ import annotations

import dataclasses
import logging
import time
import torch

from model.config import DIRECTIONS, ConfigError, MoonConfig
from model.evaluate import ProtocolError, evaluate_model, split_records, text_queries

log = logging.getLogger(__name__)
PREFIX = "val/"  # metric keys: val/<direction>/<metric>, val_score, val_seconds


class Validator:
    def __init__(self, run_uri: str, cfg: MoonConfig):
        self.metric = cfg.train.best_metric
        data = cfg.data
        self.records = split_records(run_uri, data.eval_fraction, True, cfg.train.val_products,
                                     data.query_attributes, quiet=True)  # the driver warned about the run
        if len(self.records) < 2:
            skipped = self.records.skipped
            cause = skipped.describe(examples=False) if skipped.products else "raise data.eval_fraction"
            # a ConfigError, as train()'s own check of the split: raised on a worker, it still ends in one line
            raise ConfigError(f"{len(self.records)} held-out products with a usable image in {run_uri}: nothing "
                              f"to validate on; {cause}; or set train.best_metric to \"\" (no best/)")
        data = dataclasses.replace(data, query_attributes=self.records.attributes)
        try:
            text_queries(self.records, data)
        except ProtocolError:
            log.warning("validation: the held-out products carry none of %s; validating with title queries",
                        list(data.query_attributes))
            data = dataclasses.replace(data, eval_queries="title")
        self.cfg = dataclasses.replace(cfg, data=data)
        log.info("validation on %d held-out products, %s queries, best by %s", len(self.records),
                 data.eval_queries, self.metric)

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        """Metrics of `model` (left in eval mode) as val/<direction>/<metric>, with val_score and val_seconds."""
        started = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            results = evaluate_model(model, self.cfg, self.records)
        metrics = {f"{PREFIX}{d}/{m}": v for d, row in results.items() for m, v in row.items() if m != "queries"}
        metrics["val_score"] = score(results, self.metric)
        metrics["val_seconds"] = time.perf_counter() - started
        return metrics


def score(results: dict[str, dict[str, float]], metric: str) -> float:
    """`metric` of an evaluation's results: "R@10" averages the five directions, "t->mm/R@10" is one."""
    direction, _, name = metric.rpartition("/")
    if direction:
        return results[direction][name]
    return sum(results[d][name] for d in DIRECTIONS) / len(DIRECTIONS)

