"""The study runner: grid x seeds in parallel processes, records copied, finished runs skipped, tables."""

import pytest

from keraszoo.recipes import mlp
from keraszoo.training.study import by_group, load_records, mean_std, run_study, study_parser, summary_table


def _args(tmp_path, *extra):
    parser = study_parser("test", runs=str(tmp_path / "runs"), records=str(tmp_path / "records"), epochs=2, seeds=(0, 1))
    return parser.parse_args(["--jobs", "2", *extra])


GRID = {"lr-0.1": {"learning_rate": 0.1}}  # 2 seeds: 2 runs, in 2 processes at once
FIXED = {"dataset": "circles", "implementation": "keras", "circles_train_size": 128, "circles_test_size": 64}


def test_grid_times_seeds_runs_in_processes_then_rerun_skips_what_finished(tmp_path, capsys):
    args = _args(tmp_path)
    assert run_study(args, recipe="mlp", grid=GRID, fixed=FIXED) == 0
    records = load_records(args.records)
    assert [r.name for r in records] == ["lr-0.1-seed0", "lr-0.1-seed1"]
    assert all(len(r.history) == 2 and r.config["learning_rate"] == 0.1 for r in records)
    assert records[0].history[0]["loss"] != records[1].history[0]["loss"]  # two seeds, two runs
    assert (tmp_path / "runs" / "lr-0.1-seed1.log").is_file()  # each process's own log, beside its run folder
    groups = by_group(records)
    table = summary_table(groups, ["lr-0.1", "lr-10"], {
        "seeds": lambda runs: ", ".join(str(r.seed) for r in runs),
        "test accuracy %": lambda runs: mean_std(r.metrics["test_accuracy"] for r in runs)})
    rows = table.splitlines()
    assert rows[2].startswith("| lr-0.1 | 0, 1 | ") and " ± " in rows[2]
    assert rows[3] == "| lr-10 | not run yet | |"

    # The same command again: every run's finished record is there with the same options: nothing trains.
    capsys.readouterr()
    again = lambda *extra: run_study(_args(tmp_path, "--jobs", "1", *extra), recipe="mlp", grid=GRID, fixed=FIXED)  # noqa: E731
    assert again() == 0
    assert "2 of 2 runs have their finished record" in capsys.readouterr().out
    # Records gone, run folders there: each run is a no-op in-process that says so, and its record comes back.
    import shutil

    shutil.rmtree(tmp_path / "records")
    assert again() == 0
    assert capsys.readouterr().out.count("finished already") == 2
    assert len(load_records(args.records)) == 2
    # A fresh checkout (run folders gone, records committed): still nothing trains.
    shutil.rmtree(tmp_path / "runs")
    assert again() == 0 and not (tmp_path / "runs").exists()
    assert "2 of 2 runs have their finished record" in capsys.readouterr().out
    # Other options than the record's: that run trains.
    assert again("--epochs", "1", "--seeds", "0") == 0
    assert "have their finished record" not in capsys.readouterr().out
    assert len(load_records(args.records)[0].history) == 1


def test_a_study_interrupted_midway_keeps_the_records_of_the_runs_that_finished(tmp_path):
    """Records are copied as each run ends: a study killed hours in must not leave its finished runs uncopied."""
    def main(config):
        if config.seed == 1:
            raise KeyboardInterrupt  # Ctrl-C during the second run
        mlp.main(config)

    args = _args(tmp_path, "--jobs", "1")
    with pytest.raises(KeyboardInterrupt):
        run_study(args, recipe="mlp", main=main, grid=GRID, fixed=FIXED)
    assert [r.name for r in load_records(args.records)] == ["lr-0.1-seed0"]


def test_a_bad_grid_point_is_refused_before_anything_trains(tmp_path):
    with pytest.raises(SystemExit, match="lr-0-seed0: learning_rate=0.0 is out of range"):
        run_study(_args(tmp_path), recipe="mlp",
                  grid={**GRID, "lr-0": {"learning_rate": 0.0}}, fixed=FIXED)
    assert not (tmp_path / "runs").exists()


