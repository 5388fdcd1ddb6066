"""Sentinel passwords, written every way a config holds one (libpq DSN, URL, Go MySQL DSN,
``password:`` field, ``${VAR}``), never appear in anything a command prints: every command,
every format, successes and failures (unreachable port, wrong credentials), warnings and
``--debug`` tracebacks. Connections are real: a MariaDB user is created with the sentinel as
its password (PostgreSQL here trusts 127.0.0.1, so any password is accepted and a wrong one is
modelled by an unknown role)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pymysql
import pytest
from cli_helpers import Run, run_cli
from conftest import MYSQL, REPO, write_config

PLAIN = "Zq7CliSentinelPw"
SPECIAL = "Zq7 s@nt:n/l%x"  # a space, '@', ':', '/', '%'
WRONG = "Zq7WrongPassword"
FRAGMENTS = ("Zq7", "CliSentinel", "s@nt:n", "WrongPassword", quote(SPECIAL, safe=""))
QUERY = "SELECT COUNT(*) AS n, MAX(id) AS top FROM users"

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]


def assert_clean(run: Run, what: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in run.out + run.err, f"{what} leaked {fragment!r}:\n{run.out}{run.err}"


@pytest.fixture
def mysql_user(mysql_databases: Callable[[], str]) -> Iterator[tuple[str, str]]:
    """A MariaDB user whose password is the special sentinel, owning a fresh database."""
    name, user = mysql_databases(), f"shardctl_{uuid.uuid4().hex[:8]}"
    connection = pymysql.connect(**MYSQL, autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (SPECIAL,))
        cursor.execute(f"GRANT ALL ON `{name}`.* TO '{user}'@'%'")
    try:
        yield name, user
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        connection.close()


@pytest.fixture
def secret_config(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pg_databases: Callable[[], str],
    mysql_user: tuple[str, str],
) -> Path:
    """Four entries on SQLite, PostgreSQL (libpq + URL forms, a reader) and MariaDB (a
    ``password: ${VAR}`` field), all holding sentinels; entry 4 repeats entry 3's database
    with another DSN spelling and carries a misspelt ``pasword:`` key (a warning)."""
    monkeypatch.setenv("SHARDCTL_T_PW", SPECIAL)
    monkeypatch.setenv("COLUMNS", "400")
    pg, (my, user) = pg_databases(), mysql_user
    entries: list[dict[str, Any]] = [
        {"id": 1, "driver": "sqlite3", "dsn": str(tmp_path / "one.db"), "table_range": [0, 1]},
        {"id": 2, "driver": "postgres", "table_range": [2, 3],
         "dsn": f"host=127.0.0.1 port=5432 user=postgres password={PLAIN} dbname={pg}",
         "reader_dsns": [f"postgres://postgres:{quote(SPECIAL, safe='')}@127.0.0.1/{pg}"]},
        {"id": 3, "driver": "mysql", "table_range": [4, 5], "host": "127.0.0.1", "port": 3306,
         "name": my, "user": user, "password": "${SHARDCTL_T_PW}"},
        {"id": 4, "driver": "mysql", "table_range": [6, 7],
         "dsn": f"{user}:${{SHARDCTL_T_PW}}@tcp(127.0.0.1:3306)/{my}?charset=utf8mb4",
         "writer_dsn": f"{user}:${{SHARDCTL_T_PW}}@tcp(127.0.0.1:3306)/{my}?parseTime=true",
         "pasword": PLAIN},
    ]  # fmt: skip
    config_dir = tmp_path / "config"
    write_config(config_dir, entries, suffix_count=8)
    write_config(config_dir, [dict(entries[1], table_range=[0, 7])], env="pg", suffix_count=8)
    mysql_only = [dict(entries[2], table_range=[0, 3]), dict(entries[3], table_range=[4, 7])]
    write_config(config_dir, mysql_only, env="mysql", suffix_count=8)
    (config_dir / "schema.yaml").write_text((REPO / "config" / "schema.yaml").read_text())
    return config_dir


def test_every_command_and_format_on_real_servers(
    capsys: pytest.CaptureFixture[str], secret_config: Path, pg_databases: Callable[[], str]
) -> None:
    target = pg_databases()
    commands: list[tuple[str | Path, ...]] = [
        *(("migrate", "--dry-run", "-f", f) for f in ("table", "json")),
        *(("migrate", "--sql", "-f", f) for f in ("table", "json")),
        ("migrate", "--yes"),
        ("--debug", "migrate", "--yes", "-f", "json"),
        *(("validate", "--live", "-f", f) for f in ("text", "json", "github")),
        *(("migrate", "--check", "-f", f) for f in ("table", "json")),
        *(("status", "-f", f, "--exact", "--tables") for f in ("table", "json")),
        ("status",),
        *(("map", "-f", f) for f in ("table", "json", "csv")),
        ("route", "1", "6", "-f", "json"),
        ("move", "--dry-run", "--entry", "1", "--driver", "postgres", "--to",
         f"postgres://postgres:{PLAIN}@127.0.0.1:5432/{target}"),
        ("move", "--yes", "--entry", "1", "--driver", "postgres", "--to",
         f"host=127.0.0.1 user=postgres password={PLAIN} dbname={target}"),
    ]  # fmt: skip
    for env in ("pg", "mysql"):  # query-all wants one engine per environment
        commands += [
            ("--env", env, "migrate", "--yes"),
            *(("--env", env, "query-all", QUERY, "-f", f, "--stats")
              for f in ("table", "json", "jsonl", "csv")),
            ("--env", env, "query-all", "--writer", "SELECT id FROM users ORDER BY id LIMIT 3"),
            ("--env", env, "query-all", "--explain", QUERY),
        ]  # fmt: skip
    for args in commands:
        env = ("--env", str(args[1])) if args[0] == "--env" else ()
        run = run_cli(capsys, *args[len(env) :], *env, "--config-dir", secret_config)
        assert run.code == 0, f"{args}: {run.err}"
        assert_clean(run, " ".join(map(str, args)))
    assert "unknown-key" in run_cli(capsys, "validate", "--config-dir", secret_config).out
    moved = (secret_config / "develop" / "database.yaml").read_text()
    assert f"password={PLAIN} dbname={target}" in moved  # what the user asked for, verbatim


def test_failures_and_debug_tracebacks_on_real_servers(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pg_databases: Callable[[], str],
    mysql_user: tuple[str, str],
) -> None:
    """Port 1 (nothing listens), a wrong MariaDB password, an unknown PostgreSQL role, each
    holding a sentinel; the SQLite entry still works, so partial results are printed too."""
    monkeypatch.setenv("SHARDCTL_T_PW", WRONG)
    my, user = mysql_user
    pg = pg_databases()
    entries: list[dict[str, Any]] = [
        {"id": 1, "driver": "sqlite3", "dsn": str(tmp_path / "ok.db"), "table_range": [0, 1]},
        {"id": 2, "driver": "postgres", "table_range": [2, 3],
         "dsn": f"postgres://postgres:{PLAIN}@127.0.0.1:1/{pg}"},
        {"id": 3, "driver": "mysql", "table_range": [4, 5],
         "dsn": f"{user}:${{SHARDCTL_T_PW}}@tcp(127.0.0.1:3306)/{my}"},
        {"id": 4, "driver": "postgres", "table_range": [6, 7],
         "dsn": f"host=127.0.0.1 user=no_such_role_zz password='{SPECIAL}' dbname={pg}"},
        {"id": 5, "driver": "mysql", "table_range": [8, 9],
         "dsn": f"root:{PLAIN}@tcp(127.0.0.1:1)/{my}"},
    ]  # fmt: skip
    config_dir = tmp_path / "config"
    write_config(config_dir, entries, suffix_count=10)
    working_pg = {"id": 6, "driver": "postgres", "table_range": [8, 9],
                  "dsn": f"host=127.0.0.1 user=postgres password={PLAIN} dbname={pg}"}  # fmt: skip
    pg_only = [dict(entries[1], table_range=[0, 3]), dict(entries[3], table_range=[4, 7])]
    write_config(config_dir, [*pg_only, working_pg], env="pg", suffix_count=10)
    write_config(config_dir, [dict(entries[2], table_range=[0, 7]), entries[4]], env="mysql",
                 suffix_count=10)  # fmt: skip
    (config_dir / "schema.yaml").write_text((REPO / "config" / "schema.yaml").read_text())
    timeout = ("--lock-timeout", "5")
    commands: list[tuple[str, ...]] = [
        ("validate", "--live"),
        ("migrate", "--yes", *timeout),
        ("migrate", "--yes", "-f", "json", *timeout),
        ("migrate", "--dry-run"),
        ("migrate", "--check", "-f", "json"),
        ("status", "-f", "json"),
        ("status", "--exact", "--tables"),
        ("move", "--yes", "--entry", "1", "--to",
         f"host=127.0.0.1 port=1 user=postgres password={PLAIN} dbname=x", "--driver", "postgres"),
        ("move", "--yes", "--entry", "3", "--to", str(tmp_path / "moved.db"),
         "--driver", "sqlite3"),
    ]  # fmt: skip
    for args in commands:
        for debug in ((), ("--debug",)):
            run = run_cli(capsys, *debug, *args, "--config-dir", config_dir)
            what = " ".join((*debug, *args))
            assert run.code == 1, f"{what}: {run.err}"
            assert "127.0.0.1:1" in run.err + run.out or "move" in args, what
            assert_clean(run, what)
    seen = ""
    for env in ("pg", "mysql"):
        for args in (("query-all", QUERY), ("query-all", "--allow-partial", QUERY, "-f", "json"),
                     ("--debug", "query-all", "--timeout", "5", QUERY, "-f", "csv")):  # fmt: skip
            run = run_cli(capsys, *args, "--env", env, "--config-dir", config_dir)
            assert "127.0.0.1:1" in run.err, f"{env} {args}: {run.err}"
            assert run.code == 1 or "--allow-partial" in args, f"{env} {args}: {run.err}"
            assert_clean(run, f"{env} {args}")
            seen += run.err
    assert "Access denied" in seen and "no_such_role_zz" in seen and "Traceback" in seen
    assert "postgres://postgres:***@127.0.0.1:1/" in seen  # the database is still named
