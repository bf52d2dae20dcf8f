"""``make demo``: the whole fetched-credentials flow on one machine, ready to click.

Starts a local AWS Secrets Manager (moto's server mode), a throwaway PostgreSQL
and a throwaway MariaDB, each with a small ``orders`` table, a local JSON API
that wants a bearer token, the web server and a worker, and seeds the flow of
the docs for each kind: a secret, a workflow that reads it (``getSecrets`` for
PostgreSQL, as in the docs; ``getMysqlSecrets``; ``getApiToken``) and an
integration whose fields are bindings. Shop orders (PostgreSQL) has both
profiles: Production's database and Staging's own (fewer, test orders), and
getSecrets reads each profile's secret (``postgresSecrets``,
``postgresSecrets-staging``) by the ``profile`` its run is under. Its data
lives in var/demo/ and goes when the demo stops.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_VAR = ROOT / "var" / "demo"
DEMO_USER, DEMO_PASSWORD = "demo", "demo"

# The reference page's step, reaching the local endpoint through Env.aws_endpoint_url.
GET_SECRETS_CODE = '''\
import boto3
import json
from botocore.exceptions import ClientError

# Each profile has its own secret: postgresSecrets (Production), postgresSecrets-staging, ...
secret_name = "postgresSecrets" if profile == "production" else f"postgresSecrets-{profile}"
region_name = "us-east-1"

session = boto3.session.Session()
client = session.client(
    service_name="secretsmanager",
    region_name=region_name,
    endpoint_url=Env.aws_endpoint_url,
    aws_access_key_id=Env.aws_access_key_id,
    aws_secret_access_key=Env.aws_secret_access_key,
)
try:
    response = client.get_secret_value(SecretId=secret_name)
except ClientError as e:
    # ResourceNotFoundException, AccessDeniedException, DecryptionFailure...
    raise e
else:
    secret = response["SecretString"]

return json.loads(secret)
'''

BINDINGS = {
    "host": "{{getSecrets.response.host}}",
    "port": "{{getSecrets.response.port}}",
    "database": "{{getSecrets.response.dbname}}",
    "username": "{{getSecrets.response.username}}",
    "password": "{{getSecrets.response.password}}",
    "sslmode": "prefer",
}


def secret_step(secret_name: str) -> str:
    """The reference step, reading ``secret_name`` (whatever the profile) instead of postgresSecrets."""
    lines = [line for line in GET_SECRETS_CODE.splitlines(keepends=True) if "Each profile has its own" not in line]
    return "".join(f'secret_name = "{secret_name}"\n' if line.startswith("secret_name =") else line for line in lines)


MYSQL_BINDINGS = {**{k: v.replace("getSecrets", "getMysqlSecrets") for k, v in BINDINGS.items() if k != "sslmode"},
                  "ssl_mode": "preferred"}
API_CONFIG = {"auth": "bearer", "bearer_token": "{{getApiToken.response.token}}",
              "headers": "Accept: application/json", "verify_tls": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def wait_for_worker(timeout: float = 120) -> None:
    """Until the worker is ready, so that the login line printed next comes after its startup banner
    instead of being scrolled away by it: a ready worker writes its heartbeat row (``runs.workers``)."""
    from django.utils import timezone

    from runs.models import WorkerHeartbeat

    deadline = time.monotonic() + timeout
    while not WorkerHeartbeat.objects.filter(expires_at__gt=timezone.now()).exists():
        if time.monotonic() > deadline:
            print("The worker did not start: queries will wait as Queued (see its log above).", flush=True)
            return
        time.sleep(0.2)
    time.sleep(1)  # its "ready." line is logged beside the heartbeat: let it go first


def seed_database(superuser_url: str, password: str, *, database: str = "shop", role: str = "shop_app",
                  orders: int = 250, customers: str = "'Ada Lovelace', 'Grace Hopper', 'Alan Turing', "
                                                       "'Edsger Dijkstra', 'Barbara Liskov'") -> None:
    import psycopg

    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {database} OWNER {role}")
    with psycopg.connect(superuser_url, dbname=database, autocommit=True) as conn:
        conn.execute(f"SET ROLE {role}")
        conn.execute("""
            CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, total numeric(10, 2) NOT NULL,
                                 status text NOT NULL, ordered_at timestamptz NOT NULL DEFAULT now());
            INSERT INTO orders (customer, total, status, ordered_at)
            SELECT (ARRAY[{customers}])[1 + g % 5],
                   round((random() * 500)::numeric, 2),
                   (ARRAY['paid', 'shipped', 'refunded', 'pending'])[1 + g % 4],
                   now() - (g || ' hours')::interval
            FROM generate_series(1, {orders}) AS g;
        """.format(customers=customers, orders=orders))


def seed_mysql(admin_url: str, password: str) -> None:
    import pymysql
    from urllib.parse import urlsplit

    url = urlsplit(admin_url)
    with pymysql.connect(host=url.hostname, port=url.port, user=url.username, password=url.password,
                         autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE DATABASE shop")
        cursor.execute("USE shop")
        cursor.execute("CREATE USER 'shop_app'@'%%' IDENTIFIED BY %s", (password,))
        cursor.execute("GRANT ALL ON shop.* TO 'shop_app'@'%'")
        cursor.execute("CREATE TABLE shop.orders (id int auto_increment primary key, customer varchar(60) not null, "
                       "total decimal(10, 2) not null, status varchar(20) not null, ordered_at datetime not null)")
        cursor.execute("INSERT INTO shop.orders (customer, total, status, ordered_at) "
                       "SELECT elt(1 + seq % 5, 'Ada Lovelace', 'Grace Hopper', 'Alan Turing', 'Edsger Dijkstra', "
                       "'Barbara Liskov'), round(rand() * 500, 2), elt(1 + seq % 4, 'paid', 'shipped', 'refunded', "
                       "'pending'), now() - interval seq hour FROM seq_1_to_250")


def seed_app(port: int, api_url: str) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from integrations.models import Configuration, ConfigurationProfile, Integration
    from profiles.models import Profile
    from workflows.models import Step, Workflow

    call_command("migrate", verbosity=0)
    User = get_user_model()
    if not User.objects.filter(username=DEMO_USER).exists():
        User.objects.create_superuser(DEMO_USER, "", DEMO_PASSWORD)
    for workflow_name, secret_name, integration_name, kind, config in (
            ("getSecrets", "postgresSecrets", "Shop orders", "postgres", BINDINGS),
            ("getMysqlSecrets", "mysqlSecrets", "Shop orders (MySQL)", "mysql", MYSQL_BINDINGS),
            ("getApiToken", "ordersApiToken", "Orders API", "rest", {"base_url": api_url, **API_CONFIG})):
        workflow, _ = Workflow.objects.get_or_create(
            name=workflow_name, defaults={"description": f"Reads {secret_name} from AWS Secrets Manager"})
        workflow.steps.all().delete()
        code = GET_SECRETS_CODE if workflow_name == "getSecrets" else secret_step(secret_name)
        Step.objects.create(workflow=workflow, position=0, name="getSecret", code=code, timeout_s=30)
        Integration.objects.filter(name=integration_name).delete()
        integration = Integration.objects.create_with_default(
            name=integration_name, kind=kind, fetch_credentials=True, credentials_workflow=workflow,
            credentials_cache_s=300, config=config)
        if workflow_name == "getSecrets":
            # Staging's own configuration: the same workflow, which reads postgresSecrets-staging under Staging.
            staging = Configuration.objects.create(integration=integration, config=config, fetch_credentials=True,
                                                   credentials_workflow=workflow, credentials_cache_s=60)
            ConfigurationProfile.objects.create(integration=integration, configuration=staging,
                                                profile=Profile.objects.get(key="staging"))


def main() -> None:
    shutil.rmtree(DEMO_VAR, ignore_errors=True)
    DEMO_VAR.mkdir(parents=True)
    os.environ.update(CREDTOOL_VAR_DIR=str(DEMO_VAR), DJANGO_SETTINGS_MODULE="credtool.settings")
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    from devtools import localapi, localmysql, localpg

    processes: list[subprocess.Popen] = []
    postgres = localpg.start()
    mariadb = localmysql.start()
    api = localapi.LocalApi(secret="demo-" + secrets.token_urlsafe(12))
    try:
        db_password = secrets.token_urlsafe(12)
        staging_password = secrets.token_urlsafe(12)
        seed_database(postgres.url, db_password)
        seed_database(postgres.url, staging_password, database="shop_staging", role="shop_staging", orders=20,
                      customers="'Test Customer 1', 'Test Customer 2', 'Test Customer 3', 'QA Bot', 'Demo User'")
        seed_mysql(mariadb.url, db_password)

        moto_port = free_port()
        moto_url = f"http://127.0.0.1:{moto_port}"
        processes.append(subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_http(moto_url + "/moto-api/")
        import boto3

        aws = {"aws_access_key_id": "demo-access-key", "aws_secret_access_key": "demo-secret-key"}
        manager = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_url, **aws)
        for name, port, database, role, password in (
                ("postgresSecrets", postgres.port, "shop", "shop_app", db_password),
                ("postgresSecrets-staging", postgres.port, "shop_staging", "shop_staging", staging_password),
                ("mysqlSecrets", mariadb.port, "shop", "shop_app", db_password)):
            manager.create_secret(Name=name, SecretString=json.dumps({
                "host": "127.0.0.1", "port": port, "dbname": database, "username": role, "password": password}))
        manager.create_secret(Name="ordersApiToken", SecretString=json.dumps({"token": api.secret}))

        web_port = int(os.environ.get("PORT", "8000"))
        seed_app(web_port, api.url)
        worker_env = {**os.environ,
                      "CREDTOOL_APP_ENV_AWS_ENDPOINT_URL": moto_url,
                      "CREDTOOL_APP_ENV_AWS_ACCESS_KEY_ID": aws["aws_access_key_id"],
                      "CREDTOOL_APP_ENV_AWS_SECRET_ACCESS_KEY": aws["aws_secret_access_key"]}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "credtool", "worker", "--loglevel=INFO"], cwd=ROOT, env=worker_env))
        processes.append(subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{web_port}", "--noreload"], cwd=ROOT))
        wait_http(f"http://127.0.0.1:{web_port}/accounts/login/")
        wait_for_worker()
        print(f"""
  credtool demo is up: http://127.0.0.1:{web_port}/   (log in as {DEMO_USER} / {DEMO_PASSWORD})

  - Workflows › getSecrets reads the secret postgresSecrets from AWS Secrets Manager (moto, {moto_url})
  - Integrations › Shop orders fetches its credentials with it: open it and click Run query
    (try: select status, count(*), sum(total) from orders group by status); switch Profile to
    Staging and the same workflow reads postgresSecrets-staging: Staging's own database answers
  - Shop orders (MySQL) does the same on MariaDB with getMysqlSecrets; Orders API calls a local
    JSON API ({api.url}) with a bearer token that getApiToken reads (try: GET /orders)
  Ctrl+C stops everything.
""", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        api.stop()
        mariadb.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
