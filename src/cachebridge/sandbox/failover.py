"""Failover the way ElastiCache does it, on real redis-server nodes.

Both kinds promote a replica, make the old primary a replica when it is back, flip the
primary endpoint's CNAME to the new primary's node name, update the roles that
``DescribeReplicationGroups`` reports, and deliver an ``ElastiCache:FailoverComplete``
SNS notification. The order of the DNS flip and the notification, and the delay between
them, are options: ElastiCache's notification can arrive before DNS changes, and the
controller must cope with either.

- planned (``TestFailover``): Redis's own ``FAILOVER TO`` pauses writes on the primary
  until the replica has caught up, then swaps roles; no acknowledged write is lost.
- unplanned (``kill-primary``): the primary process is killed; after ``detect_s`` (the
  time ElastiCache takes to notice) a replica is promoted; writes the replica had not
  received yet are lost, as with Redis's asynchronous replication. The old node is
  restarted as a replica after ``rejoin_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .redis_nodes import RedisNode

__all__ = ["FailoverOptions", "Cluster", "Member"]

Order = Literal["dns-first", "notify-first"]


@dataclass
class FailoverOptions:
    order: Order = "dns-first"
    notify_delay_s: float = 0.5  # between the first and the second of DNS flip / notification
    detect_s: float = 3.0  # unplanned: how long until the dead primary is noticed
    rejoin_s: float = 5.0  # unplanned: when the old primary comes back as a replica


@dataclass
class Member:
    cluster_id: str
    hostname: str
    node: RedisNode


class Cluster:
    """The sandbox's replication group: members, DNS names and the failover procedure."""

    def __init__(
        self,
        replication_group_id: str,
        members: list[Member],
        primary_endpoint: str,
        *,
        set_cname: Callable[[str, str], None],
        set_roles: Callable[[str], None],
        notify: Callable[[dict[str, Any]], None],
        record: Callable[..., None],
        options: FailoverOptions | None = None,
    ) -> None:
        self.replication_group_id = replication_group_id
        self.members = members
        self.primary_endpoint = primary_endpoint
        self._set_cname = set_cname
        self._set_roles = set_roles
        self._notify = notify
        self._record = record
        self.options = options or FailoverOptions()
        self._lock = threading.Lock()
        self.primary = members[0]
        self._threads: list[threading.Thread] = []

    # -- queries -----------------------------------------------------------------------------

    @property
    def replicas(self) -> list[Member]:
        return [m for m in self.members if m is not self.primary]

    # -- failover ----------------------------------------------------------------------------

    def start_failover(self, kind: Literal["planned", "unplanned"]) -> None:
        """Run a failover in the background, as ElastiCache does after TestFailover."""
        if self._lock.locked():
            raise RuntimeError("a failover is already in progress")
        thread = threading.Thread(target=self._failover_reporting, args=(kind,), name=f"failover-{kind}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _failover_reporting(self, kind: Literal["planned", "unplanned"]) -> None:
        try:
            self.failover(kind)
        except Exception as exc:  # a background failover reports instead of dying silently
            self._record("failover.error", failover=kind, error=f"{type(exc).__name__}: {exc}")

    def failover(self, kind: Literal["planned", "unplanned"]) -> Member:
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("a failover is already in progress")
        try:
            return self._failover(kind)
        finally:
            self._lock.release()

    def _failover(self, kind: str) -> Member:
        old = self.primary
        candidates = [m for m in self.replicas if m.node.process is not None]
        if not candidates:
            raise RuntimeError("no live replica to promote")
        new = candidates[0]
        self._record("failover.start", failover=kind, old=old.cluster_id, new=new.cluster_id)
        if kind == "unplanned":
            old.node.kill()
            self._record("primary.killed", node=old.cluster_id)
            time.sleep(self.options.detect_s)
            new.node.promote()
        else:
            # FAILOVER TO pauses writers on the primary until the replica caught up.
            old.node.command("FAILOVER", "TO", new.node.host, str(new.node.port), "TIMEOUT", "5000", timeout=10)
            new.node.wait_role("master", timeout=10)
        self._record("node.promoted", node=new.cluster_id)
        self.primary = new
        for other in self.replicas:
            if other is not old and other.node.process is not None:
                other.node.follow(new.node)
        self._set_roles(new.cluster_id)
        self._record("api.roles", primary=new.cluster_id)

        steps = [self._flip_dns, self._send_notification]
        if self.options.order == "notify-first":
            steps.reverse()
        steps[0](new)
        time.sleep(self.options.notify_delay_s)
        steps[1](new)

        if kind == "unplanned":
            thread = threading.Thread(target=self._rejoin, args=(old, new), name="rejoin", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._record("failover.complete", primary=new.cluster_id)
        return new

    def _flip_dns(self, new: Member) -> None:
        self._set_cname(self.primary_endpoint, new.hostname)
        self._record("dns.flipped", target=new.hostname)

    def _send_notification(self, new: Member) -> None:
        self._record("notification.sent", event="ElastiCache:FailoverComplete")
        self._notify(sns_event(self.replication_group_id, new.cluster_id))

    def _rejoin(self, old: Member, new: Member) -> None:
        time.sleep(self.options.rejoin_s)
        try:
            old.node.start(replica_of=new.node)
            self._record("node.rejoined", node=old.cluster_id, as_replica_of=new.cluster_id)
        except RuntimeError as exc:
            self._record("node.rejoin_failed", node=old.cluster_id, error=str(exc))

    def join(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))


def sns_event(replication_group_id: str, cluster_id: str, event: str = "ElastiCache:FailoverComplete",
              topic_arn: str = "arn:aws:sns:us-east-1:123456789012:cachebridge-sandbox") -> dict[str, Any]:
    """An SNS delivery to Lambda, shaped like the one ElastiCache's notification produces."""
    import json
    import uuid
    from datetime import datetime, timezone

    message = json.dumps({event: replication_group_id, "Cache Cluster ID": cluster_id})
    return {
        "Records": [{
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": f"{topic_arn}:{uuid.uuid4()}",
            "Sns": {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "TopicArn": topic_arn,
                "Subject": "ElastiCache Notification",
                "Message": message,
                "Timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "SignatureVersion": "1",
                "Signature": "EXAMPLE",
                "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
                "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                "MessageAttributes": {},
            },
        }]
    }
