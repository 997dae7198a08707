"""Where more bindings go (the environment or a file in the zip), and how the Lambda reads
them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachebridge.config import ENV_CONFIG_FILE, ENV_EXTRA_BINDINGS, Binding, Config, DnsSourceSpec
from cachebridge.deploy import more_bindings, template
from cachebridge.deploy.package import CONFIG_FILE_NAME, build
from cachebridge.errors import ConfigError

OWN = json.dumps([{"name": "orders-primary", "source": "elasticache://orders?role=primary", "target_group": "tg-own"}])


def bindings(n: int) -> tuple[Binding, ...]:
    return tuple(
        Binding(f"extra-{i:04d}", DnsSourceSpec(f"node{i}.example.internal"), f"arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/extra-{i:04d}/0123456789abcdef", 6379)
        for i in range(n)
    )


def test_a_few_bindings_go_in_the_environment() -> None:
    placement = more_bindings.place(bindings(3), template.build(), own_binding="orders-primary")

    assert placement.where == "environment" and placement.config is None
    assert placement.parameters["ConfigFile"] == ""
    assert [b["name"] for b in json.loads(placement.parameters["ExtraBindings"])["bindings"]] == ["extra-0000", "extra-0001", "extra-0002"]
    assert placement.environment_bytes <= more_bindings.ENVIRONMENT_LIMIT_BYTES


def test_past_four_kilobytes_they_go_in_the_zip() -> None:
    placement = more_bindings.place(bindings(40), template.build(), own_binding="orders-primary")

    assert placement.where == "file"
    assert placement.parameters == {"ExtraBindings": "", "ConfigFile": CONFIG_FILE_NAME}
    assert placement.environment_bytes > more_bindings.ENVIRONMENT_LIMIT_BYTES
    assert placement.config is not None
    assert len(json.loads(placement.config)["bindings"]) == 40
    # The file changes the zip, hence its content-addressed key.
    assert build(config=placement.config).key != build().key


def test_no_more_bindings_clears_both_parameters() -> None:
    placement = more_bindings.place((), template.build(), own_binding="orders-primary")
    assert placement.parameters == {"ExtraBindings": "", "ConfigFile": ""}


def test_a_binding_named_like_the_stacks_own_is_refused() -> None:
    taken = (Binding("orders-primary", DnsSourceSpec("a.example.internal"), "tg-a", 6379),)
    with pytest.raises(ConfigError, match="stack's own binding"):
        more_bindings.place(taken, template.build(), own_binding="orders-primary")


def test_the_template_passes_either_on_to_the_function() -> None:
    variables = template.build()["Resources"]["ControllerFunction"]["Properties"]["Environment"]["Variables"]
    assert variables[ENV_EXTRA_BINDINGS] == {"Fn::If": ["HasExtraBindings", {"Ref": "ExtraBindings"}, {"Ref": "AWS::NoValue"}]}
    assert variables[ENV_CONFIG_FILE] == {"Fn::If": ["HasConfigFile", {"Ref": "ConfigFile"}, {"Ref": "AWS::NoValue"}]}


def test_the_lambda_reads_its_own_binding_then_the_environments_then_the_files(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE_NAME).write_text(json.dumps({"bindings": [b.to_mapping() for b in bindings(2)]}))
    extra = json.dumps([{"name": "in-env", "source": "dns://env.example.internal", "target_group": "tg-env"}])

    config = Config.from_env({
        "CACHEBRIDGE_BINDINGS": OWN, ENV_EXTRA_BINDINGS: extra, ENV_CONFIG_FILE: CONFIG_FILE_NAME, "LAMBDA_TASK_ROOT": str(tmp_path),
    })

    assert [b.name for b in config.bindings] == ["orders-primary", "in-env", "extra-0000", "extra-0001"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read"), ("{", "not valid JSON"), ("[]", "no bindings"), ('{"bindings": [], "settings": {}}', "unknown setting")],
)
def test_a_bad_config_file_is_a_config_error_naming_the_variable(tmp_path: Path, content: str | None, problem: str) -> None:
    if content is not None:
        (tmp_path / CONFIG_FILE_NAME).write_text(content)
    with pytest.raises(ConfigError, match=problem) as caught:
        Config.from_env({"CACHEBRIDGE_BINDINGS": OWN, ENV_CONFIG_FILE: CONFIG_FILE_NAME, "LAMBDA_TASK_ROOT": str(tmp_path)})
    assert caught.value.field.startswith(ENV_CONFIG_FILE)
