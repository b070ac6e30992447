"""The ``nbtrack`` command: finding the store, the runs table, and the newer subcommands."""

import json

import pandas as pd
import pytest

import nbtrack
from nbtrack.cli import build_parser, main
from nbtrack.exceptions import InvalidValueError
from nbtrack.tracking.promotion import PromotionRefused


def _runs(experiment="cli", n=2, children=0):
    nbtrack.set_experiment(experiment)
    ids = []
    for i in range(n):
        with nbtrack.start_run(run_name=f"run{i}") as run:
            nbtrack.log_param("alpha", i / 10)
            nbtrack.log_metric("rmse", 3.0 + i)
            for c in range(children):
                with nbtrack.start_run(run_name=f"child{i}.{c}", nested=True):
                    nbtrack.log_metric("rmse", 1.0 + c)
            ids.append(run.info.run_id)
    nbtrack.flush()
    return ids


@pytest.mark.parametrize("command", [["runs"], ["experiments"], ["sql", "SELECT 1"],
                                     ["export", "-o", "x.csv"], ["du"], ["gc"], ["models"],
                                     ["runs", "delete", "abcdefgh"]])
def test_read_commands_never_create_a_store(tmp_path, capsys, command):
    missing = tmp_path / "nowhere"
    assert main(["--tracking-uri", str(missing), *command]) == 1
    err = capsys.readouterr().err
    assert f"No nbtrack store at {missing} (given with --tracking-uri)" in err
    assert not missing.exists()
    assert len(err.strip().splitlines()) == 1


