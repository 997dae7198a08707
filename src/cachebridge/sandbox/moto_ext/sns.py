"""SNS topics: moto 5.2.1 gives a new topic a default access policy conditioned on
``AWS:SourceOwner``; AWS's no longer is.

"Newly created Amazon SNS topics default to aws:SourceAccount in their access policy, which
ElastiCache does not support for event notifications" (ElastiCache User Guide, "Managing
ElastiCache Amazon SNS notifications"). With moto's old default, a topic created in the
sandbox would pass ``cachebridge deploy --notification-topic-arn``'s policy check where the
same topic on AWS would make ElastiCache set it inactive. The new default keeps moto's
statement and swaps the condition key, as that page describes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install", "installed"]

_MARK = "_cachebridge_sns_ext"


def install() -> None:
    from moto.sns.models import Topic

    if getattr(Topic, _MARK, False):
        return
    original = Topic._create_default_topic_policy

    def default_policy(self: Any, region_name: str, account_id: str, name: str) -> dict[str, Any]:
        policy = original(self, region_name, account_id, name)
        for statement in policy.get("Statement", []):
            condition = statement.get("Condition", {}).get("StringEquals", {})
            if "AWS:SourceOwner" in condition:
                condition["AWS:SourceAccount"] = condition.pop("AWS:SourceOwner")
        return policy

    Topic._create_default_topic_policy = default_policy  # type: ignore[method-assign]
    setattr(Topic, _MARK, True)


def installed() -> bool:
    from moto.sns.models import Topic

    return bool(getattr(Topic, _MARK, False))
