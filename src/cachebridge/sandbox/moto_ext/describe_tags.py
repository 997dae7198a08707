"""ELBv2 DescribeTags as AWS answers it: at most 20 resources a call, and a target group
that does not exist is an error, not a group without tags.

"ResourceArns ... You can specify up to 20 resources in a single call." and, under Errors,
"TargetGroupNotFound: The specified target group does not exist. HTTP Status Code: 400"
(Elastic Load Balancing API Reference, DescribeTags). moto 5.2.1 answers any number of ARNs
and gives an ARN it does not know an empty tag list, so a caller that sends 21 ARNs, or
takes "no tags" for a group deleted since, would pass every sandbox test. The controller
reads the owner and lock-table tags of the groups it is about to write 20 a call
(``nlb.TargetGroups.with_fresh_tags``): this makes a 21st ARN fail here as there, and a
deleted group fail the call it is in.

The docs give no error code for too many ARNs; AWS's request validation answers a list
over its documented length with ``ValidationError`` ("1 validation error detected: ...
Member must have length less than or equal to 20"), the wording used here. An ARN of a
kind other than a target group (load balancer, listener, rule) is left to moto.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install", "installed", "MAX_RESOURCE_ARNS"]

MAX_RESOURCE_ARNS = 20
_MARK = "_cachebridge_describe_tags_ext"


def install() -> None:
    from moto.elbv2.exceptions import TargetGroupNotFoundError, ValidationError
    from moto.elbv2.responses import ELBV2Response

    if getattr(ELBV2Response, _MARK, False):
        return
    original = ELBV2Response.describe_tags

    def describe_tags(self: Any) -> Any:
        arns = self._get_param("ResourceArns", []) or []
        if len(arns) > MAX_RESOURCE_ARNS:
            raise ValidationError(
                f"1 validation error detected: Value '{arns}' at 'resourceArns' failed to satisfy constraint: "
                f"Member must have length less than or equal to {MAX_RESOURCE_ARNS}"
            )
        groups = self.elbv2_backend.target_groups
        if any(":targetgroup/" in arn and arn not in groups for arn in arns):
            raise TargetGroupNotFoundError()
        return original(self)

    ELBV2Response.describe_tags = describe_tags  # type: ignore[method-assign]
    setattr(ELBV2Response, _MARK, True)


def installed() -> bool:
    from moto.elbv2.responses import ELBV2Response

    return bool(getattr(ELBV2Response, _MARK, False))