def test_the_default_location_is_named_when_there_is_no_store(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == 1
    assert "No nbtrack store at " + str(tmp_path / ".nbtrack") in capsys.readouterr().err
    assert not (tmp_path / ".nbtrack").exists()
    monkeypatch.setenv("NBTRACK_TRACKING_URI", str(tmp_path / "env"))
    assert main(["experiments"]) == 1
    assert "(from NBTRACK_TRACKING_URI)" in capsys.readouterr().err


def test_tracking_uri_before_or_after_the_subcommand(store_dir, capsys):
    _runs()
    for argv in (["--tracking-uri", str(store_dir), "runs"],
                 ["runs", "--tracking-uri", str(store_dir)],
                 ["runs", "--tracking-uri", str(store_dir), "-e", "cli"]):
        assert main(argv) == 0, argv
        assert "run1" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"nbtrack {nbtrack.__version__}"


def test_an_unsupported_uri_is_one_line(capsys):
    assert main(["--tracking-uri", "sqlite:///mlflow.db", "runs"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if "import-mlflow" in build_parser()[1]:
        assert "nbtrack import-mlflow sqlite:///mlflow.db" in err
    else:
        assert "give a folder path" in err


def test_runs_table_fits_the_terminal_and_wide_shows_all(store_dir, capsys, monkeypatch):
    nbtrack.set_experiment("cli")
    with nbtrack.start_run(run_name="a-run-name-that-goes-on-and-on-and-on-forever"):
        nbtrack.log_params({f"param_{i}": f"value-{i}-" + "x" * 30 for i in range(8)})
        nbtrack.log_metrics({f"rmse_{i}": i / 3 for i in range(8)})
    nbtrack.flush()
    for width in (80, 120):
        monkeypatch.setenv("COLUMNS", str(width))
        assert main(["runs"]) == 0
        out = capsys.readouterr().out
        assert max(map(len, out.splitlines())) <= width
        assert "a-run-name-that-goe…" in out and "--wide shows all" in out
        assert "metrics.rmse_0" in out.splitlines()[0]  # metrics first, as many as fit
    assert main(["runs", "--wide"]) == 0
    out = capsys.readouterr().out
    assert "a-run-name-that-goes-on-and-on-and-on-forever" in out
    assert "params.param_7" in out and "--wide shows all" not in out
    assert "metrics.rmse_1" in out and "0.3333" in out  # numbers with 4 significant digits


def test_child_runs_are_nested_or_counted_with_top_level(store_dir, capsys):
    _runs(n=1, children=2)
    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split("  ")[1] for line in lines[1:]]
    assert names[0] == "run0"  # children follow their parent, in the search's order
    assert sorted(names[1:]) == ["└ child0.0", "└ child0.1"]
    assert main(["runs", "--top-level"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert "child runs" in header and "child0" not in row
    assert row.split()[1] == "run0" and " 2 " in row


def test_a_child_whose_parent_is_filtered_out_is_still_shown(store_dir, capsys):
    _runs(n=1, children=2)
    assert main(["runs", "--top-level", "-f", "metrics.rmse < 1.5"]) == 0
    out = capsys.readouterr().out
    assert "child0.0" in out and "run0" not in out


def test_duration_has_its_unit(store_dir, capsys):
    _runs(n=1)
    assert main(["runs"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert "duration" in header and " s  " in row
    assert "attributes.duration is in ms" in build_parser()[0]._subparsers._group_actions[0] \
        .choices["runs"].description


def test_an_unknown_experiment_points_to_nbtrack_experiments(store_dir, capsys):
    _runs()
    assert main(["runs", "-e", "nope"]) == 1
    err = capsys.readouterr().err
    assert "No experiment named 'nope'. `nbtrack experiments` lists them (" in err
    assert "cli" in err and "search_experiments" not in err


def test_runs_delete_and_restore_by_id_or_prefix(store_dir, capsys):
    first, second = _runs()
    assert main(["runs", "delete", first[:8], second]) == 0
    assert "Deleted run " + first in capsys.readouterr().out
    assert nbtrack.search_runs(experiment_names=["cli"]).empty
    assert main(["runs", "--deleted"]) == 0
    assert first[:8] in capsys.readouterr().out
    assert main(["runs", "restore", first]) == 0
    assert list(nbtrack.search_runs(experiment_names=["cli"])["run_id"]) == [first]
    assert main(["runs", "restore", "short"]) == 1
    assert "is not a run of this store" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export(store_dir, tmp_path, capsys, fmt):
    _runs(n=3)
    _runs(experiment="other", n=1)
    out = tmp_path / f"runs.{fmt}"
    assert main(["export", "-e", "cli", "-f", "metrics.rmse > 3.5", "-o", str(out)]) == 0
    assert "Wrote 2 runs" in capsys.readouterr().out
    read = {"csv": pd.read_csv, "parquet": pd.read_parquet,
            "json": lambda p: pd.DataFrame(json.loads(p.read_text()))}[fmt]
    frame = read(out)
    assert sorted(frame["run_name"]) == ["run1", "run2"]
    assert sorted(frame["metrics.rmse"]) == [4.0, 5.0]
    assert {"run_id", "params.alpha", "start_time"} <= set(frame.columns)


def test_export_format_option_and_a_bad_extension(store_dir, tmp_path, capsys):
    _runs()
    assert main(["export", "--format", "json", "-o", str(tmp_path / "runs.txt")]) == 0
    assert len(json.loads((tmp_path / "runs.txt").read_text())) == 2
    assert main(["export", "-o", str(tmp_path / "runs.xlsx")]) == 1
    assert "--format csv|json|parquet" in capsys.readouterr().err


def test_gc_frees_the_files_of_deleted_runs(store_dir, tmp_path, capsys):
    nbtrack.set_experiment("cli")
    payload = tmp_path / "weights.bin"
    payload.write_bytes(b"x" * 10_000)
    with nbtrack.start_run() as kept:
        nbtrack.log_artifact(payload)
    with nbtrack.start_run() as dropped:
        nbtrack.log_artifact(payload)
        nbtrack.log_text("hello", "notes/a.txt")
    client = nbtrack.Client()
    client.delete_run(dropped.info.run_id)
    client.flush()
    assert main(["gc", "--dry-run"]) == 0
    assert "Would free 9.8 KB (10,005 bytes) in 2 files of 1 deleted runs" in \
        capsys.readouterr().out
    assert (client.artifact_path(dropped.info.run_id) / "weights.bin").exists()
    assert main(["gc", "--no-progress"]) == 0
    assert "Freed 9.8 KB (10,005 bytes) in 2 files" in capsys.readouterr().out
    assert not client.artifact_path(dropped.info.run_id).exists()
    assert (client.artifact_path(kept.info.run_id) / "weights.bin").exists()
    assert main(["gc"]) == 0
    assert "Freed 0 B" in capsys.readouterr().out


def test_du_shows_sizes_per_experiment_and_run(store_dir, tmp_path, capsys):
    payload = tmp_path / "weights.bin"
    payload.write_bytes(b"x" * 4096)
    nbtrack.set_experiment("big")
    with nbtrack.start_run(run_name="heavy"):
        nbtrack.log_artifact(payload)
        for step in range(5):
            nbtrack.log_metric("loss", 1.0, step=step)
    _runs(experiment="small", n=1)
    assert main(["du"]) == 0
    out = capsys.readouterr().out
    experiments, runs, total = out.split("\n\n")[:3]
    assert experiments.splitlines()[2].split()[:5] == ["big", "1", "0", "5", "4.0"]
    assert "small" in experiments
    assert runs.splitlines()[2].split()[2] == "heavy"
    assert "database" in total and "artifacts 4.0 KB" in total
    assert main(["du", "-e", "small"]) == 0
    assert "big" not in capsys.readouterr().out.split("Store")[0]


def _registered(client):
    from tests.test_registry import logged_model

    client.register_model(logged_model(4.0), "taxi")
    client.register_model(logged_model(4.5), "taxi")
    client.flush()


def test_models_list_show_and_promote(store_dir, client, capsys):
    assert main(["models"]) == 0
    assert "No registered models yet" in capsys.readouterr().out
    _registered(client)
    assert main(["models", "promote", "taxi", "1", "--to", "Production"]) == 0
    assert "Version 1 of 'taxi' is now in Production." in capsys.readouterr().out
    assert main(["models"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["name", "latest", "Production", "Staging"]
    assert table[1].split()[:3] == ["taxi", "2", "1"]
    assert main(["models", "list"]) == 0
    assert "taxi" in capsys.readouterr().out
    assert main(["models", "show", "taxi"]) == 0
    shown = capsys.readouterr().out
    assert "taxi: 2 versions" in shown and "rmse=4.5" in shown and "Production" in shown
    assert main(["models", "show", "nope"]) == 1
    assert "No registered model named 'nope'. `nbtrack models` lists them (taxi)" in \
        capsys.readouterr().err


def test_models_promote_takes_the_same_guard(store_dir, client, capsys):
    _registered(client)
    assert main(["models", "promote", "taxi", "1", "--to", "Production"]) == 0
    capsys.readouterr()
    assert main(["models", "promote", "taxi", "2", "--to", "Production",
                 "--require", "metrics.rmse <= current"]) == 1
    err = capsys.readouterr().err
    assert "metrics.rmse: 4.5 <= 4 (current Production version 1) does not hold" in err
    assert client.get_model_version("taxi", 2).current_stage == "None"
    assert main(["models", "promote", "taxi", "2", "--to", "Staging", "-r",
                 "metrics.rmsee <= current"]) == 1
    assert "metrics.rmsee, which no version of 'taxi' has" in capsys.readouterr().err
    assert main(["models", "promote", "taxi", "2", "--to", "Staging", "-r",
                 "metrics.rmse < 5", "-m", "try it", "--keep-existing"]) == 0
    assert "(metrics.rmse < 5 holds)" in capsys.readouterr().out


def test_promote_with_a_metric_no_version_has_names_it(store_dir, client):
    _registered(client)
    with pytest.raises(InvalidValueError, match=r"names metrics\.rmsee, which no version of "
                                                r"'taxi' has\. Its versions' runs have: "
                                                r"metrics\.rmse\."):
        nbtrack.promote("taxi", 2, require="metrics.rmsee <= current")
    events = client.get_registry_events("taxi")
    assert "promotion_refused" not in set(events["action"])  # a typo is not a decision


def test_promote_when_only_the_candidate_lacks_the_metric(store_dir, client):
    _registered(client)
    with nbtrack.start_run():
        nbtrack.log_metric("mae", 1.0)
        uri = nbtrack.sklearn.log_model(_ridge(), "model").model_uri
    client.register_model(uri, "taxi")
    with pytest.raises(PromotionRefused, match=r"not promoted to Production: version 1 has no "
                                               r"metrics\.mae\. The refusal"):
        nbtrack.promote("taxi", 1, require="metrics.mae < 2")


def _ridge():
    import numpy as np
    from sklearn.linear_model import Ridge

    return Ridge().fit(np.arange(10.0).reshape(-1, 1), np.arange(10.0))


def test_experiments_all_shows_deleted_ones(store_dir, capsys):
    _runs(experiment="gone", n=1)
    client = nbtrack.Client()
    client.delete_experiment(client.get_experiment_by_name("gone").experiment_id)
    assert main(["experiments"]) == 0
    assert "gone" not in capsys.readouterr().out
    assert main(["experiments", "--all"]) == 0
    assert "deleted" in capsys.readouterr().out


def test_runs_max_and_export_order(store_dir, tmp_path, capsys):
    _runs(n=3)
    assert main(["runs", "--max", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # header and two runs
    out = tmp_path / "ordered.csv"
    assert main(["export", "--order", "metrics.rmse DESC", "-o", str(out)]) == 0
    assert list(pd.read_csv(out)["run_name"]) == ["run2", "run1", "run0"]


def test_du_max(store_dir, capsys):
    _runs(n=3)
    assert main(["du", "--max", "1", "--no-progress"]) == 0
    assert "Largest runs (2 more: --max)" in capsys.readouterr().out


def test_the_keys_a_filter_or_order_names_come_first(store_dir, capsys, monkeypatch):
    nbtrack.set_experiment("cli")
    for i in range(2):
        with nbtrack.start_run(run_name=f"r{i}"):
            nbtrack.log_metrics({f"aaa_{k}": k for k in range(6)} | {"zz_rmse": 5.0 - i})
            nbtrack.log_param("zz_model", "ridge")
    nbtrack.flush()
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["runs", "-f", "params.zz_model = 'ridge'", "-o", "metrics.zz_rmse"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[5:7] == ["params.zz_model", "metrics.zz_rmse"]


def test_models_promote_keep_existing(store_dir, client, capsys):
    _registered(client)
    assert main(["models", "promote", "taxi", "1", "--to", "Production"]) == 0
    assert main(["models", "promote", "taxi", "2", "--to", "Production", "--keep-existing",
                 "--comment", "both for a while"]) == 0
    assert client.get_model_version("taxi", 1).current_stage == "Production"
    assert client.get_model_version("taxi", 2).current_stage == "Production"
    events = client.get_registry_events("taxi")
    assert "both for a while" in set(events["comment"])
    assert main(["models", "promote", "taxi", "1", "--to", "Staging"]) == 0
    assert client.get_model_version("taxi", 2).current_stage == "Production"


def test_other_unsupported_uris_say_why_in_one_line(capsys):
    assert main(["--tracking-uri", "s3://bucket/store", "runs"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "Unsupported tracking URI 's3://bucket/store'" in err