def test_a_diverged_run_is_kept_as_a_result_with_its_error(tmp_path):
    """A study's run that stops on a non-finite loss is a finding (Q.16: "large lr diverges"): its epochs
    so far and its one-line error are copied beside the other records, and the next command retries it."""
    from keraszoo.training.study import load_failed

    args = _args(tmp_path, "--seeds", "0", "--epochs", "3")
    grid = {"lr-1e30": {"learning_rate": 1e30, "activation": "linear"}}  # tanh would saturate, staying finite
    assert run_study(args, recipe="mlp", grid=grid, fixed=FIXED) == 1
    assert load_records(args.records) == []
    [failed] = load_failed(args.records)
    assert failed.name == "lr-1e30-seed0" and failed.config["learning_rate"] == 1e30
    assert "lower --learning-rate" in failed.metrics["error"]
    assert len(failed.history) < 3


def _fake_record(folder, name, accuracies, *, test=None, error=None):
    import json

    folder = folder / name
    folder.mkdir(parents=True)
    lr, batch = name.split("-seed")[0].removeprefix("lr").split("-b")
    (folder / "config.json").write_text(json.dumps({"learning_rate": float(lr), "batch_size": int(batch)}))
    rows = "".join(f"{e},1.0,0.5,{1.5 - a},{a},0.1,10.0,12.0\n" for e, a in enumerate(accuracies, 1))
    (folder / "history.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,train_time_s,"
                                        "epoch_time_s\n" + rows)
    if error:
        (folder / "failed.json").write_text(json.dumps({"error": error}))
    else:
        (folder / "metrics.json").write_text(json.dumps({"test_accuracy": test}))


def test_lr_batch_report_marks_divergence_and_draws_the_heat_map(tmp_path):
    from keraszoo.recipes import cifar10_lr_batch as study

    records = tmp_path / "records"
    _fake_record(records, "lr0.1-b128-seed0", [0.30, 0.50, 0.45], test=0.44)
    _fake_record(records, "lr0.1-b128-seed1", [0.35, 0.40, 0.52], test=0.50)
    _fake_record(records, "lr0.3-b32-seed0", [0.20], error="the training loss became nan at epoch 2, step 7: ...")
    _fake_record(records, "lr0.3-b32-seed1", [0.25, 0.30], test=0.28)
    text = study.report(records, tmp_path / "figures")
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| 0.")}
    assert rows["0.1, 128"].startswith("| 0.1, 128 | 0, 1 | 51.0 ± 1.4 | 2, 3 | 1.05 / 0.98 | 12.5 / 8.5 | 5.0 / -2.0 "
                                       "| no | 10.0 | 44.0 / 50.0 |")
    assert "diverged (seed 0 at epoch 2)" in rows["0.3, 32"]
    assert "not run yet" in rows["0.01, 512"]
    assert (tmp_path / "figures" / "cifar10_lr_batch_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert set(study.grid()) >= {"lr0.025-b32", "lr0.4-b512", "lr0.01-b512"} and len(study.grid()) == 14


def test_sweeps_keep_the_examples_seen_when_n_shrinks():
    from keraszoo.recipes import cifar10_sweeps as sweeps

    grid = sweeps.grid(["gamma", "dropout", "train_size"])
    assert grid["default"] == {}  # the study's fixed options: the batchnorm variant's defaults
    assert grid["n1000"] == {"train_split": "train[:1000]", "epochs": 80, "lr_decay": pytest.approx(0.9 ** 0.1)}
    assert grid["n5000"]["epochs"] == 16 and grid["n45000"] == {"train_split": "train[:45000]", "epochs": 8,
                                                                   "lr_decay": 0.9}
    # The learning rate ends at the same fraction of lr0 whatever N: gamma^epochs ~ 0.9^8.
    for name in ("n1000", "n5000", "n20000"):
        assert grid[name]["lr_decay"] ** grid[name]["epochs"] == pytest.approx(0.9 ** 8, rel=1e-4)
    assert grid["gamma0.8"] == {"lr_decay": 0.8} and grid["dropout0.75"] == {"dropout_rate": 0.75}
    assert "n10000" not in grid  # N=10,000 is the default point


def test_sweeps_values_pick_a_factor_s_values_and_report_only_what_ran(tmp_path):
    from keraszoo.recipes import cifar10_sweeps as sweeps

    assert sweeps.grid(["dropout"], [0.0, 0.25]) == {"dropout0": {"dropout_rate": 0.0}, "default": {}}
    for factors, values, message in ((["dropout", "gamma"], [0.0], "exactly one"),
                                     (["train_size"], [1000.0], "exactly one"),
                                     (["dropout"], [0.3], "--values 0.3: not a dropout value")):
        with pytest.raises(SystemExit, match=message):
            sweeps.grid(factors, values)
    # A full-budget pair: the dropout table and its figure, no gamma table, and no "learning curve"
    # made of the default point alone.
    import json

    for name, best in (("default-seed0", 0.80), ("dropout0-seed0", 0.83)):
        folder = tmp_path / "records" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "history.csv").write_text(f"epoch,loss,accuracy,val_loss,val_accuracy\n1,1,0.5,1,0.6\n2,1,0.8,1,{best}\n")
        (folder / "metrics.json").write_text(json.dumps({
            "epochs": 2, "best_val_accuracy": best, "val_accuracy": best, "train_accuracy": 0.8, "val_loss": 0.5,
            "test_accuracy": best - 0.01, "mean_train_time_per_epoch_s": 3.0}))
    text = sweeps.report(tmp_path / "records", tmp_path / "figures", prefix="full")
    assert "### dropout_rate" in text and "### lr_decay" not in text and "training examples" not in text
    assert "| 0 | 2 | 0 | 83.00 (1 seed) |" in text
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["full_dropout.png"]


