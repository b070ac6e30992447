"""Quoted option values in every magic, errors as messages, and who wins for a param."""

import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp

import nbtrack
from nbtrack.magics.args import split_line
from nbtrack.magics.track import TrackConfig
from tests.test_magics import last_run, track


@pytest.fixture
def ip(store_dir):
    globalipapp.start_ipython()
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "nbtrack")
    shell.magics_manager.registry["TrackMagics"].config_ = TrackConfig()
    shell.magics_manager.registry["TrackMagics"]._experiment_set = None
    shell.user_ns["nbtrack"] = nbtrack
    yield shell
    while nbtrack.active_run():
        nbtrack.end_run()


@pytest.mark.parametrize(("line", "argv"), [
    ('-e X -f "metrics.rmse < 60"', ["-e", "X", "-f", "metrics.rmse < 60"]),
    ("-e X -f 'metrics.rmse < 60'", ["-e", "X", "-f", "metrics.rmse < 60"]),
    ("-f metrics.rmse < 5 --max 3", ["-f", "metrics.rmse < 5", "--max", "3"]),
    ("-f params.model = 'lasso'", ["-f", "params.model = 'lasso'"]),
    ("-f params.model='lasso'", ["-f", "params.model='lasso'"]),
    ('-f "params.model = \'lasso\'" -o "metrics.rmse ASC"',
     ["-f", "params.model = 'lasso'", "-o", "metrics.rmse ASC"]),
    ("-o metrics.rmse ASC -o start_time", ["-o", "metrics.rmse ASC", "-o", "start_time"]),
    ('--filter="metrics.a < 1"', ["--filter", "metrics.a < 1"]),
    ('-n "my run" --tags team=a', ["-n", "my run", "--tags", "team=a"]),
    ("-r metrics.rmse <= current", ["-r", "metrics.rmse <= current"]),
])
def test_options_are_read_as_a_shell_reads_them(line, argv):
    assert split_line(line) == argv


@pytest.mark.parametrize("line", ['-f "metrics.rmse < 5', "-n 'unclosed"])
def test_an_unclosed_quote_is_a_usage_error(line):
    with pytest.raises(UsageError, match="close every quote"):
        split_line(line)


def _two_runs(ip):
    track(ip, "-e quoting -n low", "nbtrack.log_metric('rmse', 50.0)")
    track(ip, "-e quoting -n high", "nbtrack.log_metric('rmse', 70.0)")


@pytest.mark.parametrize("line", [
    '-e quoting -f "metrics.rmse < 60"',  # the README's form
    "-e quoting -f 'metrics.rmse < 60'",
    "-e quoting -f metrics.rmse < 60",
    "-e quoting --filter='metrics.rmse < 60'",
])
def test_track_runs_takes_the_filter_quoted_or_not(ip, line):
    _two_runs(ip)
    assert list(ip.run_line_magic("track_runs", line)["run_name"]) == ["low"]


def test_filter_and_order_agree_on_quotes(ip):
    _two_runs(ip)
    for order in ('"metrics.rmse DESC"', "'metrics.rmse DESC'", "metrics.rmse DESC"):
        frame = ip.run_line_magic("track_runs", f"-e quoting -o {order}")
        assert list(frame["run_name"]) == ["high", "low"], order


def test_magic_errors_are_messages_not_tracebacks(ip):
    _two_runs(ip)
    with pytest.raises(UsageError, match=r"%track_runs: .*position"):
        ip.run_line_magic("track_runs", '-e quoting -f "metrics.rmse <"')
    with pytest.warns(UserWarning, match="No experiment named 'nope'"):  # as the API does
        assert ip.run_line_magic("track_runs", "-e nope").empty
    with pytest.raises(UsageError, match="%track_sql"):
        ip.run_line_magic("track_sql", "SELECT nosuch FROM runs")
    with pytest.raises(UsageError, match="argument --max: invalid int"):
        ip.run_line_magic("track_runs", "--max many")


def test_track_compare_refuses_a_bad_filter(ip):
    _two_runs(ip)
    with pytest.raises(UsageError, match=r"%track_compare: .*position"):
        ip.run_line_magic("track_compare", '-e quoting -f "metrics.rmse <"')
    widget = ip.run_line_magic("track_compare", '-e quoting -f "metrics.rmse < 60"')
    try:
        assert widget is not None
    finally:
        widget.close()


def test_track_registry_takes_a_quoted_requirement(ip):
    from nbtrack.widgets.registry import RegistryWidget

    widget = ip.run_line_magic("track_registry", '-r "metrics.rmse <= current"')
    try:
        assert isinstance(widget, RegistryWidget)
    finally:
        widget.close()


def test_track_takes_quoted_names_and_descriptions(ip):
    track(ip, '-e "quoted experiment" -n "my run" -d "a long note"', "x = 1")
    run = last_run()
    assert run.info.run_name == "my run"
    assert nbtrack.get_experiment(run.info.experiment_id).name == "quoted experiment"


def test_explicit_log_param_wins_and_the_summary_says_so(ip, capsys):
    track(ip, "", "alpha = 0.1\nnbtrack.log_param('alpha', 0.2)")
    assert last_run().data.params == {"alpha": "0.2"}
    out = capsys.readouterr().out
    assert "note: param alpha = 0.2 as the cell logged it (its variable was 0.1)" in out


def test_no_note_when_the_values_agree(ip, capsys):
    track(ip, "", "alpha = 0.1\nnbtrack.log_param('alpha', 0.1)")
    assert last_run().data.params == {"alpha": "0.1"}
    assert "note:" not in capsys.readouterr().out


def test_a_bad_filter_in_a_cell_shows_one_message(ip, capsys):
    _two_runs(ip)
    capsys.readouterr()
    result = ip.run_cell('%track_runs -e quoting -f "metrics.rmse <"')
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "UsageError: %track_runs:" in text and "position" in text
    assert "Traceback" not in text and "parser.py" not in text
    assert not result.success


def test_track_config_reports_a_bad_uri_as_a_message(ip):
    with pytest.raises(UsageError, match="%track_config: Unsupported tracking URI"):
        ip.run_line_magic("track_config", '--tracking-uri "sqlite:///mlflow.db"')
