"""Every DSN form real configs contain: parsing, identity, redaction and errors."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import write_config
from hypothesis import given, settings
from hypothesis import strategies as st

from shardctl.dsn import Driver, Dsn, DsnError, dsn_from_fields, parse_dsn
from shardctl.validate import load_topology

BASE = Path("/srv/app")
SENTINEL = "Zq7-SENTINEL-pw"


def parse(driver: Driver, text: str, base: Path = BASE) -> Dsn:
    return parse_dsn(driver, text, sqlite_base=base)


# -- SQLite -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("./data/develop/sharding_db_1.db", "/srv/app/data/develop/sharding_db_1.db"),
        ("data/x.db", "/srv/app/data/x.db"),
        ("../shared/x.db", "/srv/shared/x.db"),
        ("/var/lib/app/x.db", "/var/lib/app/x.db"),
        ("sqlite:///data/x.db", "/srv/app/data/x.db"),
        ("sqlite:////var/lib/app/x.db", "/var/lib/app/x.db"),
        ("file:data/x.db", "/srv/app/data/x.db"),
        ("file:///var/lib/app/x.db", "/var/lib/app/x.db"),
        ("  ./data/x.db  ", "/srv/app/data/x.db"),
        ("./data/with%20space.db", "/srv/app/data/with space.db"),
    ],
)
def test_sqlite_paths_resolve_against_the_given_base(text: str, path: str) -> None:
    dsn = parse("sqlite3", text)
    assert dsn.database == path
    assert dsn.identity == path
    assert dsn.redacted() == path


def test_sqlite_relative_path_ignores_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse("sqlite3", "x.db", base=tmp_path / "app").database == str(tmp_path / "app/x.db")


def test_sqlite_home_directory_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse("sqlite3", "~/dbs/x.db").database == str(tmp_path / "dbs" / "x.db")


def test_sqlite_query_options_are_kept_but_do_not_change_identity() -> None:
    shared = parse("sqlite3", "file:data/x.db?cache=shared&mode=rwc")
    assert shared.options == (("cache", "shared"), ("mode", "rwc"))
    assert shared.identity == parse("sqlite3", "./data/x.db").identity


@pytest.mark.parametrize(
    "text", [":memory:", "file::memory:?cache=shared", "file:x.db?mode=memory", "sqlite:///"]
)
def test_sqlite_in_memory_database_is_refused(text: str) -> None:
    with pytest.raises(DsnError, match="in-memory SQLite database cannot hold shard tables"):
        parse("sqlite3", text)


# -- PostgreSQL: libpq keywords ---------------------------------------------------------------


def test_libpq_keywords_are_read_in_any_order() -> None:
    dsn = parse(
        "postgres", "sslmode=require dbname=app_db password=pw user=app port=6432 host=DB1.internal"
    )
    assert (dsn.host, dsn.port, dsn.user, dsn.password, dsn.database) == (
        "db1.internal", 6432, "app", "pw", "app_db",
    )  # fmt: skip
    assert dsn.options == (("sslmode", "require"),)


def test_libpq_quoted_values_keep_spaces_and_escaped_quotes() -> None:
    dsn = parse("postgres", r"host=db1 password='it\'s a \\ secret' dbname='app db'")
    assert dsn.password == "it's a \\ secret"
    assert dsn.database == "app db"


def test_libpq_unquoted_value_with_escaped_space() -> None:
    assert parse("postgres", r"password=a\ b dbname=x").password == "a b"


def test_libpq_defaults_port_5432_and_host_localhost() -> None:
    dsn = parse("postgres", "dbname=app_db user=app")
    assert (dsn.host, dsn.port) == ("localhost", 5432)
    assert dsn.identity == "postgres://app@localhost:5432/app_db"


def test_libpq_hostaddr_is_the_host_when_no_host_is_given() -> None:
    dsn = parse("postgres", "hostaddr=10.0.0.7 dbname=app_db")
    assert (dsn.host, dsn.port) == ("10.0.0.7", 5432)
    both = parse("postgres", "host=db1 hostaddr=10.0.0.7 dbname=app_db")
    assert both.host == "db1"
    assert ("hostaddr", "10.0.0.7") in both.options


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host=db1 port=5432 user=app", "has no 'dbname=' keyword"),
        ("host=db1 port=fivefour dbname=x", "libpq port 'fivefour' is not a port number"),
        ("host=db1 port=70000 dbname=x", "libpq port '70000' is not a port number"),
        ("host=db1 port=\u00b2 dbname=x", "is not a port number"),
        ("host=db1 just-words dbname=x", "cannot read libpq keyword DSN near 'just-words'"),
    ],
)
def test_libpq_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(DsnError, match=message.replace("(", r"\(")):
        parse("postgres", text)


@pytest.mark.parametrize(
    "text",
    [
        f"host=db1 password=my {SENTINEL} dbname=x",
        f"host=db1 password='{SENTINEL} dbname=x",
        f"host=db1 password={SENTINEL} {SENTINEL}=oops dbname",
    ],
)
def test_libpq_errors_never_quote_the_password(text: str) -> None:
    with pytest.raises(DsnError) as raised:
        parse("postgres", text)
    assert SENTINEL not in str(raised.value)


# -- PostgreSQL: URLs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "postgres://app:pw@db1:5432/app_db",
        "postgresql://app:pw@db1/app_db",
        "postgresql+psycopg://app:pw@DB1:5432/app_db",
        "postgres://app@db1/app_db?sslmode=require&password=pw",
        "postgres://db1/app_db?user=app&password=pw",
        "host=db1 user=app password=pw dbname=app_db",
        "dbname=app_db host=db1 password=other user=app port=5432",
    ],
)
def test_postgres_url_and_keyword_forms_name_one_database(text: str) -> None:
    dsn = parse("postgres", text)
    assert dsn.identity == "postgres://app@db1:5432/app_db"
    assert dsn.password in ("pw", "other")
    assert all(key != "password" for key, _ in dsn.options)


def test_postgres_url_percent_encoded_password() -> None:
    dsn = parse("postgres", "postgres://app:p%40ss%2Fw%3Ard%20x@db1/app_db")
    assert dsn.password == "p@ss/w:rd x"


def test_postgres_url_password_with_raw_at_sign_splits_at_the_last_one() -> None:
    assert parse("postgres", "postgres://app:p@ss@db1/app_db").password == "p@ss"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("postgres://app@[::1]:6432/app_db", "::1", 6432),
        ("postgres://app@[2001:DB8::7]/app_db", "2001:db8::7", 5432),
        ("postgresql:///app_db?host=/var/run/postgresql", "/var/run/postgresql", 5432),
    ],
)
def test_postgres_url_ipv6_and_socket_hosts(text: str, host: str, port: int) -> None:
    dsn = parse("postgres", text)
    assert (dsn.host, dsn.port, dsn.database) == (host, port, "app_db")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mysql://app@db1/app_db", "URL scheme 'mysql' does not match driver 'postgres'"),
        ("postgres://app@db1", "the URL names no database"),
        ("postgres://app@[::1/app_db", "the URL cannot be read"),
        ("postgres://app@db1:port/app_db", "the URL's port is not a number"),
    ],
)
def test_postgres_url_errors(text: str, message: str) -> None:
    with pytest.raises(DsnError, match=message):
        parse("postgres", text)


@pytest.mark.parametrize("separator", ["/", "?", "#"])
def test_postgres_url_error_never_quotes_an_unencoded_password(separator: str) -> None:
    text = f"postgres://app:{SENTINEL[:4]}{separator}{SENTINEL[4:]}@db1/app_db"
    with pytest.raises(DsnError) as raised:
        parse("postgres", text)
    assert SENTINEL[:4] not in str(raised.value)
    assert "percent-encode" in str(raised.value) or "names no database" in str(raised.value)


# -- MySQL: the Go driver's form and URLs -----------------------------------------------------


def test_go_mysql_dsn_with_variable_password_expanded_after_splitting() -> None:
    values = {"${PW}": "p@ss/w:rd?x=1 y"}
    dsn = parse_dsn(
        "mysql",
        "app:${PW}@tcp(db1:3306)/app_db?charset=utf8mb4&parseTime=true",
        sqlite_base=BASE,
        expand=lambda text: values.get(text, text),
    )
    assert (dsn.user, dsn.password, dsn.host, dsn.port, dsn.database) == (
        "app", "p@ss/w:rd?x=1 y", "db1", 3306, "app_db",
    )  # fmt: skip
    assert dsn.options == (("charset", "utf8mb4"), ("parseTime", "true"))
    assert dsn.identity == "mysql://app@db1:3306/app_db"


def test_go_mysql_password_may_contain_at_and_colon() -> None:
    dsn = parse("mysql", "app:p@:ss@wo:rd@tcp(db1:3307)/app_db")
    assert (dsn.user, dsn.password, dsn.port) == ("app", "p@:ss@wo:rd", 3307)


@pytest.mark.parametrize(
    ("text", "identity"),
    [
        ("app@unix(/run/mysqld/mysqld.sock)/app_db", "mysql://app@unix:/run/mysqld/mysqld.sock:3306/app_db"),
        ("app@/app_db", "mysql://app@localhost:3306/app_db"),
        ("/app_db", "mysql://localhost:3306/app_db"),
        ("app:pw@tcp(db1)/app_db", "mysql://app@db1:3306/app_db"),
        ("app@tcp([::1]:3307)/app_db", "mysql://app@::1:3307/app_db"),
        ("app:pw@tcp(DB1:3306)/app_db?tls=skip-verify", "mysql://app@db1:3306/app_db"),
        ("mysql://app:pw@db1:3306/app_db", "mysql://app@db1:3306/app_db"),
        ("mysql+pymysql://app@db1/app_db?charset=utf8mb4", "mysql://app@db1:3306/app_db"),
        ("mariadb://app:pw@db1/app_db", "mysql://app@db1:3306/app_db"),
    ],
)  # fmt: skip
def test_mysql_forms(text: str, identity: str) -> None:
    assert parse("mysql", text).identity == identity


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app:pw@tcp(db1:3306)", "needs '/dbname'"),
        ("app:pw@tcp(db1:3306)/", "names no database"),
        ("app:pw@tcp(db1:3306/app_db", "cannot read MySQL address"),
        ("app:pw@tcp(db1:http)/app_db", "MySQL port 'http' is not a port number"),
        ("postgres://app@db1/app_db", "URL scheme 'postgres' does not match driver 'mysql'"),
    ],
)
def test_mysql_errors(text: str, message: str) -> None:
    with pytest.raises(DsnError, match=message.replace("(", r"\(")):
        parse("mysql", text)


def test_go_mysql_error_without_at_sign_never_quotes_what_may_be_the_password() -> None:
    with pytest.raises(DsnError) as raised:
        parse("mysql", f"app:{SENTINEL}(x/app_db")
    assert SENTINEL not in str(raised.value)


# -- fields, identity and redaction -----------------------------------------------------------


def test_dsn_from_fields_defaults_and_port_check() -> None:
    dsn = dsn_from_fields(
        "mysql", host=None, port=None, name="app_db", user="app", password="pw", sqlite_base=BASE
    )
    assert (dsn.identity, dsn.password) == ("mysql://app@localhost:3306/app_db", "pw")
    sqlite = dsn_from_fields(
        "sqlite3",
        host=None,
        port=None,
        name="data/x.db",
        user=None,
        password=None,
        sqlite_base=BASE,
    )
    assert sqlite.identity == "/srv/app/data/x.db"
    with pytest.raises(DsnError, match="no 'name' field"):
        dsn_from_fields(
            "postgres", host="db1", port=1, name=None, user=None, password=None, sqlite_base=BASE
        )
    with pytest.raises(DsnError, match="'70000' is not a port number"):
        dsn_from_fields(
            "postgres", host="db1", port=70000, name="x", user=None, password=None, sqlite_base=BASE
        )


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("host=db1 dbname=a user=app", "user=app dbname=a host=db1 port=5432", True),
        ("host=db1 dbname=a user=app password=x", "host=db1 dbname=a user=app password=y", True),
        ("host=db1 dbname=a user=app sslmode=require", "postgres://app@DB1/a", True),
        ("host=db1 dbname=a user=app", "host=db1 dbname=a user=other", False),
        ("host=db1 dbname=a user=app", "host=db1 port=5433 dbname=a user=app", False),
        ("host=db1 dbname=a user=app", "host=db2 dbname=a user=app", False),
        ("host=db1 dbname=a user=app", "host=db1 dbname=b user=app", False),
    ],
)
def test_postgres_identity(a: str, b: str, same: bool) -> None:
    assert (parse("postgres", a).identity == parse("postgres", b).identity) is same


def test_mysql_identity_go_form_equals_url() -> None:
    go = parse("mysql", "app:one@tcp(db1:3306)/app_db?parseTime=true")
    url = parse("mysql", "mysql://app:two@db1/app_db?parseTime=true")
    assert go.identity == url.identity
    assert go == url  # the password is not part of equality either
    assert go != parse("mysql", "mysql://app:one@db1/app_db")  # options are


ALL_FORMS: list[tuple[Driver, str]] = [
    ("postgres", f"host=db1 user=app password={SENTINEL} dbname=app_db"),
    ("postgres", f"host=db1 user=app password='{SENTINEL} x' dbname=app_db"),
    ("postgres", f"postgres://app:{quote(SENTINEL)}@db1/app_db"),
    ("postgres", f"postgresql+psycopg://app:{SENTINEL}@[::1]:5433/app_db"),
    ("postgres", f"postgres://app@db1/app_db?password={SENTINEL}"),
    ("postgres", f"postgres://:{SENTINEL}@db1/app_db"),
    ("mysql", f"app:{SENTINEL}@tcp(db1:3306)/app_db?charset=utf8mb4"),
    ("mysql", f"app:{SENTINEL}@/app_db"),
    ("mysql", f"app:{SENTINEL}@unix(/run/mysqld.sock)/app_db"),
    ("mysql", f"mysql://app:{SENTINEL}@db1/app_db"),
]


@pytest.mark.parametrize(("driver", "text"), ALL_FORMS)
def test_password_is_parsed_and_never_displayed(driver: Driver, text: str) -> None:
    dsn = parse(driver, text)
    assert dsn.password is not None and SENTINEL in dsn.password
    for shown in (dsn.redacted(), dsn.identity, dsn.place, repr(dsn), str(dsn)):
        assert SENTINEL not in shown
    assert "***" in dsn.redacted()


def test_redacted_without_password_equals_identity() -> None:
    dsn = parse("postgres", "host=db1 user=app dbname=app_db")
    assert dsn.redacted() == dsn.identity == "postgres://app@db1:5432/app_db"


@pytest.mark.parametrize(("driver", "text"), [("postgres", ""), ("mysql", "   "), ("sqlite3", "")])
def test_empty_dsn_is_an_error(driver: Driver, text: str) -> None:
    with pytest.raises(DsnError, match="empty"):
        parse(driver, text)


# -- properties -------------------------------------------------------------------------------

PASSWORDS = st.text(min_size=1, max_size=30).filter(lambda s: s == s.strip())


@settings(max_examples=150, deadline=None)
@given(password=PASSWORDS)
def test_any_password_round_trips_through_every_form(password: str) -> None:
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    forms: list[tuple[Driver, str]] = [
        ("postgres", f"host=db1 user=app password='{escaped}' dbname=app_db"),
        ("postgres", f"postgres://app:{quote(password, safe='')}@db1/app_db"),
        ("mysql", f"app:{password}@tcp(db1:3306)/app_db"),
        ("mysql", f"mysql://app:{quote(password, safe='')}@db1/app_db"),
    ]
    for driver, text in forms:
        dsn = parse(driver, text)
        assert dsn.password == password, text
        assert dsn.user == "app" and dsn.database == "app_db" and dsn.host == "db1"


# -- ${VAR} expansion through the config loader -----------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "driver"),
    [
        ("host=db1 user=app password=${PW} dbname=app_db", "postgres"),
        ("postgres://app:${PW}@db1:5432/app_db", "postgres"),
        ("app:${PW}@tcp(db1:3306)/app_db?charset=utf8mb4&parseTime=true", "mysql"),
        ("mysql://app:${PW}@db1/app_db", "mysql"),
    ],
)
@pytest.mark.parametrize("secret", ["p@ss/word", "with spaces and 'quotes'", "a:b@c/d?e#f=g h"])
def test_variable_in_a_dsn_expands_after_splitting(
    tmp_path: Path, dsn: str, driver: str, secret: str
) -> None:
    write_config(
        tmp_path / "config",
        [{"id": 1, "driver": driver, "dsn": dsn, "table_range": [0, 3]}],
        suffix_count=4,
    )
    topology, warnings = load_topology(tmp_path / "config", "develop", environ={"PW": secret})
    writer = topology.entries[0].writer
    assert (writer.password, writer.host, writer.database, writer.user) == (
        secret, "db1", "app_db", "app",
    )  # fmt: skip
    assert warnings == []
    assert secret in topology.secrets
    assert secret not in topology.databases[0].label


def test_variables_fill_host_port_and_database_too(tmp_path: Path) -> None:
    write_config(
        tmp_path / "config",
        [{"id": 1, "driver": "postgres", "table_range": [0, 0],
          "dsn": "host=${HOST} port=${PORT} dbname=${DB}_${ENV_NAME} user=app"}],
        suffix_count=1,
    )  # fmt: skip
    environ = {"HOST": "DB7", "PORT": "6543", "DB": "app", "ENV_NAME": "staging"}
    topology, _ = load_topology(tmp_path / "config", "develop", environ=environ)
    assert topology.entries[0].writer.identity == "postgres://app@db7:6543/app_staging"


def test_a_password_containing_scheme_separator_is_not_taken_for_a_url() -> None:
    assert parse("postgres", "host=db1 password=a://b dbname=app_db").password == "a://b"
    go = parse("mysql", "app://pw@tcp(db1:3306)/app_db")
    assert (go.user, go.password, go.host) == ("app", "//pw", "db1")
