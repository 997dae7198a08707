"""``vpc_cidrs``: the target groups' VPC CIDR blocks as deploy read them, one setting read
from a file, from CACHEBRIDGE_BINDINGS and from CACHEBRIDGE_VPC_CIDRS alike."""

from __future__ import annotations

import json

import pytest

from cachebridge.config import Config, Settings
from cachebridge.errors import ConfigError

VPC, OTHER = "vpc-0a1b2c3d", "vpc-0123456789abcdef0"
BINDINGS = json.dumps([{"source": "dns://master.orders.example", "target_group": "orders-primary"}])


def test_a_mapping_the_environment_form_and_the_round_trip_agree() -> None:
    from_mapping = Settings.from_mapping({"vpc_cidrs": {VPC: ["10.0.0.0/16", "10.1.0.0/16"], OTHER: ["172.31.0.0/16"]}})
    from_text = Settings().merged({"vpc_cidrs": f"{VPC}=10.0.0.0/16,10.1.0.0/16; {OTHER}=172.31.0.0/16"})
    assert from_mapping == from_text
    assert from_mapping.known_vpc_cidrs(VPC) == ("10.0.0.0/16", "10.1.0.0/16")
    assert from_mapping.known_vpc_cidrs(OTHER) == ("172.31.0.0/16",)
    assert from_mapping.known_vpc_cidrs("vpc-0fffffff") == () and from_mapping.known_vpc_cidrs(None) == ()
    assert Settings.from_mapping(from_mapping.to_mapping()) == from_mapping
    assert "vpc_cidrs" not in Settings().to_mapping()  # unset: the template's variable stays as it was


def test_the_environment_variable_sets_it() -> None:
    config = Config.from_env({"CACHEBRIDGE_BINDINGS": BINDINGS, "CACHEBRIDGE_VPC_CIDRS": f"{VPC}=10.0.0.0/16,2600:1f18::/56"})
    assert config.settings.known_vpc_cidrs(VPC) == ("10.0.0.0/16", "2600:1f18::/56")


@pytest.mark.parametrize(
    "value, problem",
    [
        (f"{VPC}", "has no '='"),
        ("vpc-xyz=10.0.0.0/16", "is not a VPC id"),
        (f"{VPC}=10.0.0.300/16", "is not a CIDR"),
        ({VPC: []}, "no CIDR block"),
        (["10.0.0.0/16"], "not a table/object"),
    ],
)
def test_bad_values_are_refused_naming_the_field(value: object, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings().merged({"vpc_cidrs": value})
    assert problem in str(caught.value)
    assert caught.value.field.startswith("settings.vpc_cidrs")


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"CACHEBRIDGE_BINDINGS": BINDINGS, "CACHEBRIDGE_VPC_CIDRS": "10.0.0.0/16"})
    assert caught.value.field == "CACHEBRIDGE_VPC_CIDRS"


@pytest.mark.parametrize("value, problem", [
    ("vpc-0a1b2c3d=0.0.0.0/0", "0.0.0.0/0 is wider than a VPC's block can be"),
    ("vpc-0a1b2c3d=10.0.0.0/8", "10.0.0.0/8 is wider than a VPC's block can be"),
    ("vpc-0a1b2c3d=::/0", "::/0 is wider than a VPC's block can be"),
    ("vpc-0a1b2c3d=10.0.0.0/16;vpc-0a1b2c3d=10.1.0.0/16", "'vpc-0a1b2c3d' is given twice"),
])
def test_a_block_no_vpc_can_have_or_a_vpc_given_twice_is_refused(value: str, problem: str) -> None:
    # A block as wide as 0.0.0.0/0 would pass every address the VPC range check refuses.
    with pytest.raises(ConfigError) as caught:
        Settings().merged({"vpc_cidrs": value})
    assert problem in str(caught.value)
