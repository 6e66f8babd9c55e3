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
    assert run_study(args, config_class=mlp.MLPConfig, main=mlp.main, grid=GRID, fixed=FIXED) == 0
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

    # The same command again: every run is finished, so each is a no-op in-process (no training).
    capsys.readouterr()
    assert run_study(_args(tmp_path, "--jobs", "1"), config_class=mlp.MLPConfig, main=mlp.main, grid=GRID,
                     fixed=FIXED) == 0
    assert capsys.readouterr().out.count("finished already") == 2


def test_a_bad_grid_point_is_refused_before_anything_trains(tmp_path):
    with pytest.raises(SystemExit, match="lr-0-seed0: learning_rate=0.0 is out of range"):
        run_study(_args(tmp_path), config_class=mlp.MLPConfig, main=mlp.main,
                  grid={**GRID, "lr-0": {"learning_rate": 0.0}}, fixed=FIXED)
    assert not (tmp_path / "runs").exists()
