"""Training progress: the history rank 0 writes, the driver's watcher, and the line printed per epoch."""
import io
import json

from model.progress import METRICS_FILE, PROGRESS_FILE, MetricsLog, ProgressPrinter, Watcher, read_history


def epoch_metrics(epoch: int, **extra) -> dict:
    return {"epoch": epoch, "loss": 10.0 / epoch, "samples_per_second": 25.5, "seconds": 2.25, **extra}


def test_history_on_resume_drops_the_epochs_after_the_restored_checkpoint(tmp_path):
    log = MetricsLog(tmp_path, start_epoch=0)
    for epoch in (1, 2, 3):
        log.epoch(epoch_metrics(epoch))
    assert [m["epoch"] for m in read_history(tmp_path)] == [1, 2, 3]
    # epoch 3 was written but its checkpoint was not kept: a resume from epoch 2 trains it again
    resumed = MetricsLog(tmp_path, start_epoch=2)
    resumed.epoch(epoch_metrics(3, loss=1.0))
    assert [(m["epoch"], m["loss"]) for m in read_history(tmp_path)] == [(1, 10.0), (2, 5.0), (3, 1.0)]
    MetricsLog(tmp_path, start_epoch=0)  # a new run starts a new history
    assert read_history(tmp_path) == []


def test_watcher_reports_each_new_epoch_once_in_order(tmp_path):
    seen, steps = [], []
    log = MetricsLog(tmp_path, start_epoch=0)
    log.epoch(epoch_metrics(1))
    watcher = Watcher(tmp_path, start_epoch=0, on_epoch=seen.append, on_step=steps.append, interval=0.01)
    watcher.poll()
    log.step(2, 5, 3.5)
    watcher.poll()
    watcher.poll()
    log.epoch(epoch_metrics(2))
    log.epoch(epoch_metrics(3))
    watcher.poll()
    assert [m["epoch"] for m in seen] == [1, 2, 3]
    assert steps == [{"epoch": 2, "step": 5, "loss": 3.5}]  # once; a step of a finished epoch is not shown
    with Watcher(tmp_path, start_epoch=2, on_epoch=seen.append, interval=0.01):
        pass  # a resumed run's watcher skips what came before; stopping polls a last time
    assert [m["epoch"] for m in seen] == [1, 2, 3, 3]
    assert (tmp_path / METRICS_FILE).exists() and (tmp_path / PROGRESS_FILE).exists()


def test_one_line_per_epoch_with_loss_validation_and_speed():
    out = io.StringIO()
    printer = ProgressPrinter(out, epochs=20, steps_per_epoch=2, best_metric="R@10", bar=False)
    printer.epoch(epoch_metrics(3, val_score=0.612, best_epoch=3))
    printer.epoch(epoch_metrics(12, val_score=0.5, best_epoch=3))
    printer.epoch(epoch_metrics(13))  # no validation (train.best_metric "")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("epoch  3/20  loss 3.3333  val R@10 61.2 (best)  25.5 samples/s  2.2 s  elapsed 0:00:0")
    assert lines[1].startswith("epoch 12/20  loss 0.8333  val R@10 50.0  25.5 samples/s")
    assert lines[2].startswith("epoch 13/20  loss 0.7692  25.5 samples/s")
    assert len(lines) == 3


def test_on_a_terminal_a_bar_over_the_steps_and_the_epoch_lines_above_it():
    out = io.StringIO()
    printer = ProgressPrinter(out, epochs=4, steps_per_epoch=10, start_epoch=1, bar=True)
    assert printer.bar.n == 10 and printer.bar.total == 40
    printer.step({"epoch": 2, "step": 15, "loss": 2.5})
    assert printer.bar.n == 15
    printer.epoch(epoch_metrics(2))
    assert printer.bar.n == 20
    printer.close()
    assert "epoch 2/4  loss 5.0000" in out.getvalue() and "epoch 2/4 loss 2.5000" in out.getvalue()
    assert json.dumps(epoch_metrics(2))  # metrics stay plain JSON
