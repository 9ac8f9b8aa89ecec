"""One declaration per job option: validation, GET /models, OpenAPI and both CLIs are derived from it."""

from __future__ import annotations

import contextlib
import dataclasses
import io

import pytest

from backend import cli, study_cli
from backend.jobconfig import ConfigError, JobConfig, job_options, register_option, study_axes
from backend.options import Option
from tests.throwaway_server import THROWAWAY as BROWSER_THROWAWAY

THROWAWAY = dataclasses.replace(BROWSER_THROWAWAY, study_axis=True)  # the browser test's, as a study axis too


def _help(main, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(argv)
    return out.getvalue()


def test_a_throwaway_option_declared_once_reaches_every_surface(client):
    with register_option(THROWAWAY):
        # validation: default, a value in range, a value out of range named with its range
        assert JobConfig.from_dict({"model_name": "resnet18"}).throwaway_knob == 0.25
        assert JobConfig.from_dict({"model_name": "resnet18", "throwaway_knob": 0.5}).throwaway_knob == 0.5
        with pytest.raises(ConfigError) as exc:
            JobConfig.from_dict({"model_name": "resnet18", "throwaway_knob": 0.7})
        assert exc.value.field == "throwaway_knob" and "[0, 0.5]" in str(exc.value)
        bad = client.post("/train", json={"model_name": "resnet18", "throwaway_knob": -1})
        assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "throwaway_knob"
        # GET /models
        models = client.get("/models").get_json()
        declared = {o["name"]: o for o in models["option_schema"]}["throwaway_knob"]
        assert declared["minimum"] == 0 and declared["maximum"] == 0.5 and declared["default"] == 0.25
        assert declared["help"] == THROWAWAY.help and declared["study_axis"] is True
        assert models["limits"]["throwaway_knob"] == {"type": "number", "minimum": 0, "maximum": 0.5, "optional": False}
        assert models["options"]["throwaway_knob"] == 0.25 and "throwaway_knob" in models["study_axes"]
        # OpenAPI: the /train body and the /studies grid
        schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
        train = schemas["TrainOptions"]["properties"]["throwaway_knob"]
        assert train["type"] == "number" and train["minimum"] == 0 and train["maximum"] == 0.5
        axis = schemas["StudyOptions"]["properties"]["grid"]["properties"]["throwaway_knob"]
        assert axis["type"] == "array" and axis["items"]["maximum"] == 0.5
        # both command lines
        assert "--throwaway-knob" in _help(cli.main, ["--help"])
        assert "--throwaway-knob" in _help(cli.main, ["study", "--help"])
        args = study_cli.parse_args(
            ["--model", "resnet18", "--sparsity", "0.3", "--structural-ratio", "0.5", "--throwaway-knob", "0.1,0.2"]
        )
        assert study_cli.body_from_args(args)["grid"]["throwaway_knob"] == [0.1, 0.2]
    # gone again with the block
    assert "throwaway_knob" not in {o.name for o in job_options()}
    assert client.post("/train", json={"model_name": "resnet18", "throwaway_knob": 0.1}).status_code == 400


def test_every_option_is_everywhere(client):
    names = [o.name for o in job_options()]
    for extra in ("latency_runs", "max_grad_norm", "quantize", "pruning_method", "kd_loss", "pruning_scope"):
        assert extra in names
    models = client.get("/models").get_json()
    assert [o["name"] for o in models["option_schema"]] == names
    train = client.get("/openapi.json").get_json()["components"]["schemas"]["TrainOptions"]["properties"]
    assert sorted(train) == sorted(names)
    one, study = _help(cli.main, ["--help"]), _help(cli.main, ["study", "--help"])
    for option in job_options():
        assert option.flag in one and option.flag in study, option.name
    assert set(study_axes()) >= {"sparsity", "structural_ratio", "temperature", "alpha", "pruning_method", "kd_loss"}


def test_the_cli_builds_the_same_config_as_the_api():
    argv = [
        "--model", "ResNet-18", "--kd-loss", "ce", "--pruning-method", "random_unstructured", "--quantize",
        "dynamic_int8", "--max-grad-norm", "2", "--latency-runs", "40", "--no-augment", "--pretrained", "false",
    ]  # fmt: skip
    from_cli = JobConfig.from_dict(cli.options_from_args(cli.parse_args(argv)))
    from_api = JobConfig.from_dict(
        {
            "model_name": "resnet18",
            "kd_loss": "ce",
            "pruning_method": "random_unstructured",
            "quantize": "dynamic_int8",
            "max_grad_norm": 2,
            "latency_runs": 40,
            "augment": False,
            "pretrained": False,
        }
    )
    assert from_cli == from_api and from_cli.max_grad_norm == 2.0 and from_cli.pretrained == "false"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("pruning_method", "bogus", "l1_unstructured"),
        ("kd_loss", "attention_maybe", "logits"),
        ("pruning_scope", "row", "global"),
        ("sparsity", 1.0, "[0, 1)"),
        ("temperature", 0, "(0, 100]"),
        ("augment", "yes", "true or false"),
        ("seed", 1.5, "integer"),
    ],
)
def test_declared_checks_name_the_valid_values(field, value, words):
    with pytest.raises(ConfigError) as exc:
        JobConfig.from_dict({"model_name": "resnet18", field: value})
    assert exc.value.field == field and words in str(exc.value)


