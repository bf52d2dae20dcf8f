"""A stored password is only ever sent where it was stored for, checked with a server that records
what it is sent: a fake PostgreSQL asking for the password in clear, as a Builder's own server would."""
from __future__ import annotations

import socket
import struct
import threading

import pytest

from integrations.models import ConnectionCheck, Integration
from tests.conftest import stored_default, wait_for_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

STORED = "stored-secret-password"


class CapturingPostgres:
    """Speaks just enough of PostgreSQL's protocol to ask for a cleartext password and keep it."""

    def __init__(self) -> None:
        self.passwords: list[str] = []
        self.connections = 0
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self.port = self._socket.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn:
            try:
                length, code = struct.unpack("!ii", _read(conn, 8))
                if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: "no"
                    conn.sendall(b"N")
                    length, code = struct.unpack("!ii", _read(conn, 8))
                _read(conn, length - 8)  # the startup parameters
                conn.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
                kind = _read(conn, 1)
                if kind == b"p":
                    (size,) = struct.unpack("!i", _read(conn, 4))
                    self.passwords.append(_read(conn, size - 4).rstrip(b"\0").decode())
                fields = b"SFATAL\0C28P01\0Mpassword authentication failed for user \"x\"\0\0"
                conn.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)
            except (OSError, struct.error):
                pass

    def close(self) -> None:
        self._socket.close()


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


@pytest.fixture
def capture():
    server = CapturingPostgres()
    yield server
    server.close()


@pytest.fixture
def integration(user, target_db):
    return Integration.objects.create_with_default(
        name="Billing", kind="postgres", created_by=user,
        config={k: v for k, v in target_db.form_values().items() if k != "password"}, secrets={"password": STORED})


def form_data(integration: Integration, **changes: object) -> dict[str, object]:
    return {"integration": str(integration.pk), "name": integration.name, "statement_timeout_s": "30",
            **integration.default_configuration.config, "password": "", **changes}


def test_test_connection_to_another_host_asks_for_the_password_and_sends_nothing(
        logged_in_client, integration, capture):
    response = logged_in_client.post("/integrations/test-connection/", form_data(
        integration, host="127.0.0.1", port=str(capture.port)), HTTP_HX_REQUEST="true")
    assert "Type the password again" in response.content.decode()
    assert not ConnectionCheck.objects.exists() and capture.connections == 0


def test_save_to_another_host_with_a_blank_password_is_refused(logged_in_client, integration, capture):
    response = logged_in_client.post(f"/integrations/{integration.pk}/edit/", form_data(
        integration, host="127.0.0.1", port=str(capture.port)))
    assert response.status_code == 200 and "Type the password again" in response.content.decode()
    assert stored_default(integration).config["port"] != capture.port


def test_the_worker_does_not_send_the_stored_password_elsewhere_either(integration, capture, user):
    """Should a check for another destination reach the worker anyway, the worker checks again."""
    from django.db import transaction

    from runs import lifecycle

    with transaction.atomic():
        default = integration.default_configuration
        check = ConnectionCheck.objects.create(kind="postgres", integration=integration, configuration=default,
                                               user=user, config={**default.config, "host": "127.0.0.1",
                                                                  "port": capture.port})
        lifecycle.submit(check)
    done = wait_for_final(ConnectionCheck, check.pk, timeout=20)
    assert done.status == "failed"
    assert STORED not in capture.passwords


def test_where_it_was_stored_for_the_blank_password_is_used(logged_in_client, user, capture):
    """The same check against the destination the password was saved for does send it."""
    integration = Integration.objects.create_with_default(name="Fake", kind="postgres", created_by=user, config={
        "host": "127.0.0.1", "port": capture.port, "database": "d", "username": "u", "sslmode": "disable"},
        secrets={"password": STORED})
    logged_in_client.post("/integrations/test-connection/", form_data(integration), HTTP_HX_REQUEST="true")
    done = wait_for_final(ConnectionCheck, ConnectionCheck.objects.get().pk, timeout=20)
    assert done.status == "failed" and "password authentication failed" in done.message
    assert capture.passwords == [STORED]
    assert STORED not in done.message
