"""URL validation (check_url) and masking of malformed URLs: no secret is ever printed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from oslo_config import cfg

import cellrouter.conf
from cellrouter import exception
from cellrouter.cells.context import RequestContext
from cellrouter.db.api_schema import cell_mappings
from cellrouter.index.cell_mapping import CellMapping, validate_transport_url
from cellrouter.url import MASK, check_url, mask_url

# -- check_url: rejected -------------------------------------------------------------

# (url, kind, secret parts that must not be printed, text the reason must hold)
REJECTED = [
    # no "://"
    ("rabbit//admin:TopSecret1@mq:5672/", "transport", ["TopSecret1"], "missing '://'"),
    ("mysql+pymysql//u:S3cr3t!p@ss@h/db", "database", ["S3cr3t", "p@ss"], "missing '://'"),
    ("admin:TopSecret1@host", "transport", ["TopSecret1"], "missing '://'"),
    ("rabbit//admin:TopSecret1/", "transport", ["TopSecret1"], "missing '://'"),
    # unencoded "@" ":" "/" "?" "#" in the password
    ("mysql+pymysql://root:S3cr3t!p@ss@127.0.0.1/db", "database", ["S3cr3t", "p@ss"], "%40"),
    ("rabbit://u:S3cr3t!p@ss@mq:5672/", "transport", ["S3cr3t", "p@ss"], "%40"),
    (
        "mysql+pymysql://u:pw/with?odd#chars@h/db",
        "database",
        ["pw/with", "with", "odd", "chars"],
        "%2F",
    ),
    ("mysql+pymysql://u:pw?odd@h/db", "database", ["pw?odd", "odd"], "%3F"),
    ("mysql+pymysql://u:pw#odd@h/db", "database", ["pw#odd", "odd"], "%23"),
    ("mysql+pymysql://u:Top:Secret1@h/db", "database", ["Top", "Secret1"], "%3A"),
    # unbalanced IPv6 brackets
    ("rabbit://u:TopSecret1@[::1/", "transport", ["TopSecret1"], "'['"),
    ("mysql+pymysql://u:TopSecret1@::1]:3306/db", "database", ["TopSecret1"], "']'"),
    # a password whose "@" is missing reads as a port
    ("mysql+pymysql://u:TopSecret1/db", "database", ["TopSecret1"], "port"),
    # templates: placeholders are opaque, the structure around them is checked
    ("{scheme}//{username}:{password}@db7/{path}", "database", [], "missing '://'"),
    ("rabbit://{username}:{password}@[{hostname}/", "transport", [], "'['"),
    ("mysql+pymysql://{username}:TopSecret1:x@{hostname}/db", "database", ["TopSecret1"], "%3A"),
]


@pytest.mark.parametrize(("url", "kind", "secrets", "reason"), REJECTED)
def test_check_url_rejects_malformed_urls_without_printing_secrets(
    url: str, kind: str, secrets: list[str], reason: str
) -> None:
    with pytest.raises(exception.InvalidURL) as err:
        check_url(url, kind)
    message = str(err.value)
    assert err.value.kwargs["kind"] == kind
    assert reason in err.value.kwargs["reason"], message
    for secret in secrets:
        assert secret not in message, message
        assert secret not in repr(err.value)


@pytest.mark.parametrize("url", [u for u, _, secrets, r in REJECTED if "%" in r])
def test_password_errors_say_to_percent_encode(url: str) -> None:
    with pytest.raises(exception.InvalidURL, match="percent-encode"):
        check_url(url, "database")


def test_check_url_rejects_an_empty_url() -> None:
    with pytest.raises(exception.InvalidURL, match="empty URL"):
        check_url("", "database")


def test_check_url_message_keeps_the_non_secret_parts() -> None:
    with pytest.raises(exception.InvalidURL) as err:
        check_url("mysql+pymysql://root:S3cr3t!p@ss@127.0.0.1/db", "database")
    assert err.value.kwargs["url"] == f"mysql+pymysql://root:{MASK}@127.0.0.1/db"
    assert str(err.value).startswith(f"Invalid database URL mysql+pymysql://root:{MASK}@127.0.0.1")


# -- check_url: accepted -------------------------------------------------------------

VALID = [
    "sqlite://",
    "sqlite:///rel.db",
    "sqlite:////abs/a@b.db",
    "mysql+pymysql://root@127.0.0.1:3306/db?ssl_disabled=true&charset=utf8mb4",
    "mysql+pymysql://h/db?unix_socket=/run/a@b.sock",
    "mysql+pymysql://root:p%40ss@127.0.0.1/db",
    "mysql+pymysql://u:pw%2Fwith%3Fodd%23chars@h/db",
    "postgresql+psycopg://u:p%40ss@[::1]:5432/db",
    "rabbit://u:p@h1:5672,u2:p2@h2:5672/vhost",
    "rabbit://h1:5672,h2/",
    "fake://",
    "fake://cell1/",
    "none:///",
    "{scheme}://{username}:{password}@db7:{port}/{path}?{query}",
    "mysql+pymysql://{username}:{password}@{hostname}/cell1",
    "rabbit://{username1}:{password1}@{hostname1}:{port1},{username2}:{password2}@{hostname2}/c",
]


@pytest.mark.parametrize("kind", ["database", "transport"])
@pytest.mark.parametrize("url", VALID)
def test_check_url_accepts_well_formed_urls_and_templates(url: str, kind: str) -> None:
    check_url(url, kind)


# -- mask_url without "://" and in driver messages -----------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("rabbit//admin:TopSecret1@mq:5672/", f"rabbit//admin:{MASK}@mq:5672/"),
        ("mysql+pymysql//u:pw@h/db", f"mysql+pymysql//u:{MASK}@h/db"),
        ("mysql+pymysql//u:S3cr3t!p@ss@h/db", f"mysql+pymysql//u:{MASK}@h/db"),
        ("cannot reach admin:TopSecret1@mq now", f"cannot reach admin:{MASK}@mq now"),
        ("bad url 'admin:TopSecret1@mq'", f"bad url 'admin:{MASK}@mq'"),
        (
            "url='mysql://h/db',cred='admin:TopSecret1@mq'",
            f"url='mysql://h/db',cred='admin:{MASK}@mq'",
        ),
        (
            "from mysql://a:pw1@h1/db to rabbit//b:TopSecret1@h2/",
            f"from mysql://a:{MASK}@h1/db to rabbit//b:{MASK}@h2/",
        ),
    ],
)
def test_mask_url_hides_userinfo_without_scheme_separator(text: str, masked: str) -> None:
    assert mask_url(text) == masked


@pytest.mark.parametrize(
    ("message", "masked"),
    [
        (
            "Can't connect to MySQL server on 'SECRETTAIL@127.0.0.1' "
            "([Errno -2] Name or service not known)",
            f"Can't connect to MySQL server on '{MASK}@127.0.0.1' "
            "([Errno -2] Name or service not known)",
        ),
        (
            'could not translate host name "SECRET@TAIL@db.example" to address',
            f'could not translate host name "{MASK}@db.example" to address',
        ),
    ],
)
def test_mask_url_hides_a_password_tail_a_driver_prints_as_host(message: str, masked: str) -> None:
    assert mask_url(message) == masked


def test_mask_url_keeps_masked_multi_host_urls_intact() -> None:
    url = "rabbit://a:TopSecret1@mq1:5672,b:TopSecret1@mq2:5672/vhost"
    assert mask_url(url) == f"rabbit://a:{MASK}@mq1:5672,b:{MASK}@mq2:5672/vhost"


class _Untouchable:
    def sub(self, *args: object, **kwargs: object) -> str:
        raise AssertionError("mask_url scanned a text without '@' for userinfo")


def test_mask_url_fast_path_skips_userinfo_scans_without_at_sign(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cellrouter.url

    for name in ("_URL_RE", "_USERINFO_RE", "_QUOTED_TAIL_RE"):
        monkeypatch.setattr(cellrouter.url, name, _Untouchable())
    text = "rabbit//mq:5672/ and 'mysql://h:1/db' " + "x" * 10_000
    assert mask_url(text) is text
    assert mask_url("mysql://h/db?password=pw") == f"mysql://h/db?password={MASK}"


# -- cell mappings -------------------------------------------------------------------


def _rows(api_db: str) -> int:
    engine = sa.create_engine(api_db)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(cell_mappings)).scalar())
    finally:
        engine.dispose()


def test_validate_transport_url_checks_structure_and_driver() -> None:
    validate_transport_url("fake://cell1/")
    validate_transport_url("none:///")
    with pytest.raises(exception.InvalidURL, match=r"'\['") as err:
        validate_transport_url("rabbit://u:TopSecret1@[::1/")
    assert "TopSecret1" not in str(err.value)
    with pytest.raises(exception.InvalidURL, match="kafkax"):
        validate_transport_url("kafkax://h/")


@pytest.mark.parametrize(
    ("transport_url", "reason"),
    [("rabbit://u:TopSecret1@[::1/", r"'\['"), ("kafkax://h/", "unknown transport driver")],
)
def test_create_cell_with_a_bad_transport_url_stores_nothing(
    api_db: str, admin_ctx: RequestContext, transport_url: str, reason: str
) -> None:
    with pytest.raises(exception.InvalidURL, match=reason) as err:
        CellMapping.create(
            admin_ctx, name="bad", database_connection="sqlite://", transport_url=transport_url
        )
    assert "TopSecret1" not in str(err.value)
    assert CellMapping.get_all(admin_ctx) == []
    assert _rows(api_db) == 0


def test_create_cell_with_a_malformed_database_url_stores_nothing(
    api_db: str, admin_ctx: RequestContext
) -> None:
    with pytest.raises(exception.InvalidURL, match="%40") as err:
        CellMapping.create(
            admin_ctx,
            database_connection="mysql+pymysql://root:S3cr3t!p@ss@127.0.0.1/db",
            transport_url="fake://c/",
        )
    assert "S3cr3t" not in str(err.value) and "p@ss" not in str(err.value)
    assert _rows(api_db) == 0


def test_create_cell_checks_an_unfillable_templates_structure_first(
    api_db: str, admin_ctx: RequestContext
) -> None:
    # No [database]/connection: the template cannot be filled, its structure is still checked.
    with pytest.raises(exception.InvalidURL, match=r"'\['"):
        CellMapping.create(
            admin_ctx,
            database_connection="mysql+pymysql://{username}:{password}@[{hostname}/db",
            transport_url="fake://c/",
        )
    with pytest.raises(exception.InvalidURL, match="missing '://'"):
        CellMapping.create(
            admin_ctx,
            database_connection="sqlite://",
            transport_url="{scheme}//{username}:{password}@mq/",
        )
    assert _rows(api_db) == 0


def test_update_cell_with_a_bad_url_changes_nothing(api_db: str, admin_ctx: RequestContext) -> None:
    cell = CellMapping.create(
        admin_ctx, name="c", database_connection="sqlite://", transport_url="fake://c/"
    )
    for changes in (
        {"transport_url": "rabbit://u:TopSecret1@[::1/"},
        {"transport_url": "kafkax://h/"},
        {"database_connection": "mysql+pymysql://u:pw/with?odd#chars@h/db", "name": "x"},
        {"transport_url": None},
    ):
        with pytest.raises(exception.InvalidURL) as err:
            cell.update(admin_ctx, **changes)  # type: ignore[arg-type]
        for secret in ("TopSecret1", "pw/with", "odd#chars"):
            assert secret not in str(err.value)
    reread = CellMapping.get_by_uuid(admin_ctx, cell.uuid)
    assert (reread.name, reread.database_connection, reread.transport_url) == (
        "c",
        "sqlite://",
        "fake://c/",
    )
    assert reread.updated_at is None


# -- configuration -------------------------------------------------------------------


@pytest.fixture
def restore() -> Iterator[None]:
    try:
        yield
    finally:
        cellrouter.conf.setup([], default_config_files=[])


@pytest.mark.parametrize(
    ("section", "option", "value", "secrets"),
    [
        (
            "api_database",
            "[api_database]/connection",
            "mysql+pymysql://root:S3cr3t!p@ss@127.0.0.1/api",
            ["S3cr3t", "p@ss"],
        ),
        (
            "database",
            "[database]/connection",
            "mysql+pymysql://u:pw/with?odd#chars@h/db",
            ["pw/with", "odd", "chars"],
        ),
        ("DEFAULT", "[DEFAULT]/transport_url", "rabbit//admin:TopSecret1@mq:5672/", ["TopSecret1"]),
    ],
)
def test_setup_rejects_a_malformed_url_naming_the_option(
    tmp_path: Path, restore: None, section: str, option: str, value: str, secrets: list[str]
) -> None:
    key = "transport_url" if section == "DEFAULT" else "connection"
    path = tmp_path / "bad.conf"
    path.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(exception.ConfigurationError) as err:
        cellrouter.conf.setup(["--config-file", str(path)])
    message = str(err.value)
    assert f"{option}: Invalid " in message, message
    for secret in secrets:
        assert secret not in message, message


def test_setup_accepts_well_formed_urls_and_checks_transport_syntax_only(
    tmp_path: Path, restore: None
) -> None:
    path = tmp_path / "good.conf"
    path.write_text(
        "[DEFAULT]\ntransport_url = kafkax://u:p%40ss@mq:9092/\n"
        "[api_database]\nconnection = sqlite:////srv/a@b.db\n"
        "[database]\nconnection = postgresql+psycopg://u:p%40ss@[::1]:5432/db\n"
    )
    conf: cfg.ConfigOpts = cellrouter.conf.setup(["--config-file", str(path)])
    assert conf.transport_url == "kafkax://u:p%40ss@mq:9092/"  # unknown driver: not checked here
    assert conf.api_database.connection == "sqlite:////srv/a@b.db"
