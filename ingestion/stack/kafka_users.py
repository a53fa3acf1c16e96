"""The stack broker's SCRAM users and their ACLs: each user may do its job and nothing else.

    shipper   WRITE the impression topics (data and dead letters)
    bridge    WRITE the bid-request topics
    lander    READ every topic
    monitor   READ every topic (the topic monitor; the exporter's end offsets)
    admin     super user: topics, users, ACLs, and the broker's own inter-broker login

WRITE and READ imply DESCRIBE. No user gets a consumer group: Spark's Kafka source assigns partitions itself and
keeps its offsets in its checkpoint, and the exporter only asks for end offsets. Anything not granted is refused
(allow.everyone.if.no.acl.found=false). ensure_users_and_acls() makes the broker's ACLs exactly these, so a grant
removed here is revoked on the next start.
"""

from __future__ import annotations

import secrets
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from ingestion.kafka_access import KafkaUser, check_password, client_config, password_file
from ingestion.secret_files import read_or_create
from ingestion.settings import Settings
from ingestion.stack.process import StackError
from ingestion.streaming.topics import TOPICS

WRITERS = {"impressions": KafkaUser.SHIPPER, "bid_requests": KafkaUser.BRIDGE}  # by Topic.source
READERS = (KafkaUser.LANDER, KafkaUser.MONITOR)
SCRAM_ITERATIONS = 8192


def granted_acls() -> set[AclBinding]:
    bindings = set()
    for topic in TOPICS:
        bindings.add(_allow(WRITERS[topic.source], topic.name, AclOperation.WRITE))
        bindings.update(_allow(reader, topic.name, AclOperation.READ) for reader in READERS)
    return bindings


def scram_users() -> tuple[KafkaUser, ...]:
    """The users created at runtime; admin is created when the broker's storage is formatted."""
    return tuple(user for user in KafkaUser if user is not KafkaUser.ADMIN)


def user_password(settings: Settings, user: KafkaUser) -> str:
    """The user's password from the secrets folder, generated there (0600) on first use."""
    password = read_or_create(password_file(settings, user), lambda: secrets.token_urlsafe(32))
    check_password(password)
    return password


def ensure_users_and_acls(settings: Settings, timeout: float = 60.0) -> None:
    """Give every user its password and make the broker's ACLs exactly granted_acls(); return once each user can
    log in and the broker enforces every grant (both reach the broker a moment after the controller has them)."""
    admin = AdminClient({**client_config(settings, KafkaUser.ADMIN), "log_level": 0})
    try:
        _upsert_passwords(admin, settings, timeout)
        wanted = granted_acls()
        present = set(broker_acls(admin, timeout))
        if present - wanted:
            for future in admin.delete_acls([_exactly(b) for b in present - wanted], request_timeout=timeout).values():
                future.result()
        if wanted - present:
            for future in admin.create_acls(list(wanted - present), request_timeout=timeout).values():
                future.result()
    except KafkaException as error:
        raise StackError(f"cannot set the Kafka users and ACLs: {error.args[0]}") from error
    _wait_until_enforced(admin, settings, wanted, timeout)


def _upsert_passwords(admin: AdminClient, settings: Settings, timeout: float) -> None:
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts = [
        UserScramCredentialUpsertion(user.value, info, user_password(settings, user).encode()) for user in scram_users()
    ]
    for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).values():
        future.result()


def _wait_until_enforced(admin: AdminClient, settings: Settings, wanted: set[AclBinding], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting_for = "the ACLs"
    while time.monotonic() < deadline:
        if set(broker_acls(admin, timeout)) == wanted:
            waiting_for = next((u for u in scram_users() if not _can_log_in(settings, u)), None)
            if waiting_for is None:
                return
        time.sleep(0.2)
    raise StackError(f"the broker did not enforce {waiting_for} within {timeout:.0f} s")


def _can_log_in(settings: Settings, user: KafkaUser) -> bool:
    client = AdminClient({**client_config(settings, user), "log_level": 0})
    try:
        client.list_topics(timeout=5)
    except KafkaException:
        return False
    return True


def broker_acls(admin: AdminClient, timeout: float) -> list[AclBinding]:
    every = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    return admin.describe_acls(every, request_timeout=timeout).result()


def _allow(user: KafkaUser, topic: str, operation: AclOperation) -> AclBinding:
    return AclBinding(
        ResourceType.TOPIC,
        topic,
        ResourcePatternType.LITERAL,
        f"User:{user.value}",
        "*",
        operation,
        AclPermissionType.ALLOW,
    )


def _exactly(binding: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(
        binding.restype,
        binding.name,
        binding.resource_pattern_type,
        binding.principal,
        binding.host,
        binding.operation,
        binding.permission_type,
    )
