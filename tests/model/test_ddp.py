"""Two data-parallel workers (gloo, CPU) take training steps together: W* and the experts stay in sync."""
import random
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    from model.checkpoint import build_model
    from model.config import load_config
    from model.data import collate, pair_batches, product_records
    from model.losses import MoonLoss
    from model.step import make_optimizer, train_step
    from model.tokenizer import build_tokenizer
    from tests.model.shards import product_rows

    cfg = load_config("tiny", {"train.batch_size": 8})
    model, cfg = build_model(cfg, seed=rank)  # different inits: DDP must broadcast rank 0's weights
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    optimizer = make_optimizer(ddp, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    rows = product_rows(16, seed=rank)  # each worker its own products
    records = product_records({k: [r[k] for r in rows] for k in rows[0]})
    rng = random.Random(rank)
    for step, (batch, partner) in enumerate(pair_batches(records, 8, rng)):
        train_step(ddp, MoonLoss(cfg.loss, cfg.moe), collate(batch, partner, cfg, build_tokenizer(cfg.text), rng),
                   optimizer, scheduler, step, 10, cfg)
    torch.save({name: p.detach() for name, p in model.named_parameters()}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_workers_keep_every_parameter_in_sync(tmp_path):
    # The workers hand their parameters back in files. A multiprocessing.Manager forks this process; once it had
    # forked the session's Ray-joined pytest process (ray_local), the session's next Ray Train fit never started.
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2)
    a, b = (torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k]) for k in a)
    assert not torch.equal(a["objective_routing"], torch.zeros_like(a["objective_routing"]))  # W* was trained
