"""A Staging database beside the Production one (``target_db``): another database, another
role and password, and different rows, so a test sees which one answered."""
from __future__ import annotations

import secrets

import psycopg
import pytest

from tests.conftest import TargetDatabase, _quote


@pytest.fixture(scope="session")
def staging_db(postgres_server_url: str, target_db: TargetDatabase) -> TargetDatabase:
    password = "staging-pw-" + secrets.token_hex(8)
    name = "credtool_staging"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute("DROP ROLE IF EXISTS staging_user")
        conn.execute(f"CREATE ROLE staging_user LOGIN PASSWORD {_quote(password)}")
        conn.execute(f"CREATE DATABASE {name} OWNER staging_user")
    staging = TargetDatabase(host=target_db.host, port=target_db.port, database=name, username="staging_user",
                             password=password, superuser_url=postgres_server_url)
    with staging.admin() as conn:
        conn.execute("SET ROLE staging_user")
        conn.execute("CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);"
                     "INSERT INTO customers (name) VALUES ('Staging Sam'), ('Test Tina');")
    return staging
