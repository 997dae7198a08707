"""cachebridge: keep an NLB target group pointed at the current ElastiCache primary."""

from .config import Binding, Config, DnsSourceSpec, ElastiCacheSourceSpec, Settings, parse_source
from .errors import (
    AccessDenied,
    CacheBridgeError,
    ConfigError,
    DeployError,
    EmptySource,
    EventError,
    NlbError,
    PacingBudgetSpent,
    SourceError,
    SourceNotFound,
    SourceTimeout,
    SourceUnsupported,
    SyncFailed,
    TargetGroupNotFound,
    Throttled,
)
from .planner import Plan, plan
from .sync import BindingResult, SyncReport, Trigger, sync
from .targets import Target, TargetHealth, TargetState

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Binding",
    "Config",
    "DnsSourceSpec",
    "ElastiCacheSourceSpec",
    "Settings",
    "parse_source",
    "Plan",
    "plan",
    "BindingResult",
    "SyncReport",
    "Trigger",
    "sync",
    "Target",
    "TargetHealth",
    "TargetState",
    "CacheBridgeError",
    "ConfigError",
    "SourceError",
    "SourceTimeout",
    "SourceNotFound",
    "SourceUnsupported",
    "EmptySource",
    "NlbError",
    "TargetGroupNotFound",
    "Throttled",
    "AccessDenied",
    "PacingBudgetSpent",
    "EventError",
    "DeployError",
    "SyncFailed",
]
