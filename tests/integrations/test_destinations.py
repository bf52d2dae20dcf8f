"""Where integrations may connect: metadata and the app's own services are refused."""
from __future__ import annotations

import pytest
from django.test import override_settings

from integrations import destinations
from integrations.kinds.base import StageError


@pytest.fixture(autouse=True)
def fresh_caches():
    destinations._app_endpoints.cache_clear()
    destinations._allow_list.cache_clear()
    yield
    destinations._app_endpoints.cache_clear()
    destinations._allow_list.cache_clear()


def interface_address() -> str:
    """This machine's own address on its main interface (a UDP "connect" sends nothing)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.254", 9))
        return probe.getsockname()[0]


@pytest.fixture
def app_services_here():
    """The app's database and broker on this host's loopback, as in the server setup."""
    with override_settings(DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1",
                                                  "PORT": "5432", "NAME": "credtool"}},
                           CELERY_BROKER_URL="redis://localhost:6379/0"):
        destinations._app_endpoints.cache_clear()
        yield
    destinations._app_endpoints.cache_clear()


@pytest.mark.parametrize("host", ["169.254.169.254", "169.254.170.2", "0.0.0.0", "fd00:ec2::254", "100.100.100.200",
                                  "::ffff:169.254.169.254", "::", "::ffff:0.0.0.0"])
def test_cloud_metadata_addresses_are_refused(host):
    with pytest.raises(StageError, match="blocked address") as caught:
        destinations.check(host, 80)
    assert caught.value.stage == "connection"


def test_the_apps_own_database_and_broker_are_refused():
    with override_settings(DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1",
                                                  "PORT": "5432", "NAME": "credtool"}},
                           CELERY_BROKER_URL="redis://localhost:6379/0"):
        destinations._app_endpoints.cache_clear()
        with pytest.raises(StageError, match="credtool's own database or broker"):
            destinations.check("localhost", 5432)
        with pytest.raises(StageError, match="credtool's own database or broker"):
            destinations.check("127.0.0.2", 6379)
        assert destinations.check("127.0.0.1", 5433) == "127.0.0.1"


@pytest.mark.parametrize("host", ["::1", "127.0.0.5", "interface", "hostname", "::ffff:127.0.0.1"])
@pytest.mark.parametrize("port", [5432, 6379])
def test_the_apps_own_services_are_refused_under_every_address_of_this_host(app_services_here, host, port):
    import socket

    host = {"interface": interface_address(), "hostname": socket.gethostname()}.get(host, host)
    with pytest.raises(StageError, match="credtool's own database or broker"):
        destinations.check(host, port)


def test_this_hosts_addresses_reach_other_ports_and_other_hosts_reach_the_apps_ports(app_services_here):
    assert destinations.check(interface_address(), 5433) == interface_address()
    assert destinations.check("192.0.2.200", 5432) == "192.0.2.200"  # another machine's PostgreSQL


def test_an_allow_list_admits_only_its_networks():
    with override_settings(INTEGRATION_NETWORKS=["10.20.0.0/16"]):
        with pytest.raises(StageError, match="not in CREDTOOL_INTEGRATION_NETWORKS"):
            destinations.check("127.0.0.1", 5433)
        destinations._allow_list.cache_clear()
    with override_settings(INTEGRATION_NETWORKS=["127.0.0.0/8"]):
        assert destinations.check("localhost", 5433) in ("127.0.0.1", "::1")


def test_an_unknown_host_is_a_clear_connection_error():
    with pytest.raises(StageError, match="could not resolve host 'no-such-host.invalid'"):
        destinations.check("no-such-host.invalid", 5432)