def test_study_grid_takes_any_declared_axis_and_checks_each_value():
    from backend.jobs.studies import expand_grid

    axes, _, configs = expand_grid(
        {
            "model_name": "resnet18",
            "grid": {
                "sparsity": [0.3],
                "structural_ratio": [0.5],
                "pruning_method": ["l1_unstructured", "random_unstructured"],
            },
        }
    )
    assert axes["pruning_method"] == ["l1_unstructured", "random_unstructured"]
    assert [c.pruning_method for c in configs] == ["l1_unstructured", "random_unstructured"]
    with pytest.raises(ConfigError) as exc:
        expand_grid(
            {"model_name": "resnet18", "grid": {"sparsity": [0.3], "structural_ratio": [0.5], "kd_loss": ["x"]}}
        )
    assert exc.value.field == "grid.kd_loss"
    with pytest.raises(ConfigError) as exc:
        expand_grid({"model_name": "resnet18", "grid": {"sparsity": [0.3], "structural_ratio": [0.5], "seed": [1, 2]}})
    assert exc.value.field == "grid.seed"  # not declared a study axis


def test_an_option_declared_twice_is_refused():
    with register_option(Option("sparsity", "number", default=0.1, minimum=0, maximum=1)):
        with pytest.raises(ValueError, match="declared twice"):
            job_options()


def test_the_readme_configuration_table_is_the_settings_declaration():
    from backend.config import SETTINGS, markdown_table
    from tests.servers import ROOT

    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "README's Configuration table differs from: python -m backend.config"
    from backend.app import parse_args

    args = parse_args(["--port", "5099", "--retain-days", "2.5", "--broker", "redis://127.0.0.1:1/0"])
    assert (args.PORT, args.RETAIN_DAYS, args.BROKER_URL) == (5099, 2.5, "redis://127.0.0.1:1/0")
    assert {s.key for s in SETTINGS} >= {
        "HOST",
        "PORT",
        "DATA_DIR",
        "DEVICE",
        "BROKER_URL",
        "API_TOKEN",
        "CORS_ORIGINS",
    }


def test_the_readme_options_table_is_the_declaration():
    from backend.jobconfig import options_markdown
    from tests.servers import ROOT

    assert options_markdown() in (ROOT / "README.md").read_text(), "README differs from: python -m backend.jobconfig"


def test_dataset_names_are_declared_once():
    from backend.data import names, public
    from backend.data.builtin import load_builtin
    from backend.jobconfig import BUILTIN_DATASETS

    for family in ("vision", "text"):
        assert {d.name for d in public.PUBLIC.values() if d.family == family} == set(names.PUBLIC[family])
        assert BUILTIN_DATASETS[family] == (*names.BUILTIN[family], *names.PUBLIC[family])
    assert load_builtin("digits", seed=0).name == "digits"
