"""A sentinel password, written every way a config can hold one, never shows in what the core
produces: problems, labels, redacted DSNs, str/repr of the model; scrub() removes it from text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shardctl.errors import ConfigError
from shardctl.redact import scrub
from shardctl.validate import load_topology, validate_env

PLAIN = "Zq7SentinelPw"
SPECIAL = "Zq7 s@nt:n/l'x\"y"  # spaces, '@', ':', '/', both quotes
URL_SPECIAL = quote(SPECIAL, safe="")
LIBPQ_SPECIAL = SPECIAL.replace("\\", "\\\\").replace("'", "\\'")
ENVIRON = {"PW": SPECIAL, "WHOLE": f"host=db9 user=app password={PLAIN} dbname=app"}


def entry(entry_id: int, lo: int, hi: int, **fields: Any) -> dict[str, Any]:
    return {"id": entry_id, "driver": "postgres", **fields, "table_range": [lo, hi]}


# Each layout holds the sentinels in a different place; every one of them also carries problems
# whose messages quote the entry (mismatch warnings show both DSNs, unknown keys, bad values).
LAYOUTS: dict[str, list[dict[str, Any]]] = {
    "libpq": [
        entry(1, 0, 1, dsn=f"host=db1 user=app password={PLAIN} dbname=a",
              writer_dsn=f"host=db2 user=app password='{LIBPQ_SPECIAL}' dbname=a",
              reader_dsns=[f"host=r1 user=ro password={PLAIN} dbname=a"],
              max_connections=1, max_idle_connections=5, pasword=PLAIN),
        entry(2, 2, 7, dsn=f"dbname=a password='{LIBPQ_SPECIAL}' host=db3 user=app"),
    ],
    "urls": [
        entry(1, 0, 3, dsn=f"postgres://app:{PLAIN}@db1/a",
              writer_dsn=f"postgresql+psycopg://app:{URL_SPECIAL}@[::1]:5433/a"),
        entry(2, 4, 6, dsn=f"postgres://app@db2/a?sslmode=require&password={PLAIN}"),
        entry(3, 7, 7, dsn=f"postgres://:{PLAIN}@db3/a"),
    ],
    "mysql": [
        {"id": 1, "driver": "mysql", "table_range": [0, 3],
         "dsn": f"app:{PLAIN}@tcp(db1:3306)/a?charset=utf8mb4",
         "writer_dsn": "app:${PW}@tcp(db2:3306)/a?parseTime=true",
         "reader_dsns": [f"ro:{PLAIN}@unix(/run/mysqld.sock)/a", f"ro:{PLAIN}@/a"]},
        {"id": 2, "driver": "mysql", "table_range": [4, 7],
         "dsn": f"mysql://app:{URL_SPECIAL}@db3/a", "connection_max_lifetime": "soon"},
    ],
    "fields_and_variables": [
        entry(1, 0, 3, host="db1", name="a", user="app", password=PLAIN, port=70000),
        entry(2, 4, 5, dsn="host=db2 user=app dbname=a", password="${PW}"),
        entry(3, 6, 7, dsn="${WHOLE}", reader_dsns=["host=r user=app password=${PW} dbname=a"]),
        entry(3, 6, 7, dsn="postgres://app:${PW}@db4/a"),
    ],
    "broken_dsns": [
        entry(1, 0, 1, dsn=f"host=db1 password=my {PLAIN} dbname=a"),
        entry(2, 2, 3, dsn=f"host=db1 password='{PLAIN} dbname=a"),
        entry(3, 4, 5, dsn=f"postgres://app:{PLAIN[:5]}/{PLAIN[5:]}@db1/a"),
        entry(4, 6, 6, dsn=f"postgres://app:{PLAIN[:5]}#{PLAIN[5:]}@db1:5432/a"),
        {"id": 5, "driver": "mysql", "table_range": [7, 7], "dsn": f"app:{PLAIN}(x/a"},
    ],
}  # fmt: skip


def _write(config_dir: Path, entries: list[dict[str, Any]], with_master: bool = True) -> Path:
    groups: dict[str, Any] = {
        "sharding": {"tables": [{"name": "users", "suffix_count": 8}], "databases": entries}
    }
    if with_master:
        groups["master"] = [
            {"id": "main", "driver": "postgres", "host": "m", "name": "app", "user": "app",
             "password": PLAIN, "reader_dsns": [f"postgres://ro:{PLAIN}@m2/app"]},
        ]  # fmt: skip
    path = config_dir / "develop" / "database.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"database": {"groups": groups}}, allow_unicode=True))
    return path


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in ("Zq7", "s@nt:n/l", PLAIN[5:]):  # every sentinel starts with Zq7
            assert secret not in text, text


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("connecting", [False, True])
def test_problems_never_contain_a_password(tmp_path: Path, layout: str, connecting: bool) -> None:
    path = _write(tmp_path / "config", LAYOUTS[layout])
    assert PLAIN in path.read_text()
    report = validate_env(tmp_path / "config", "develop", connecting=connecting, environ=ENVIRON)
    assert report.problems  # every layout provokes messages about the entries holding secrets
    for problem in report.problems:
        assert_clean(problem.message, str(problem), repr(problem), json.dumps(problem.as_dict()))
    assert_clean(repr(report))
    if not report.ok:
        with pytest.raises(ConfigError) as raised:
            load_topology(tmp_path / "config", "develop", environ=ENVIRON)
        assert_clean(str(raised.value), repr(raised.value))


def test_mismatch_warning_shows_both_dsns_redacted(tmp_path: Path) -> None:
    _write(tmp_path / "config", LAYOUTS["urls"], with_master=False)
    report = validate_env(tmp_path / "config", "develop", environ=ENVIRON)
    (warning,) = [p for p in report.problems if p.code == "dsn-writer-mismatch"]
    assert "postgres://app:***@db1:5432/a" in warning.message
    assert "postgres://app:***@::1:5433/a" in warning.message


@pytest.mark.parametrize("layout", ["urls", "mysql", "fields_and_variables"])
def test_a_loaded_topology_shows_no_password_anywhere(tmp_path: Path, layout: str) -> None:
    entries = [dict(e) for e in LAYOUTS[layout]]
    for e in entries:  # keep only what makes the file valid; the secrets stay
        e.pop("connection_max_lifetime", None)
        e.pop("port", None)
    if layout == "fields_and_variables":
        entries = entries[:3]
    _write(tmp_path / "config", entries)
    topology, warnings = load_topology(tmp_path / "config", "develop", environ=ENVIRON)
    shown = [repr(topology), str(topology), *(repr(w) for w in warnings)]
    for database in topology.databases:
        shown += [database.label, database.identity, repr(database)]
    for item in (*topology.entries, *topology.master):
        shown += [repr(item), item.writer.redacted(), *(r.redacted() for r in item.readers)]
        shown += [repr(r) for r in item.readers]
    for number in range(topology.suffix_count):
        shown.append(repr(topology.route(number)))
    assert_clean(*shown)
    passwords = {d.password for e in (*topology.entries, *topology.master)
                 for d in (e.writer, *e.readers)} - {None}  # fmt: skip
    assert passwords & {PLAIN, SPECIAL}  # the secrets were really parsed…
    assert passwords <= topology.secrets  # …and registered for scrubbing
    assert_clean(scrub(" ".join(f"failed for {p}" for p in passwords), topology.secrets))


# -- scrub --------------------------------------------------------------------------------------

SHAPES = [
    "host=db1 password={pw} dbname=x",
    "host=db1 PASSWORD = {pw} dbname=x",
    "password: {pw}",
    "DB_PASSWORD={pw}",
    "export SHARD_PASSWORD_1={pw}",
    "postgres://app:{pw}@db1:5432/x",
    "postgresql+psycopg://app:{pw}@[::1]:5433/x?sslmode=require",
    "mysql://root:{pw}@db1/x",
    "app:{pw}@tcp(db1:3306)/x?charset=utf8mb4&parseTime=true",
    "dsn=app:{pw}@tcp(db1)/x",
    "app:{pw}@unix(/run/mysqld.sock)/x",
    "root:{pw}@/x",
    "postgres://app@db1/x?sslmode=require&password={pw}&connect_timeout=5",
    "Traceback: connect(dsn='host=db1 password={pw} dbname=x')",
]
QUOTED_SHAPES = [
    "host=db1 password='{libpq}' dbname=x",
    'password: "{json}"',
    "password: '{yaml}'",
    '{{"password": "{json}", "user": "app"}}',
    "{{'password': '{libpq}'}}",
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pw", [PLAIN, "Zq7p@ss:w0rd", "Zq7" + "x" * 60])
def test_scrub_removes_password_shaped_values_without_knowing_them(shape: str, pw: str) -> None:
    cleaned = scrub(shape.format(pw=pw))
    assert "Zq7" not in cleaned and pw[-4:] not in cleaned  # neither head nor tail survives
    assert "***" in cleaned


@pytest.mark.parametrize("shape", QUOTED_SHAPES)
def test_scrub_removes_quoted_values_with_spaces_and_quotes(shape: str) -> None:
    text = shape.format(
        libpq=LIBPQ_SPECIAL, json=json.dumps(SPECIAL)[1:-1], yaml=SPECIAL.replace("'", "''")
    )
    assert "***" in scrub(text)
    for fragment in ("Zq7", "s@nt", "n/l"):
        assert fragment not in scrub(text)


def test_scrub_keeps_what_is_not_a_password() -> None:
    for text in (
        "Environment variable DB_PASSWORD is not set. Export DB_PASSWORD "
        "(or write ${DB_PASSWORD:-default}).",
        "'password' of entry '1' must be a string, not a list.",
        "postgres://app@db1:5432/x",
        "app@tcp(db1:3306)/x",
        'FATAL: password authentication failed for user "app"',
    ):
        assert scrub(text) == text


def test_scrub_removes_known_secrets_in_every_encoding() -> None:
    text = f"raw {SPECIAL} | url {URL_SPECIAL} | json {json.dumps(SPECIAL)} | end"
    cleaned = scrub(text, {SPECIAL})
    assert_clean(cleaned)
    assert cleaned.startswith("raw *** | url *** | json ") and cleaned.endswith(" | end")


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(min_size=4, max_size=24).filter(lambda s: "*" not in s),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_a_known_secret_never_survives_scrub(secret: str, before: str, after: str) -> None:
    assert secret not in scrub(f"{before}{secret}{after}{secret}", [secret, "other"])


PASSWORD_CHARS = st.characters(blacklist_categories=("Cs", "Zs", "Cc", "Zl", "Zp"),
                               blacklist_characters="\"',;&}*\\/#?")  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(rest=st.text(PASSWORD_CHARS, min_size=1, max_size=20), shape=st.sampled_from(SHAPES))
def test_scrub_removes_any_unquoted_password_shape(rest: str, shape: str) -> None:
    pw = "Zq7" + rest + "Qz9"
    cleaned = scrub(shape.format(pw=pw))
    assert "Zq7" not in cleaned and "Qz9" not in cleaned, cleaned
