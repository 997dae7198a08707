"""cloudformation stack operations: deploying a stack the way ``cachebridge deploy`` does.

``cachebridge deploy`` creates or updates one stack of deploy/template/ through a change
set, follows its events, reads its outputs, and ``destroy`` deletes it. moto 5.2.1's
CloudFormation gets the stack operations wrong in ways the template must not be bent
around (what it gets wrong about single resource types is ``cfn_resources``' business):

1. An update touches every resource that names a changed parameter with ``Ref`` (not
   with ``Fn::Sub``; the change set does not list them at all), ignoring its
   ``Condition`` (a resource whose condition turned true is never created, one whose
   condition turned false never deleted), and stores ``None`` for a resource it cannot
   update, forgetting it.
2. Executing a change set writes no resource events, keeps the outputs and parameters of
   the stack's previous template (none at all after a CREATE change set), keeps the
   executed change set listed (AWS removes a stack's change sets once one is executed),
   and a failing resource becomes an HTTP 500 rather than ``CREATE_FAILED`` with a reason
   and a rollback. Deleting a stack that cannot be deleted loses the stack the same way.
3. ``Ref: AWS::NoValue`` inside a list (a conditional rule) leaves ``None`` in the list
   instead of removing the entry.

The patches follow AWS's documented behaviour, not cachebridge's template. A resource type
moto does not model at all fails the stack (``CREATE_FAILED``, "not modelled") instead of
being skipped, and one moto cannot delete is reported ``DELETE_SKIPPED`` ("left behind")
instead of silently kept, so a test sees what the emulator did not do.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["stack_events_recorded", "install", "installed"]

_MARK = "_cachebridge_cfn_ext"


def stack_events_recorded(stack_name: str, account_id: str, region: str) -> list[tuple[str, str, str | None]]:
    """``(logical id, status, reason)`` of every event of a stack, oldest first. For tests
    that look at moto's side of a deployment."""
    from moto.cloudformation.models import cloudformation_backends

    stack = cloudformation_backends[account_id][region].get_stack(stack_name)
    return [(e.logical_resource_id, e.resource_status, e.resource_status_reason) for e in stack.events]


def _reason(exc: BaseException) -> str:
    code = next(
        (value for value in (getattr(exc, "error_type", None), getattr(exc, "code", None)) if isinstance(value, str) and value),
        type(exc).__name__,
    )
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, KeyError):
        message = f"no value for {exc.args[0]!r}" if exc.args else message
    return f"{message} (Error Code: {code})" if code not in message else message


def _physical_id(resource: Any) -> str:
    try:
        value = resource.physical_resource_id
    except Exception:  # some moto models have no physical id (Lambda permissions)
        return ""
    return value if isinstance(value, str) else ""