def test_vit_sweep_values_and_a_validated_report(tmp_path):
    import json

    from keraszoo.recipes import mnist_vit_sweep as sweep
    from keraszoo.training.study import load_records

    assert list(sweep.grid(["hidden_dim"], [32, 64])) == ["h32-p7-l6", "h64-p7-l6"]
    with pytest.raises(SystemExit, match="--values 48: not a hidden_dim value"):
        sweep.grid(["hidden_dim"], [48])
    with pytest.raises(SystemExit, match="exactly one"):
        sweep.grid(["hidden_dim", "patch_size"], [32])
    for name, val, test in (("h32-p7-l6-seed0", 0.97, 0.96), ("h64-p7-l6-seed0", 0.98, 0.975)):
        folder = tmp_path / "records" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"patch_size": 7, "batch_size": 128}))
        (folder / "history.csv").write_text(f"epoch,loss,accuracy,val_loss,val_accuracy\n1,1,0.5,1,0.6\n2,1,0.9,1,{val}\n")
        (folder / "metrics.json").write_text(json.dumps({
            "epochs": 2, "val_accuracy": val, "best_val_accuracy": val, "test_accuracy": test, "test_loss": 0.1,
            "num_params": 1000, "num_train_examples": 1280, "mean_train_time_per_epoch_s": 5.0}))
    text = sweep.report(load_records(tmp_path / "records", "h*-p*-l*-seed*"), tmp_path / "figures", prefix="long")
    header = next(line for line in text.splitlines() if line.startswith("| hidden_dim"))
    assert "final val. acc. %" in header and "best monitored" not in header  # chosen on validation, test apart
    assert "| 32 | 1,000 | 17 | 0 | 2 | 97.00 (1 seed) | 97.00 (1 seed) | 96.00 (1 seed) |" in text
    assert "### patch size" not in text and "### depth" not in text  # only the default ran: not a sweep
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["long_hidden_dim.png"]
