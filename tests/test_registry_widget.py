"""The registry widget's model: what it shows and the actions its buttons send."""

import pytest
from test_registry import logged_model

import nbtrack
from nbtrack.exceptions import NbtrackError
from nbtrack.widgets.registry import RegistryWidget


@pytest.fixture
def taxi():
    client = nbtrack.Client()
    for rmse in (4.0, 4.5, 3.2):
        client.register_model(logged_model(rmse), "taxi")
    client.transition_model_version_stage("taxi", 1, "Production")
    client.set_registered_model_alias("taxi", "champion", 1)
    client.create_registered_model("churn")
    return client


def test_shows_versions_with_badges_metrics_and_history(taxi):
    widget = nbtrack.registry("taxi")
    assert isinstance(widget, RegistryWidget)
    assert [m["name"] for m in widget.models] == ["churn", "taxi"]
    by_version = {v["version"]: v for v in widget.versions}
    assert by_version[1]["stage"] == "Production" and by_version[1]["aliases"] == ["champion"]
    assert by_version[3]["metrics"] == {"rmse": 3.2} and by_version[3]["run_name"]
    assert [e["action"] for e in widget.history][:2] == ["set_alias", "transition_stage"]
    assert "v1    Production  @champion" in repr(widget)
    widget.selected_model = "churn"  # as the model picker does
    assert widget.versions == []
    with pytest.raises(NbtrackError, match="No registered model named 'nope'"):
        nbtrack.registry("nope")


def test_buttons_go_through_the_client_and_its_checks(taxi):
    widget = nbtrack.registry("taxi", require="metrics.rmse <= current")
    widget.act({"action": "transition", "version": "2", "stage": "Production", "archive": True,
                "require": widget.require})
    assert widget.message_kind == "error" and "4.5 <= 4" in widget.message
    assert taxi.get_model_version("taxi", 2).current_stage == "None"
    widget.act({"action": "transition", "version": "3", "stage": "Production", "archive": True,
                "require": widget.require})
    assert widget.message_kind == "ok"
    assert taxi.get_model_version("taxi", 3).current_stage == "Production"
    assert taxi.get_model_version("taxi", 1).current_stage == "Archived"
    widget.act({"action": "set_alias", "version": "3", "alias": " champion "})
    assert taxi.get_model_version_by_alias("taxi", "champion").version == 3
    widget.act({"action": "delete_alias", "alias": "champion"})
    assert taxi.get_registered_model("taxi").aliases == {}
    widget.act({"action": "describe", "version": "3", "description": "May retrain"})
    assert taxi.get_model_version("taxi", 3).description == "May retrain"
    widget.act({"action": "set_alias", "version": "3", "alias": "latest"})
    assert widget.message_kind == "error" and "cannot be an alias" in widget.message
    widget.act({"action": "drop_tables"})
    assert widget.message == "Unknown action 'drop_tables'."
    actions = [e["action"] for e in widget.history]
    assert actions[:4] == ["update_version", "delete_alias", "set_alias", "transition_stage"]
    assert "promotion_refused" in actions


def test_registry_magic(taxi):
    from IPython.testing import globalipapp

    globalipapp.start_ipython()
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "nbtrack")
    widget = shell.run_line_magic("track_registry", "taxi --require metrics.rmse <= current")
    assert widget.selected_model == "taxi" and widget.require == "metrics.rmse <= current"