class _StackEvents:
    """Resource events of one stack operation, written as moto's own ``Event`` objects so
    DescribeStackEvents returns them. Active for the thread that runs the operation."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.failed: list[str] = []  # logical ids whose own creation/update failed, in order
        self.deleting: set[str] = set()
        self.delete_errors: dict[str, tuple[str, str, str]] = {}  # logical id -> (type, physical id, reason)

    def add(self, logical_id: str, resource_type: str, status: str, physical_id: str = "", reason: str | None = None) -> None:
        from moto.cloudformation.models import Event

        self.stack.events.append(
            Event(
                stack_id=self.stack.stack_id,
                stack_name=self.stack.name,
                logical_resource_id=logical_id,
                physical_resource_id=physical_id,
                resource_type=resource_type,
                resource_status=status,
                resource_status_reason=reason,
                resource_properties=None,
            )
        )

    def completed(self, logical_id: str, resource_type: str, verb: str, resource: Any) -> None:
        # moto does the work in one step; AWS reports the start and the end.
        self.add(logical_id, resource_type, f"{verb}_IN_PROGRESS")
        self.add(logical_id, resource_type, f"{verb}_COMPLETE", _physical_id(resource))

    def operation_failed(self, logical_id: str, resource_type: str, status: str, exc: BaseException) -> None:
        # Resources created on demand as a dependency of another run inside that one's
        # creation: the first failure is the cause; the ones waiting on it are cancelled.
        reason = f"Resource {status.split('_')[0].lower()} cancelled" if self.failed else _reason(exc)
        if logical_id not in self.failed:
            self.failed.append(logical_id)
            self.add(logical_id, resource_type, status, reason=reason)


_stack_events: contextvars.ContextVar[_StackEvents | None] = contextvars.ContextVar("cachebridge_stack_events", default=None)


@contextlib.contextmanager
def _recording(stack: Any) -> Iterator[_StackEvents]:
    events = _StackEvents(stack)
    token = _stack_events.set(events)
    try:
        yield events
    finally:
        _stack_events.reset(token)


def install() -> None:
    from moto.cloudformation import models as cfn_models
    from moto.cloudformation import parsing

    if getattr(parsing, _MARK, False):
        return
    _patch_template_functions(parsing)
    _patch_stack_operations(parsing, cfn_models)
    setattr(parsing, _MARK, True)


def installed() -> bool:
    from moto.cloudformation import parsing

    return bool(getattr(parsing, _MARK, False))


# -- template functions ---------------------------------------------------------------------


def _patch_template_functions(parsing: Any) -> None:
    original_clean_json = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        # ``Ref: AWS::NoValue`` (None) in a list removes that entry, as on AWS.
        if isinstance(resource_json, list):
            cleaned = [clean_json(item, resources_map) for item in resource_json]
            return [item for item in cleaned if item is not None]
        return original_clean_json(resource_json, resources_map)

    parsing.clean_json = clean_json

    def get_references_from_template(template: Any) -> list[str]:
        # moto sees a parameter only in ``Ref``; ``Fn::Sub`` names them as ``${Name}``.
        references: list[str] = []
        if isinstance(template, dict):
            for key, value in template.items():
                if key == "Ref":
                    references.append(value)
                elif key == "Fn::Sub":
                    text, variables = (value[0], value[1]) if isinstance(value, list) else (value, {})
                    references.extend(re.findall(r"\$\{([^!.}][^.}]*)\}", text))
                    references.extend(get_references_from_template(variables))
                else:
                    references.extend(get_references_from_template(value))
        elif isinstance(template, list):
            for item in template:
                references.extend(get_references_from_template(item))
        return references

    parsing.get_references_from_template = get_references_from_template


# -- stack operations: events, failures, rollback, outputs ----------------------------------


def _patch_stack_operations(parsing: Any, cfn_models: Any) -> None:
    original_create = parsing.parse_and_create_resource
    original_update = parsing.parse_and_update_resource
    original_delete_resource = parsing.ResourceMap._delete_resource

    def parse_and_create_resource(logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str, region_name: str) -> Any:
        events = _stack_events.get()
        resource_type = resource_json.get("Type", "")
        condition = resource_json.get("Condition")
        if condition and not resources_map.lazy_condition_map[condition]:
            return None
        if events is None:
            return original_create(logical_id, resource_json, resources_map, account_id, region_name)
        try:
            if resource_type not in parsing.NULL_MODELS and parsing.resource_class_from_type(resource_type) is None:
                raise NotImplementedError(f"moto does not model {resource_type}")
            resource = original_create(logical_id, resource_json, resources_map, account_id, region_name)
        except Exception as exc:
            events.operation_failed(logical_id, resource_type, "CREATE_FAILED", exc)
            raise
        if resource is not None:
            events.completed(logical_id, resource_type, "CREATE", resource)
        return resource

    def parse_and_update_resource(logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str, region_name: str) -> Any:
        events = _stack_events.get()
        resource_type = resource_json.get("Type", "")
        resource_class = parsing.resource_class_from_type(resource_type)
        existing = resources_map._parsed_resources.get(logical_id)
        condition = resource_json.get("Condition")
        # moto updates every resource whose properties name a changed parameter, whatever
        # its Condition says. On AWS a resource whose condition turned false is deleted,
        # one whose condition turned true is created, and one that stays false is absent.
        if condition and not resources_map.lazy_condition_map[condition]:
            if existing is not None:
                resources_map._delete_resource(existing, resource_json)
            return None
        if existing is None:
            resources_map._parsed_resources.pop(logical_id, None)
            return resources_map[logical_id]
        try:
            if resource_class is None or hasattr(resource_class.update_from_cloudformation_json, "__isabstractmethod__"):
                # moto would store None for the resource and forget it; refuse instead.
                raise NotImplementedError(f"moto cannot update {resource_type} in place")
            resource = original_update(logical_id, resource_json, resources_map, account_id, region_name)
        except Exception as exc:
            if events is not None:
                events.operation_failed(logical_id, resource_type, "UPDATE_FAILED", exc)
            raise
        if events is not None:
            events.completed(logical_id, resource_type, "UPDATE", resource)
        return resource

    def _delete_resource(self: Any, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
        events = _stack_events.get()
        logical_id = getattr(parsed_resource, "logical_resource_id", "") or ""
        resource_type = resource_json.get("Type", "")
        physical_id = _physical_id(parsed_resource)
        resource_class = parsing.resource_class_from_type(resource_type)
        deletable = callable(getattr(parsed_resource, "delete", None)) or (
            resource_class is not None and not hasattr(resource_class.delete_from_cloudformation_json, "__isabstractmethod__")
        )
        if not deletable:
            if events is not None:
                events.add(logical_id, resource_type, "DELETE_SKIPPED", physical_id, f"moto cannot delete {resource_type}; it is left behind")
            return
        if events is not None and logical_id not in events.deleting:
            events.deleting.add(logical_id)
            events.add(logical_id, resource_type, "DELETE_IN_PROGRESS", physical_id)
        try:
            original_delete_resource(self, parsed_resource, resource_json)
        except Exception as exc:
            if events is not None:
                events.delete_errors[logical_id] = (resource_type, physical_id, _reason(exc))
            raise
        if events is not None:
            events.delete_errors.pop(logical_id, None)
            events.add(logical_id, resource_type, "DELETE_COMPLETE", physical_id)

    original_getitem = parsing.ResourceMap.__getitem__

    def getitem(self: Any, key: str) -> Any:
        # moto creates a resource the first time anything looks it up; after a stack is
        # deleted or rolled back, a look-up (DescribeStackResources, an output) would
        # create its resources again.
        if getattr(self, "_cachebridge_closed", False) and key not in self._parsed_resources and key in self._resource_json_map:
            return None
        return original_getitem(self, key)

    parsing.ResourceMap.__getitem__ = getitem
    parsing.parse_and_create_resource = parse_and_create_resource
    parsing.parse_and_update_resource = parse_and_update_resource
    parsing.ResourceMap._delete_resource = _delete_resource

    def change_set_diff(self: Any) -> list[Any]:
        # moto lists only resources whose template text changed; a changed parameter
        # changes the resources that name it too.
        old = self.stack.resource_map._resource_json_map
        new = self.template_dict.get("Resources", {})
        by_action = self.stack.resource_map.build_resource_diff(self.template_dict, self.parameters)
        return [
            cfn_models.Change(action=action, logical_resource_id=name, resource_type=(new.get(name) or old.get(name) or {}).get("Type", ""))
            for action in ("Add", "Modify", "Remove")
            for name in dict.fromkeys(by_action[action])
        ]

    cfn_models.ChangeSet.diff = change_set_diff
    cfn_models.CloudFormationBackend.execute_change_set = _execute_change_set
    cfn_models.CloudFormationBackend.delete_stack = _delete_stack
    # Resources skipped by a false Condition are None in the resource map; DescribeStackResources
    # lists only what exists.
    cfn_models.Stack.stack_resources = property(  # type: ignore[method-assign, assignment]
        lambda self: [r for r in self.resource_map.values() if r is not None and hasattr(r, "logical_resource_id")]
    )


def _find_change_set(backend: Any, change_set_name: str, stack_name: str | None) -> Any:
    from moto.cloudformation.exceptions import ValidationError

    change_set = backend.change_sets.get(change_set_name)
    if change_set is None:
        for candidate in backend.change_sets.values():
            if candidate.change_set_name == change_set_name and stack_name in (None, candidate.stack_name, candidate.stack_id):
                change_set = candidate
                break
    if change_set is None:
        raise ValidationError(stack_name, message=f"ChangeSet [{change_set_name}] does not exist")
    return change_set


def _execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
    from moto.cloudformation.exceptions import ValidationError

    change_set = _find_change_set(self, change_set_name, stack_name)
    if change_set.execution_status != "AVAILABLE":
        raise ValidationError(
            change_set.stack_name,
            message=f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current execution status of [{change_set.execution_status}]",
        )
    stack = self.stacks[change_set.stack_id]
    verb = change_set.change_set_type  # CREATE or UPDATE
    change_set.execution_status = "EXECUTE_IN_PROGRESS"
    stack.status = f"{verb}_IN_PROGRESS"
    stack._add_stack_event(f"{verb}_IN_PROGRESS", resource_status_reason="User Initiated")
    with _recording(stack) as events:
        try:
            change_set.apply()
            stack.template = change_set.template
            stack._parse_template()
            stack.parameters = dict(change_set.parameters)
            stack.description = stack.template_dict.get("Description")
            stack.output_map = stack._create_output_map()
            list(stack.output_map.values())  # resolve now: a bad output fails the operation
        except Exception as exc:
            change_set.execution_status = "EXECUTE_FAILED"
            _roll_back(stack, verb, events, exc)
            return
    change_set.execution_status = "EXECUTE_COMPLETE"
    stack.status = f"{verb}_COMPLETE"
    stack._add_stack_event(f"{verb}_COMPLETE")
    # "After you execute a change set, CloudFormation removes all change sets that are
    # associated with the stack" (AWS CloudFormation User Guide).
    for change_set_id in [k for k, cs in self.change_sets.items() if cs.stack_id == stack.stack_id]:
        del self.change_sets[change_set_id]


def _roll_back(stack: Any, verb: str, events: _StackEvents, exc: BaseException) -> None:
    what = "create" if verb == "CREATE" else "update"
    if events.failed:
        reason = f"The following resource(s) failed to {what}: [{', '.join(events.failed)}]. "
    else:
        reason = _reason(exc)
    if verb == "CREATE":
        stack.status = "ROLLBACK_IN_PROGRESS"
        stack._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=reason + ("Rollback requested by user." if events.failed else ""))
        try:
            stack.resource_map.delete()
        except Exception as rollback_exc:
            stack.status = "ROLLBACK_FAILED"
            stack._add_stack_event("ROLLBACK_FAILED", resource_status_reason=_reason(rollback_exc))
            return
        _close(stack)
        stack.status = "ROLLBACK_COMPLETE"
        stack._add_stack_event("ROLLBACK_COMPLETE")
    else:
        # moto keeps no previous version of a resource to return to; the stack keeps what
        # the update changed before it failed, and says so.
        stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
        stack._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", resource_status_reason=reason)
        stack.status = "UPDATE_ROLLBACK_COMPLETE"
        stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE", resource_status_reason="moto restores no previous resource state")


def _close(stack: Any) -> None:
    """A deleted or rolled-back stack has no resources and no outputs."""
    from moto.cloudformation.parsing import OutputMap

    stack.resource_map._cachebridge_closed = True
    stack.output_map = OutputMap(stack.resource_map, {}, stack.stack_id)


def _delete_stack(self: Any, name_or_stack_id: str) -> None:
    stack = self.stacks.get(name_or_stack_id)
    if stack is None:
        stack = next((s for s in self.stacks.values() if s.name == name_or_stack_id), None)
    if stack is None:
        return  # deleting a stack that does not exist succeeds, as on AWS
    export_names = [export.name for export in stack.exports]
    stack.status = "DELETE_IN_PROGRESS"
    stack._add_stack_event("DELETE_IN_PROGRESS", resource_status_reason="User Initiated")
    with _recording(stack) as events:
        try:
            stack.resource_map.delete()
        except Exception as exc:
            failed = events.delete_errors or {"(stack)": ("AWS::CloudFormation::Stack", stack.stack_id, _reason(exc))}
            for logical_id, (resource_type, physical_id, reason) in failed.items():
                events.add(logical_id, resource_type, "DELETE_FAILED", physical_id, reason)
            stack.status = "DELETE_FAILED"
            stack._add_stack_event(
                "DELETE_FAILED",
                resource_status_reason=f"The following resource(s) failed to delete: [{', '.join(failed)}]. ",
            )
            return
    _close(stack)
    stack.status = "DELETE_COMPLETE"
    stack._add_stack_event("DELETE_COMPLETE")
    self.stacks.pop(stack.stack_id, None)
    self.deleted_stacks[stack.stack_id] = stack
    for name in export_names:
        self.exports.pop(name, None)
