"""Hostile answers and hostile processes: DescribeTags answers the switch and cluster layouts
must not read as "no tags", and ``sandbox down`` against a supervisor it cannot stop
cleanly, damaged state, and a zombie recorded when ``sandbox up`` runs."""

from __future__ import annotations

from typing import Any

import pytest

from cachebridge.switch_planner import NODE_TAG

from . import test_cluster as tc
from .conftest import CallLog

pytestmark = pytest.mark.timeout(90)

WRITES = ("ModifyListener", "RegisterTargets", "DeregisterTargets", "AddTags", "RemoveTags")

stack = tc.stack


def _edit_tags_answer(elbv2: Any, edit_item: Any) -> Any:
    """DescribeTags answers pass each description through ``edit_item(description)``;
    returns the hook, for ``_unhook``."""

    def edit(parsed: dict[str, Any], **_: Any) -> None:
        parsed["TagDescriptions"] = [edit_item(d) for d in parsed.get("TagDescriptions", [])]

    elbv2.meta.events.register("after-call.elastic-load-balancing-v2.DescribeTags", edit)
    return edit


def _unhook(elbv2: Any, edit: Any) -> None:
    elbv2.meta.events.unregister("after-call.elastic-load-balancing-v2.DescribeTags", edit)


def _one_key_twice(arn: str) -> Any:
    return lambda d: {**d, "Tags": [*d["Tags"], {"Key": NODE_TAG, "Value": "sessions-0009-001"}]} if d["ResourceArn"] == arn else d


def _tag_without_key(arn: str) -> Any:
    return lambda d: {**d, "Tags": [{"Value": t.get("Value", "")} for t in d["Tags"]]} if d["ResourceArn"] == arn else d


def _tags_not_a_list(arn: str) -> Any:
    return lambda d: {**d, "Tags": {t["Key"]: t.get("Value", "") for t in d["Tags"]}} if d["ResourceArn"] == arn else d


@pytest.mark.parametrize("malformed", ["a tag without Key", "Tags not a list", "one key twice"])
def test_cluster_a_malformed_description_of_a_slot_is_an_error_naming_it_and_writes_nothing(stack: Any, elbv2: Any, malformed: str) -> None:
    tc.run(stack, elbv2)
    before = {arn: (tc.members(elbv2, arn), tc.tags(elbv2, arn)) for arn in stack.slots}
    held = next(arn for arn in stack.slots if tc.tags(elbv2, arn).get(NODE_TAG))
    make = {"a tag without Key": _tag_without_key, "Tags not a list": _tags_not_a_list, "one key twice": _one_key_twice}[malformed]
    hook = _edit_tags_answer(elbv2, make(held))
    log = CallLog(elbv2)

    result = tc.run(stack, elbv2).bindings[0]
    _unhook(elbv2, hook)

    assert "DescribeTags" in log.names()
    assert result.status == "error" and held in (result.error or ""), result.error
    assert not [n for n in log.names() if n in WRITES], log.names()
    assert {arn: (tc.members(elbv2, arn), tc.tags(elbv2, arn)) for arn in stack.slots} == before
