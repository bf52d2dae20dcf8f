"""A Staging database beside the Production one (``target_db``): another database, another
role and password, and different rows, so a test sees which one answered."""
from __future__ import annotations

import pytest

from tests.conftest import TargetDatabase, fresh_database


@pytest.fixture(scope="session")
def staging_db(postgres_server_url: str) -> TargetDatabase:
    staging = fresh_database(postgres_server_url, "credtool_staging", "staging_user")
    with staging.admin() as conn:
        conn.execute("SET ROLE staging_user")
        conn.execute("CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);"
                     "INSERT INTO customers (name) VALUES ('Staging Sam'), ('Test Tina');")
    return staging
