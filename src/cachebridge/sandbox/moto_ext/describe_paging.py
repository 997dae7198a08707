"""DescribeReplicationGroups pages: moto 5.2.1 takes any ``MaxRecords``; AWS only 20 to 100.

"MaxRecords ... Default: 100. Constraints: minimum 20; maximum 100" (ElastiCache API
Reference, DescribeReplicationGroups). moto pages the unfiltered call as AWS does (100 by
default, ``Marker`` to go on) but would answer a page of 5 or of 500, so a page size that
AWS refuses would pass every sandbox test. The elasticache:// source lists many groups in
pages (``sources.LIST_PAGE_SIZE``); this makes a size out of range fail here as there,
with ``InvalidParameterValue`` (the code AWS gives a parameter out of its range; the docs
do not quote the message, so moto's wording is used).
"""

from __future__ import annotations

from typing import Any

__all__ = ["install", "installed", "MIN_RECORDS", "MAX_RECORDS"]

MIN_RECORDS = 20
MAX_RECORDS = 100
_MARK = "_cachebridge_describe_paging_ext"


def install() -> None:
    from moto.elasticache.exceptions import InvalidParameterValueException
    from moto.elasticache.responses import ElastiCacheResponse

    if getattr(ElastiCacheResponse, _MARK, False):
        return
    original = ElastiCacheResponse.describe_replication_groups

    def describe_replication_groups(self: Any) -> Any:
        max_records = self._get_int_param("MaxRecords")
        if max_records is not None and not MIN_RECORDS <= max_records <= MAX_RECORDS:
            raise InvalidParameterValueException(
                f"Invalid value for MaxRecords: {max_records}; it must be between {MIN_RECORDS} and {MAX_RECORDS}"
            )
        return original(self)

    ElastiCacheResponse.describe_replication_groups = describe_replication_groups  # type: ignore[method-assign]
    setattr(ElastiCacheResponse, _MARK, True)


def installed() -> bool:
    from moto.elasticache.responses import ElastiCacheResponse

    return bool(getattr(ElastiCacheResponse, _MARK, False))
