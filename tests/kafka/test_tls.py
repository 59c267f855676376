"""TLS settings, built once for every client, and the one-line reasons a TLS session fails: against
real TLS peers (Python's ssl server on loopback, certificates of a CA made here). The broker tests
in tests/kafka/test_tls_e2e.py do the same against the local Kafka."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from streams.errors import ConfigError
from streams.kafka.tls import TlsError, check_tls, diagnose
from streams.runtime.faust_app import credentials
from streams.settings import Settings, load_settings
from tests.tls_certs import Issued, TestCA


@pytest.fixture(autouse=True)
def _no_cluster_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's settings are its own, whatever the environment names (make test's cluster)."""
    for name in list(os.environ):
        if name.startswith(("JOINTUSE_SSL_", "JOINTUSE_SASL_", "JOINTUSE_SECURITY_", "JOINTUSE_INDEX_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@contextmanager
def tls_server(server: Issued, *, client_ca: Path | None = None) -> Iterator[int]:
    """A TLS listener on 127.0.0.1 that answers any request with four bytes, as a broker answers
    ApiVersions; with ``client_ca``, it requires a client certificate that CA signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.cert, server.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(raw, server_side=True) as tls:
                    tls.settimeout(5)
                    if tls.recv(64):
                        tls.sendall(b"\x00\x00\x00\x06")
            except (OSError, ssl.SSLError):
                pass  # the client refused us, or we refused it: the client says which

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _tls(port: int, **settings: object) -> Settings:
    return Settings(bootstrap_servers=f"127.0.0.1:{port}", security_protocol="SSL", **settings)


def test_every_client_gets_the_same_ca_certificate_and_key(ca: TestCA) -> None:
    client = ca.issue("pipeline", client=True, key_password="s3cret-pw")
    settings = Settings(
        security_protocol="SASL_SSL",
        sasl_username="pipeline",
        sasl_password=SecretStr("x"),
        ssl_ca_file=ca.pem,
        ssl_cert_file=client.cert,
        ssl_key_file=client.key,
        ssl_key_password=SecretStr("s3cret-pw"),
    )
    librdkafka = settings.kafka_common()
    assert librdkafka["security.protocol"] == "SASL_SSL"
    assert librdkafka["ssl.ca.location"] == str(ca.pem)
    assert librdkafka["ssl.certificate.location"] == str(client.cert)
    assert librdkafka["ssl.key.location"] == str(client.key)
    assert librdkafka["ssl.key.password"] == "s3cret-pw"
    assert librdkafka["ssl.endpoint.identification.algorithm"] == "https"
    context = settings.aiokafka_conf()["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert settings.ssl_context() is context  # one context per process for the same files
    faust_credentials = credentials(settings)
    assert isinstance(faust_credentials, faust.SASLCredentials)
    assert faust_credentials.ssl_context is context and faust_credentials.protocol.value == "SASL_SSL"
    by_certificate = credentials(settings.model_copy(update={"security_protocol": "SSL"}))
    assert isinstance(by_certificate, faust.SSLCredentials)
    assert by_certificate.context is context


def test_plaintext_settings_build_no_tls(ca: TestCA) -> None:
    settings = Settings(security_protocol="SASL_PLAINTEXT", sasl_username="a", ssl_ca_file=ca.pem)
    assert not any(key.startswith("ssl") for key in settings.kafka_common())
    assert "ssl_context" not in settings.aiokafka_conf() and settings.ssl_context() is None
    assert isinstance(credentials(settings), faust.SASLCredentials)
    assert credentials(Settings()) is None


def test_host_names_are_checked_unless_turned_off(ca: TestCA) -> None:
    off = Settings(security_protocol="SSL", ssl_ca_file=ca.pem, ssl_check_hostname=False)
    assert off.kafka_common()["ssl.endpoint.identification.algorithm"] == "none"
    context = off.ssl_context()
    assert context is not None and not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("problem", "said"),
    [
        ("missing_ca", "JOINTUSE_SSL_CA_FILE: no such file"),
        ("not_pem_ca", "JOINTUSE_SSL_CA_FILE: not a PEM bundle"),
        ("wrong_password", "the key cannot be opened with the password given"),
        ("key_of_another", "does not belong to the certificate"),
        ("key_alone", "JOINTUSE_SSL_KEY_FILE needs JOINTUSE_SSL_CERT_FILE"),
        ("sasl_without_user", "JOINTUSE_SECURITY_PROTOCOL=SASL_SSL needs JOINTUSE_SASL_USERNAME"),
    ],
)
def test_an_unusable_tls_setting_is_one_line_naming_the_setting(
    ca: TestCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str, said: str
) -> None:
    client = ca.issue(f"client-{problem}", client=True, key_password="right-password")
    other = ca.issue(f"other-{problem}", client=True)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    env = {
        "JOINTUSE_SECURITY_PROTOCOL": "SSL",
        "JOINTUSE_SSL_CA_FILE": str(ca.pem),
        "JOINTUSE_SSL_CERT_FILE": str(client.cert),
        "JOINTUSE_SSL_KEY_FILE": str(client.key),
        "JOINTUSE_SSL_KEY_PASSWORD": "right-password",
    }
    if problem == "missing_ca":
        env["JOINTUSE_SSL_CA_FILE"] = str(tmp_path / "absent.pem")
    elif problem == "not_pem_ca":
        env["JOINTUSE_SSL_CA_FILE"] = str(junk)
    elif problem == "wrong_password":
        env["JOINTUSE_SSL_KEY_PASSWORD"] = "wrong-password"
    elif problem == "key_of_another":
        env["JOINTUSE_SSL_KEY_FILE"] = str(other.key)
    elif problem == "key_alone":
        env["JOINTUSE_SSL_CERT_FILE"] = ""
    elif problem == "sasl_without_user":
        env["JOINTUSE_SECURITY_PROTOCOL"] = "SASL_SSL"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("JOINTUSE_SASL_USERNAME", raising=False)
    with pytest.raises(ConfigError) as raised:
        load_settings().kafka_common()
    message = str(raised.value)
    assert said in message and "\n" not in message
    assert "right-password" not in message and "wrong-password" not in message


def test_a_trusted_broker_answers(ca: TestCA) -> None:
    with tls_server(ca.issue("broker")) as port:
        check_tls(_tls(port, ssl_ca_file=ca.pem))


def test_a_certificate_of_another_ca_is_refused_by_name(ca: TestCA, tmp_path: Path) -> None:
    elsewhere = TestCA(tmp_path / "elsewhere", "another CA")
    with tls_server(elsewhere.issue("broker")) as port, pytest.raises(TlsError) as raised:
        check_tls(_tls(port, ssl_ca_file=ca.pem))
    assert "is not accepted" in str(raised.value) and "JOINTUSE_SSL_CA_FILE" in str(raised.value)


def test_an_expired_broker_certificate_says_so(ca: TestCA) -> None:
    with tls_server(ca.issue("old-broker", expired=True)) as port, pytest.raises(TlsError) as raised:
        check_tls(_tls(port, ssl_ca_file=ca.pem))
    assert "certificate has expired" in str(raised.value)


def test_a_certificate_for_another_host_is_refused_unless_host_names_are_not_checked(ca: TestCA) -> None:
    with tls_server(ca.issue("named-broker", hosts=("kafka.example",))) as port:
        with pytest.raises(TlsError) as raised:
            check_tls(_tls(port, ssl_ca_file=ca.pem))
        assert "JOINTUSE_BOOTSTRAP_SERVERS must name the host" in str(raised.value)
        check_tls(_tls(port, ssl_ca_file=ca.pem, ssl_check_hostname=False))


def test_a_broker_that_wants_a_client_certificate_says_which_settings_give_one(ca: TestCA) -> None:
    with tls_server(ca.issue("mtls-broker"), client_ca=ca.pem) as port:
        with pytest.raises(TlsError) as raised:
            check_tls(_tls(port, ssl_ca_file=ca.pem))
        assert "JOINTUSE_SSL_CERT_FILE" in str(raised.value)
        client = ca.issue("mtls-client", client=True)
        check_tls(_tls(port, ssl_ca_file=ca.pem, ssl_cert_file=client.cert, ssl_key_file=client.key))


def test_a_plaintext_client_is_told_the_listener_speaks_tls(ca: TestCA) -> None:
    with tls_server(ca.issue("tls-only-broker")) as port, pytest.raises(TlsError) as raised:
        diagnose(Settings(bootstrap_servers=f"127.0.0.1:{port}", security_protocol="PLAINTEXT"))
    assert "speaks TLS" in str(raised.value) and "SASL_SSL or SSL" in str(raised.value)


def test_nothing_listening_is_left_to_the_client_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    check_tls(_tls(port))
    diagnose(Settings(bootstrap_servers=f"127.0.0.1:{port}"))


def test_the_subject_index_serves_https_with_its_certificate_and_asks_for_its_credential(
    ca: TestCA, tmp_path: Path
) -> None:
    served = ca.issue("index")
    token = tmp_path / "index.token"
    token.write_text("a-token\n")
    settings = Settings(index_cert_file=served.cert, index_key_file=served.key, index_token_file=token)
    assert settings.index_scheme() == "https" and settings.index_secret() == "a-token"
    assert isinstance(settings.index_server_context(), ssl.SSLContext)
    assert Settings().index_scheme() == "http" and Settings().index_secret() is None
    wrong = Settings(index_cert_file=served.cert, index_key_file=ca.issue("other-index").key)
    with pytest.raises(ConfigError, match="JOINTUSE_INDEX_CERT_FILE / JOINTUSE_INDEX_KEY_FILE"):
        wrong.index_server_context()
