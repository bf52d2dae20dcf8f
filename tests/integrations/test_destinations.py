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


@pytest.mark.parametrize("host", ["169.254.169.254", "169.254.170.2", "0.0.0.0", "fd00:ec2::254", "100.100.100.200"])
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
