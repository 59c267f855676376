"""Runtime settings from the environment (prefix ``JOINTUSE_``) and command-line overrides.

librdkafka / aiokafka configuration dictionaries are built here, at the edge, and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import functools
import ssl
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.errors import ConfigError
from streams.logs import kafka_client_logger
from streams.policy.pseudonym import SubjectKeyError, SubjectKeys

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Every transactional producer's timeout, on both runtimes: the coordinator aborts a transaction
# left open longer (a frozen worker's), and the erasure grace waits past it.
TRANSACTION_TIMEOUT_MS = 30_000
ENV_PREFIX = "JOINTUSE_"
WEB_ADDRESS = r"https?://[^/\s?#]+(/\S*)?"  # an index worker's address: scheme and host at least


class Guarantee(StrEnum):
    """A worker's delivery guarantee. Exactly once commits a batch's outputs and its input offsets in
    one transaction; at least once flushes the outputs and then commits the offsets, so a crash
    between the two delivers the batch again."""

    EXACTLY_ONCE = "exactly_once"
    AT_LEAST_ONCE = "at_least_once"


class Settings(BaseSettings):
    """Where the cluster and registry are, how to authenticate, and how the pipeline behaves."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    bootstrap_servers: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers, comma-separated.")
    schema_registry_url: str = Field(
        "http://127.0.0.1:18081/apis/ccompat/v7",
        description="Confluent-compatible schema registry base URL.",
    )
    schema_registry_user: str | None = Field(None, description="Registry basic-auth user, if any.")
    schema_registry_password: SecretStr | None = Field(None, description="Registry basic-auth password.")
    schema_registry_ca_file: Path | None = Field(
        None, description="PEM bundle of the CA that signed the registry's HTTPS certificate (else the system's)."
    )
    schema_registry_cert_file: Path | None = Field(
        None, description="PEM client certificate for a registry that authenticates clients by certificate."
    )
    schema_registry_key_file: Path | None = Field(None, description="PEM private key of that certificate.")
    schema_registry_key_password: SecretStr | None = Field(None, description="Password of that key, if encrypted.")
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: str = Field("SCRAM-SHA-512", description="SASL mechanism when SASL is used.")
    sasl_username: str | None = Field(None, description="SASL user (the company's or the pipeline's principal).")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    sasl_password_file: Path | None = Field(None, description="File holding the SASL password (if no password).")
    ssl_ca_file: Path | None = Field(
        None,
        description="PEM bundle of the CA that signed the brokers' certificates (SSL, SASL_SSL); "
        "the system's trust store if unset.",
    )
    ssl_cert_file: Path | None = Field(
        None, description="PEM client certificate, for brokers that authenticate clients by certificate (SSL)."
    )
    ssl_key_file: Path | None = Field(None, description="PEM private key of the client certificate.")
    ssl_key_password: SecretStr | None = Field(None, description="Password of that key, if it is encrypted.")
    ssl_check_hostname: bool = Field(
        True, description="Whether a broker's certificate must name the host it is reached at (keep it on)."
    )
    topic_prefix: str = Field("jointuse", description="Prefix of every topic, so environments can share a cluster.")
    policy_path: Path = Field(
        PROJECT_ROOT / "policies" / "jcom-group.yaml",
        description="Policy file, or a directory of policy versions of one notice.",
    )
    data_dir: Path = Field(PROJECT_ROOT / ".local" / "worker", description="Worker state directory (faust's datadir).")
    metrics_host: str = Field("127.0.0.1", description="Address of the worker's /metrics, /healthz, /readyz.")
    metrics_port: int = Field(9400, description="Port of those endpoints; 0 picks a free one.")
    dq_sample_rate: float = Field(
        0.01, ge=0, le=1, description="Share of committed records the worker samples for data quality (0: off)."
    )
    dq_batch_size: int = Field(500, ge=1, description="Sampled records per data-quality micro-batch.")
    dq_suites_dir: Path = Field(PROJECT_ROOT / "dq" / "suites", description="Great Expectations suites.")
    # A record decided just before a worker saw the stop is committed within one batch commit plus
    # the transaction timeout; the eraser looks for deliveries only after that.
    erasure_grace_seconds: float = Field(
        TRANSACTION_TIMEOUT_MS / 1000 + 15.0,
        ge=0,
        description="Wait before looking up an erased subject: every in-flight delivery has committed by then.",
    )
    index_url: str = Field(
        "http://127.0.0.1:9410",
        pattern=WEB_ADDRESS,
        description="Any subject-index worker's web address; it routes each lookup to the partition's owner.",
    )
    index_host: str = Field("127.0.0.1", description="Address a subject-index worker listens on for lookups.")
    index_port: int = Field(9410, ge=1, le=65535, description="Port of that web server (one per worker on a host).")
    index_cert_file: Path | None = Field(
        None, description="PEM certificate (with its chain) an index worker serves HTTPS with; HTTP if unset."
    )
    index_key_file: Path | None = Field(None, description="PEM private key of that certificate.")
    index_ca_file: Path | None = Field(
        None, description="PEM bundle of the CA that signed the index workers' certificates (else the system's)."
    )
    index_token: SecretStr | None = Field(
        None,
        description="The credential an index worker requires of every lookup (a bearer token), and that "
        "clients send; or the file below.",
    )
    index_token_file: Path | None = Field(None, description="File holding that credential.")
    index_store: Literal["rocksdb", "memory"] = Field(
        "rocksdb", description="Where a subject-index worker keeps its rows (its changelog makes either durable)."
    )
    index_wait_seconds: float = Field(
        30.0, gt=0, description="How long an erasure's lookup waits for the index to catch up with the audit topic."
    )
    schema_dir: Path = Field(PROJECT_ROOT / "schemas", description="Directory of the governed Avro schemas.")
    subject_key: SecretStr | None = Field(
        None, description="Key of the audit pseudonyms (HMAC-SHA256), at least 16 bytes; or the file below."
    )
    subject_key_file: Path | None = Field(
        None,
        description="File of pseudonym keys: the current one on the first line, earlier ones (lookups only) after.",
    )
    audit_key_file: Path | None = Field(
        None, description="The Ed25519 key (64 hex characters) that signs the audit chain's checkpoints."
    )
    audit_checkpoint_events: int = Field(
        10_000, ge=1, description="A writer checkpoints its chains after this many events."
    )
    audit_checkpoint_seconds: float = Field(60.0, gt=0, description="...and at least this often while it writes.")
    worker_id: str | None = Field(None, description="Stable id of a worker (names its transactions).")
    batch_size: int = Field(1000, ge=1, description="Records per batch (and per transaction).")
    max_batch_wait_ms: int = Field(
        50,
        ge=1,
        le=10_000,
        description="A batch is decided once it is full or its first record has waited this long (ms).",
    )
    decide_processes: int = Field(
        0,
        ge=0,
        le=32,
        description="Child processes that decide the pipeline's batches beside the worker, which keeps "
        "fetching, sealing and committing (0: the worker decides itself). One core bounds a worker; "
        "docs/benchmarks.md measures this.",
    )
    guarantee: Guarantee = Field(Guarantee.EXACTLY_ONCE, description="Delivery guarantee.")
    log_level: str = Field("INFO", description="Log level of the worker.")
    max_clock_skew_seconds: float = Field(
        300.0, ge=0, description="How far a record's updated_at may be ahead of the pipeline's clock."
    )
    stats_grace_seconds: float = Field(
        3600.0,
        ge=0,
        description="How long after a statistics window ends (in event time) it is first published.",
    )
    stats_metrics_port: int = Field(
        9420, ge=0, le=65535, description="Port of the statistics worker's /metrics and /readyz; 0 picks a free one."
    )

    @field_validator(
        "ssl_ca_file",
        "ssl_cert_file",
        "ssl_key_file",
        "index_cert_file",
        "index_key_file",
        "index_ca_file",
        "index_token_file",
        "schema_registry_ca_file",
        "schema_registry_cert_file",
        "schema_registry_key_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value  # JOINTUSE_SSL_CERT_FILE= turns the setting off

    @model_validator(mode="after")
    def _credentials_are_complete(self) -> Settings:
        if self.security_protocol.startswith("SASL") and not self.sasl_username:
            raise ValueError(f"JOINTUSE_SECURITY_PROTOCOL={self.security_protocol} needs JOINTUSE_SASL_USERNAME")
        if self.ssl_key_file is not None and self.ssl_cert_file is None:
            raise ValueError("JOINTUSE_SSL_KEY_FILE needs JOINTUSE_SSL_CERT_FILE (the certificate of that key)")
        if self.schema_registry_key_file is not None and self.schema_registry_cert_file is None:
            raise ValueError("JOINTUSE_SCHEMA_REGISTRY_KEY_FILE needs JOINTUSE_SCHEMA_REGISTRY_CERT_FILE")
        return self

    @property
    def uses_tls(self) -> bool:
        """Whether Kafka connections are encrypted (SSL or SASL_SSL)."""
        return self.security_protocol.endswith("SSL")

    def worker_env(self) -> dict[str, str]:
        """What a child command must share of these settings, as the ``JOINTUSE_`` environment a user sets."""
        return {
            "JOINTUSE_TOPIC_PREFIX": self.topic_prefix,
            "JOINTUSE_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "JOINTUSE_SCHEMA_REGISTRY_URL": self.schema_registry_url,
            "JOINTUSE_POLICY_PATH": str(self.policy_path),
            "JOINTUSE_METRICS_PORT": str(self.metrics_port),
            "JOINTUSE_ERASURE_GRACE_SECONDS": str(self.erasure_grace_seconds),
            "JOINTUSE_INDEX_URL": self.index_url,
            "JOINTUSE_INDEX_HOST": self.index_host,
            "JOINTUSE_INDEX_PORT": str(self.index_port),
            "JOINTUSE_INDEX_STORE": self.index_store,
            "JOINTUSE_DATA_DIR": str(self.data_dir),
            "JOINTUSE_DQ_SAMPLE_RATE": str(self.dq_sample_rate),
            "JOINTUSE_DQ_BATCH_SIZE": str(self.dq_batch_size),
            "JOINTUSE_DQ_SUITES_DIR": str(self.dq_suites_dir),
            "JOINTUSE_SECURITY_PROTOCOL": self.security_protocol,
            "JOINTUSE_SASL_MECHANISM": self.sasl_mechanism,
            "JOINTUSE_SASL_USERNAME": self.sasl_username or "",
            "JOINTUSE_MAX_CLOCK_SKEW_SECONDS": str(self.max_clock_skew_seconds),
            "JOINTUSE_MAX_BATCH_WAIT_MS": str(self.max_batch_wait_ms),
            "JOINTUSE_DECIDE_PROCESSES": str(self.decide_processes),
            "JOINTUSE_STATS_GRACE_SECONDS": str(self.stats_grace_seconds),
            "JOINTUSE_STATS_METRICS_PORT": str(self.stats_metrics_port),
            **({"JOINTUSE_SUBJECT_KEY_FILE": str(self.subject_key_file)} if self.subject_key_file else {}),
            **({"JOINTUSE_AUDIT_KEY_FILE": str(self.audit_key_file)} if self.audit_key_file else {}),
            "JOINTUSE_AUDIT_CHECKPOINT_EVENTS": str(self.audit_checkpoint_events),
            "JOINTUSE_AUDIT_CHECKPOINT_SECONDS": str(self.audit_checkpoint_seconds),
            **_paths_env(
                ssl_ca_file=self.ssl_ca_file,
                ssl_cert_file=self.ssl_cert_file,
                ssl_key_file=self.ssl_key_file,
                schema_registry_ca_file=self.schema_registry_ca_file,
                schema_registry_cert_file=self.schema_registry_cert_file,
                schema_registry_key_file=self.schema_registry_key_file,
                index_cert_file=self.index_cert_file,
                index_key_file=self.index_key_file,
                index_ca_file=self.index_ca_file,
                index_token_file=self.index_token_file,
            ),
            "JOINTUSE_SSL_CHECK_HOSTNAME": str(self.ssl_check_hostname).lower(),
            # The child reads the password the same way; a file path is passed, not the secret.
            **({"JOINTUSE_SASL_PASSWORD_FILE": str(self.sasl_password_file)} if self.sasl_password_file else {}),
        }

    def kafka_common(self) -> dict[str, Any]:
        """librdkafka settings shared by every confluent-kafka client. Its logs go to Python logging
        (served when the client is polled), not straight to stderr."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, "logger": kafka_client_logger()}
        if self.security_protocol != "PLAINTEXT":
            conf["security.protocol"] = self.security_protocol
        if self.security_protocol.startswith("SASL"):
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = self.sasl_secret()
        if self.uses_tls:
            self.ssl_context()  # librdkafka's own error for an unusable file is a traceback
            conf["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_check_hostname else "none"
            if self.ssl_ca_file is not None:
                conf["ssl.ca.location"] = str(self.ssl_ca_file)
            if self.ssl_cert_file is not None:
                conf["ssl.certificate.location"] = str(self.ssl_cert_file)
            if self.ssl_key_file is not None:
                conf["ssl.key.location"] = str(self.ssl_key_file)
            if self.ssl_key_password is not None:
                conf["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        return conf

    def aiokafka_conf(self) -> dict[str, Any]:
        """aiokafka client settings (the faust runtime's client library)."""
        conf: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers.split(",")}
        if self.security_protocol != "PLAINTEXT":
            conf["security_protocol"] = self.security_protocol
        if self.security_protocol.startswith("SASL"):
            conf["sasl_mechanism"] = self.sasl_mechanism
            conf["sasl_plain_username"] = self.sasl_username
            conf["sasl_plain_password"] = self.sasl_secret()
        if self.uses_tls:
            conf["ssl_context"] = self.ssl_context()
        return conf

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every aiokafka client and faust app (None without TLS): the CA bundle,
        the client certificate if any, host names checked unless turned off. ``ConfigError`` names
        the setting that cannot be used (a file missing, a key that the password does not open)."""
        if not self.uses_tls:
            return None
        return tls_context(
            ca_file=self.ssl_ca_file,
            cert_file=self.ssl_cert_file,
            key_file=self.ssl_key_file,
            key_password=self.ssl_key_password,
            check_hostname=self.ssl_check_hostname,
            prefix="JOINTUSE_SSL",
        )

    def sasl_secret(self) -> str:
        """The SASL password, from the setting or else from the password file."""
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if self.sasl_password_file is not None:
            try:
                return self.sasl_password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read the SASL password file {self.sasl_password_file}") from exc
        return ""

    def subject_keys(self) -> SubjectKeys:
        """The audit pseudonym keys: ``JOINTUSE_SUBJECT_KEY``, else ``JOINTUSE_SUBJECT_KEY_FILE``."""
        try:
            if self.subject_key is not None:
                return SubjectKeys.from_lines([self.subject_key.get_secret_value()])
            if self.subject_key_file is not None:
                try:
                    text = self.subject_key_file.read_text(encoding="utf-8")
                except OSError as exc:
                    raise ConfigError(f"cannot read the subject key file {self.subject_key_file}") from exc
                return SubjectKeys.from_lines(text.splitlines())
        except SubjectKeyError as exc:
            raise ConfigError(f"JOINTUSE_SUBJECT_KEY / JOINTUSE_SUBJECT_KEY_FILE: {exc}") from exc
        raise ConfigError(
            "no audit pseudonym key: set JOINTUSE_SUBJECT_KEY or JOINTUSE_SUBJECT_KEY_FILE "
            "(infra/local.sh env sets the local one)"
        )

    def registry_conf(self) -> dict[str, Any]:
        """confluent-kafka SchemaRegistryClient settings."""
        # httpx, under the client, waits forever without a timeout: a registry that accepts the
        # connection and never answers (frozen, overloaded) would hang a worker's lookup.
        conf: dict[str, Any] = {"url": self.schema_registry_url, "timeout": REGISTRY_TIMEOUT_SECONDS}
        if self.schema_registry_user:
            password = self.schema_registry_password.get_secret_value() if self.schema_registry_password else ""
            conf["basic.auth.user.info"] = f"{self.schema_registry_user}:{password}"
        if self.schema_registry_ca_file is not None:
            conf["ssl.ca.location"] = str(self.schema_registry_ca_file)
        if self.schema_registry_cert_file is not None:
            conf["ssl.certificate.location"] = str(self.schema_registry_cert_file)
        if self.schema_registry_key_file is not None:
            conf["ssl.key.location"] = str(self.schema_registry_key_file)
        if self.schema_registry_key_password is not None:
            conf["ssl.key.password"] = self.schema_registry_key_password.get_secret_value()
        return conf

    def index_scheme(self) -> str:
        """How an index worker is reached: https when it has a certificate."""
        return "https" if self.index_cert_file is not None else "http"

    def index_server_context(self) -> ssl.SSLContext | None:
        """The TLS context an index worker serves lookups with (None: plain HTTP)."""
        if self.index_cert_file is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(
                str(self.index_cert_file), str(self.index_key_file) if self.index_key_file else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"JOINTUSE_INDEX_CERT_FILE / JOINTUSE_INDEX_KEY_FILE: cannot serve HTTPS with them ({_reason(exc)})"
            ) from None
        return context

    def index_client_context(self) -> ssl.SSLContext:
        """The TLS context lookups verify an index worker with."""
        return tls_context(
            ca_file=self.index_ca_file,
            cert_file=None,
            key_file=None,
            key_password=None,
            check_hostname=True,
            prefix="JOINTUSE_INDEX",
        )

    def index_secret(self) -> str | None:
        """The index's credential, from the setting or else from its file (None: none required)."""
        if self.index_token is not None:
            return self.index_token.get_secret_value()
        if self.index_token_file is not None:
            try:
                return self.index_token_file.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(f"cannot read JOINTUSE_INDEX_TOKEN_FILE ({_reason(exc)})") from None
        return None

    def registry_ssl_context(self) -> ssl.SSLContext:
        """The registry's TLS context as ``registry_conf`` describes it, for checking it up front."""
        return tls_context(
            ca_file=self.schema_registry_ca_file,
            cert_file=self.schema_registry_cert_file,
            key_file=self.schema_registry_key_file,
            key_password=self.schema_registry_key_password,
            check_hostname=True,
            prefix="JOINTUSE_SCHEMA_REGISTRY",
        )


REGISTRY_TIMEOUT_SECONDS = 10.0


def _paths_env(**paths: Path | None) -> dict[str, str]:
    return {f"{ENV_PREFIX}{name.upper()}": str(path) for name, path in paths.items() if path is not None}


def tls_context(
    *,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    key_password: SecretStr | None,
    check_hostname: bool,
    prefix: str,
) -> ssl.SSLContext:
    """A client's TLS context: peers verified against ``ca_file`` (else the system's trust store),
    a client certificate when given. Each unusable file is named by its setting, with the reason.
    Made once per process for the same files: every client of a worker shares it."""
    password = key_password.get_secret_value() if key_password is not None else None
    return _tls_context(ca_file, cert_file, key_file, password, check_hostname, prefix)


@functools.lru_cache(maxsize=8)
def _tls_context(
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    password: str | None,
    check_hostname: bool,
    prefix: str,
) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    except FileNotFoundError:
        raise ConfigError(f"{prefix}_CA_FILE: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{prefix}_CA_FILE: not a PEM bundle of certificates ({_reason(exc)})") from None
    context.check_hostname = check_hostname
    if cert_file is not None:
        try:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None, password=password)
        except FileNotFoundError:
            raise ConfigError(f"{prefix}_CERT_FILE or {prefix}_KEY_FILE: no such file") from None
        except ssl.SSLError as exc:
            raise ConfigError(
                f"{prefix}_CERT_FILE / {prefix}_KEY_FILE / {prefix}_KEY_PASSWORD: the key cannot be opened with "
                f"the password given, or does not belong to the certificate ({_reason(exc)})"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{prefix}_CERT_FILE or {prefix}_KEY_FILE: cannot be read ({_reason(exc)})") from None
        _in_force(cert_file, prefix)
    return context


def _in_force(cert_file: Path, prefix: str) -> None:
    """A client certificate that has expired, or is not valid yet, said before a broker refuses it
    (brokers answer only "certificate unknown")."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except ValueError:
        raise ConfigError(f"{prefix}_CERT_FILE: the first PEM block is not a certificate") from None
    now = dt.datetime.now(dt.UTC)
    if now >= cert.not_valid_after_utc:
        raise ConfigError(
            f"{prefix}_CERT_FILE: the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    if now < cert.not_valid_before_utc:
        raise ConfigError(
            f"{prefix}_CERT_FILE: the certificate is valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )


def _reason(exc: BaseException) -> str:
    """An OpenSSL or OS error's reason, without the paths or values it may quote."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit (non-None) overrides on top. ``ConfigError``
    names each bad setting (its variable, or the option that overrode it) and the rule, never the
    value: a secret may be the one that is wrong."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            field = str(error["loc"][0]) if error["loc"] else ""
            if not field:  # a rule across settings: its message names them
                problems.append(str(error["msg"]).removeprefix("Value error, "))
                continue
            where = f"{ENV_PREFIX}{field.upper()}" + (" (from its command-line option)" if field in given else "")
            problems.append(f"{where}: {error['msg']}")
        raise ConfigError("; ".join(problems)) from None
