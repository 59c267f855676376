"""Whether the brokers can be reached over TLS with these settings, and if not, why in one line.

librdkafka and aiokafka report a certificate they do not trust as a broker that does not answer
("no Kafka broker answered", "Unable to bootstrap"). Before a command or a worker starts, this opens
the first bootstrap server that accepts a connection with the same TLS context and asks it for its
API versions (a request every broker answers before authentication): the handshake's own reason
(untrusted certificate, expired, wrong host name, client certificate required) becomes the error.
"""

from __future__ import annotations

import socket
import ssl
import struct

from streams.errors import ClusterError
from streams.settings import Settings

API_VERSIONS_V0 = struct.pack(">ihhih", 10, 18, 0, 0x4A55, -1)  # size, api key, version, correlation id, no client id


class TlsError(ClusterError):
    """A broker was reached, but no TLS session with it could be made (exit 3, as any broker
    refusal). The message says which side to fix: the broker's certificate or the client's settings."""


def diagnose(settings: Settings, timeout: float = 5.0) -> None:
    """Why no broker answered, when TLS is the reason: ``check_tls`` with TLS on; without it, a
    ``TlsError`` if the listener turns out to speak TLS (a plaintext client is refused there)."""
    if settings.uses_tls:
        check_tls(settings, timeout)
        return
    anyone = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anyone.check_hostname, anyone.verify_mode = False, ssl.CERT_NONE  # only: does it speak TLS at all?
    for server, host, port in _servers(settings):
        try:
            with socket.create_connection((host, port), timeout=timeout) as raw, anyone.wrap_socket(raw):
                pass
        except (OSError, ValueError):
            continue
        raise TlsError(
            f"the broker at {server} speaks TLS and JOINTUSE_SECURITY_PROTOCOL is {settings.security_protocol}: "
            "use SASL_SSL or SSL, with JOINTUSE_SSL_CA_FILE"
        )


def _servers(settings: Settings) -> list[tuple[str, str, int]]:
    found = []
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isdigit():
            found.append((server.strip(), host.strip("[]"), int(port)))
    return found


def check_tls(settings: Settings, timeout: float = 10.0) -> None:
    """Nothing when TLS is off or a broker answered over it; ``TlsError`` when a broker was
    reached and the session failed; ``ConfigError`` when the settings' files cannot be used.
    Brokers that refuse the connection are left to the client (its error says no broker answered)."""
    context = settings.ssl_context()
    if context is None:
        return
    for server, host, port in _servers(settings):
        try:
            raw = socket.create_connection((host, port), timeout=timeout)
        except OSError:
            continue  # not this one: the client's own error says so if none answers
        try:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(API_VERSIONS_V0)
                if len(tls.recv(4)) < 4:
                    raise TlsError(f"TLS: the broker at {server} closed the session ({_hint(settings)})")
            return
        except ssl.SSLCertVerificationError as exc:
            raise TlsError(f"TLS: the certificate of the broker at {server} is not accepted: {_verify(exc)}") from None
        except ssl.SSLError as exc:
            refused = f"TLS: the broker at {server} refused the session: {exc.reason}"
            raise TlsError(f"{refused} ({_hint(settings)})") from None
        except TimeoutError:
            raise TlsError(f"TLS: the broker at {server} did not answer within {timeout:.0f} s over TLS") from None
        except OSError as exc:
            raise TlsError(
                f"TLS: the broker at {server} closed the session ({exc.strerror or type(exc).__name__}; "
                f"{_hint(settings)})"
            ) from None
        finally:
            raw.close()


def _verify(exc: ssl.SSLCertVerificationError) -> str:
    """What OpenSSL found wrong with the broker's certificate, and the setting that decides it."""
    message = str(exc.verify_message or exc.reason)
    if exc.verify_code in (18, 19, 20, 21):  # self-signed, or signed by a CA not in the bundle
        return f"{message} (is its CA in JOINTUSE_SSL_CA_FILE?)"
    if exc.verify_code in (62, 64):  # the certificate names neither this host name nor this address
        return f"{message} (JOINTUSE_BOOTSTRAP_SERVERS must name the host as its certificate does)"
    return message


def _hint(settings: Settings) -> str:
    if settings.security_protocol == "SSL" and settings.ssl_cert_file is None:
        return "it may require a client certificate: JOINTUSE_SSL_CERT_FILE and JOINTUSE_SSL_KEY_FILE"
    if settings.security_protocol == "SSL":
        return "it may not accept this client certificate or its CA"
    return "is this a TLS listener?"
