"""Reading and changing ACLs and SCRAM credentials with confluent-kafka's AdminClient."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # exported at runtime, missing from the stubs
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from streams.errors import ClusterError
from streams.kafka import clients
from streams.kafka.acl_plan import Acl

_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional_id": ResourceType.TRANSACTIONAL_ID,
}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
_OPERATION = {"read": AclOperation.READ, "write": AclOperation.WRITE, "describe": AclOperation.DESCRIBE}
SCRAM_ITERATIONS = 8192


def _binding_args(acl: Acl) -> tuple[Any, ...]:
    return (
        _RESOURCE[acl.resource_type],
        acl.name,
        _PATTERN[acl.pattern],
        acl.principal,
        "*",
        _OPERATION[acl.operation],
        AclPermissionType.ALLOW,
    )


_RESOURCE_NAMES: dict[object, str] = {v: k for k, v in _RESOURCE.items()}
_PATTERN_NAMES: dict[object, str] = {v: k for k, v in _PATTERN.items()}
_OPERATION_NAMES: dict[object, str] = {v: k for k, v in _OPERATION.items()}


def _acl(binding: AclBinding) -> Acl | None:
    resource = _RESOURCE_NAMES.get(binding.restype)
    pattern = _PATTERN_NAMES.get(binding.resource_pattern_type)
    operation = _OPERATION_NAMES.get(binding.operation)
    if resource is None or pattern is None or operation is None:
        return None  # not a kind of ACL this tool manages; left alone
    permission = "allow" if binding.permission_type == AclPermissionType.ALLOW else "deny"
    return Acl(resource, binding.name, pattern, binding.principal, operation, permission)


def current_acls(conf: Mapping[str, Any], timeout: float = 30) -> set[Acl]:
    admin = AdminClient(dict(conf))
    # None is the documented wildcard for name, principal and host; the stubs only allow str.
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    try:
        bindings = admin.describe_acls(everything, request_timeout=timeout).result(timeout=timeout)
    except KafkaException as exc:
        raise ClusterError(f"cannot list ACLs: {clients.failure(exc)}") from exc
    except TimeoutError:
        raise ClusterError(f"cannot list ACLs (no answer within {timeout:.0f} s)") from None
    return {acl for acl in (_acl(b) for b in bindings) if acl is not None}


def apply_acls(conf: Mapping[str, Any], add: Iterable[Acl], remove: Iterable[Acl], timeout: float = 30) -> None:
    admin = AdminClient(dict(conf))
    try:
        to_add = [AclBinding(*_binding_args(a)) for a in add]
        if to_add:
            for future in admin.create_acls(to_add, request_timeout=timeout).values():
                future.result(timeout=timeout)
        to_remove = [AclBindingFilter(*_binding_args(a)) for a in remove]
        if to_remove:
            for future in admin.delete_acls(to_remove, request_timeout=timeout).values():
                future.result(timeout=timeout)
    except KafkaException as exc:
        raise ClusterError(f"cannot change ACLs: {clients.failure(exc)}") from exc
    except TimeoutError:
        raise ClusterError(f"cannot change ACLs (no answer within {timeout:.0f} s)") from None


def upsert_scram(conf: Mapping[str, Any], passwords: Mapping[str, str], timeout: float = 30) -> None:
    """Creates or rotates SCRAM-SHA-512 credentials. Passwords never appear in errors or logs."""
    if not passwords:
        return
    admin = AdminClient(dict(conf))
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    alterations: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, info, password.encode()) for user, password in passwords.items()
    ]
    try:
        for user, future in admin.alter_user_scram_credentials(alterations, request_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                raise ClusterError(f"cannot set the credentials of {user} ({exc.args[0].name()})") from exc
    except KafkaException as exc:
        raise ClusterError(f"cannot set SCRAM credentials ({exc.args[0].name()})") from exc
    except TimeoutError:
        raise ClusterError(f"cannot set SCRAM credentials (no answer within {timeout:.0f} s)") from None
