"""URL templates (format_url, url_parts) and secret masking (mask_url, reprs)."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from cellrouter import exception
from cellrouter.cells.context import RequestContext, target_cell
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.url import MASK, format_url, mask_url, url_parts

MULTI = "rabbit://alice:pw-one@mq1.example:5671,bob:pw-two@mq2.example:5672/vhost?ssl=1"


# -- url_parts -----------------------------------------------------------------------


def test_url_parts_single_host() -> None:
    parts = url_parts("mysql+pymysql://nova:s3cret@db.example:3306/nova_cell1?charset=utf8#frag")
    assert parts == {
        "scheme": "mysql+pymysql",
        "username": "nova",
        "password": "s3cret",
        "hostname": "db.example",
        "port": "3306",
        "path": "nova_cell1",
        "query": "charset=utf8",
        "fragment": "frag",
    }


def test_url_parts_absent_parts_are_empty_strings() -> None:
    parts = url_parts("sqlite:///")
    assert parts["username"] == parts["password"] == parts["hostname"] == parts["port"] == ""
    assert parts["path"] == ""
    assert "username1" not in parts  # single host: no numbered fields


def test_url_parts_multi_host_numbers_every_host_and_keeps_the_first_unnumbered() -> None:
    parts = url_parts(MULTI)
    assert (parts["username"], parts["password"], parts["hostname"], parts["port"]) == (
        "alice",
        "pw-one",
        "mq1.example",
        "5671",
    )
    assert (parts["username1"], parts["password1"], parts["hostname1"], parts["port1"]) == (
        "alice",
        "pw-one",
        "mq1.example",
        "5671",
    )
    assert (parts["username2"], parts["password2"], parts["hostname2"], parts["port2"]) == (
        "bob",
        "pw-two",
        "mq2.example",
        "5672",
    )
    assert "username3" not in parts
    assert parts["path"] == "vhost"
    assert parts["query"] == "ssl=1"


def test_url_parts_ipv6_host() -> None:
    parts = url_parts("mysql://u:p@[::1]:3307/db")
    assert parts["hostname"] == "::1"
    assert parts["port"] == "3307"


def test_url_parts_password_without_user_and_user_without_password() -> None:
    assert url_parts("redis://:only-pw@h/0")["password"] == "only-pw"
    only_user = url_parts("mysql://root@h/db")
    assert only_user["username"] == "root"
    assert only_user["password"] == ""


# -- format_url ----------------------------------------------------------------------


def test_format_url_without_placeholders_is_returned_unchanged_even_without_default() -> None:
    url = "mysql+pymysql://u:p@db7/cell7"
    assert format_url(url, None) == url
    assert format_url(url, "postgresql://x@y/z") == url


def test_format_url_fills_every_single_host_field() -> None:
    default = "mysql+pymysql://nova:s3cret@db.example:3306/nova?charset=utf8mb4"
    template = "{scheme}://{username}:{password}@{hostname}:{port}/{path}_cell2?{query}"
    assert format_url(template, default) == (
        "mysql+pymysql://nova:s3cret@db.example:3306/nova_cell2?charset=utf8mb4"
    )


def test_format_url_keeps_literal_parts_and_replaces_only_fields() -> None:
    default = "mysql+pymysql://nova:s3cret@db.example/nova"
    assert (
        format_url("mysql+pymysql://{username}:{password}@db7/{path}_cell7", default)
        == "mysql+pymysql://nova:s3cret@db7/nova_cell7"
    )


def test_format_url_multi_host_fields() -> None:
    template = (
        "rabbit://{username1}:{password1}@{hostname1}:{port1},"
        "{username2}:{password2}@{hostname2}:{port2}/cell3"
    )
    assert format_url(template, MULTI, "transport") == (
        "rabbit://alice:pw-one@mq1.example:5671,bob:pw-two@mq2.example:5672/cell3"
    )


def test_format_url_unknown_field_is_invalid_and_names_the_field_but_no_secret() -> None:
    default = "mysql+pymysql://nova:s3cret@db/nova"
    with pytest.raises(exception.InvalidURL) as err:
        format_url("mysql+pymysql://{username}:hunter2@{dbhost}/{path}", default)
    message = str(err.value)
    assert "{dbhost}" in message
    assert "hunter2" not in message
    assert "s3cret" not in message
    assert err.value.kwargs["kind"] == "database"


def test_format_url_numbered_field_of_a_single_host_default_is_unknown() -> None:
    with pytest.raises(exception.InvalidURL, match=r"\{hostname2\}"):
        format_url("rabbit://{hostname1},{hostname2}/", "rabbit://u:p@mq1/", "transport")


@pytest.mark.parametrize(
    ("kind", "option"),
    [("database", "[database]/connection"), ("transport", "[DEFAULT]/transport_url")],
)
@pytest.mark.parametrize("default", [None, ""])
def test_format_url_template_without_configured_default_is_invalid(
    kind: str, option: str, default: str | None
) -> None:
    with pytest.raises(exception.InvalidURL) as err:
        format_url("mysql://{username}:{password}@db7/{path}", default, kind)
    assert option in str(err.value)
    assert err.value.kwargs["kind"] == kind


def test_format_url_malformed_template_is_invalid() -> None:
    with pytest.raises(exception.InvalidURL):
        format_url("mysql://{username@db/x", "mysql://u:p@h/d")


# -- mask_url ------------------------------------------------------------------------


def test_mask_url_hides_the_password_and_keeps_everything_else() -> None:
    assert mask_url("mysql+pymysql://nova:s3cret@db:3306/nova?charset=utf8") == (
        f"mysql+pymysql://nova:{MASK}@db:3306/nova?charset=utf8"
    )


def test_mask_url_every_host_of_a_multi_host_url() -> None:
    masked = mask_url(MULTI)
    assert "pw-one" not in masked
    assert "pw-two" not in masked
    assert masked == (
        f"rabbit://alice:{MASK}@mq1.example:5671,bob:{MASK}@mq2.example:5672/vhost?ssl=1"
    )


@pytest.mark.parametrize(
    "param", ["password", "PASSWORD", "db_password", "passwd", "pwd", "secret", "token", "api_key"]
)
def test_mask_url_query_string_secrets(param: str) -> None:
    masked = mask_url(f"mysql+pymysql://nova@db/nova?charset=utf8&{param}=topsecret&x=1")
    assert "topsecret" not in masked
    assert f"{param}={MASK}" in masked
    assert masked.endswith("&x=1")
    assert "charset=utf8" in masked


def test_mask_url_password_containing_at_sign() -> None:
    masked = mask_url("mysql://nova:p@ss@db/nova")
    assert masked == f"mysql://nova:{MASK}@db/nova"


def test_mask_url_every_url_in_a_log_line() -> None:
    line = "moving from mysql://a:pw1@h1/db to rabbit://b:pw2@h2/ with password=pw3"
    masked = mask_url(line)
    for secret in ("pw1", "pw2", "pw3"):
        assert secret not in masked
    assert masked.startswith("moving from mysql://a:****@h1/db to rabbit://b:****@h2/")


@pytest.mark.parametrize(
    "url",
    ["sqlite:////var/lib/cell1.db", "mysql://root@db/nova", "none:///", "fake://cell1/", "plain"],
)
def test_mask_url_leaves_urls_without_secrets_alone(url: str) -> None:
    assert mask_url(url) == url


@pytest.mark.parametrize("value", [None, ""])
def test_mask_url_empty(value: str | None) -> None:
    assert mask_url(value) == ""


@pytest.mark.parametrize("password", ["pa/ss", "pa?ss", "pa#ss"])
def test_mask_url_password_with_url_delimiters(password: str) -> None:
    masked = mask_url(f"mysql+pymysql://nova:{password}@db/nova")
    assert password not in masked


# -- reprs never show a password -----------------------------------------------------


def test_cell_mapping_repr_and_str_never_show_passwords(
    conf: cfg.ConfigOpts, api_db: str, admin_ctx: RequestContext
) -> None:
    cell = CellMapping.create(
        admin_ctx,
        name="secretive",
        database_connection="mysql+pymysql://nova:db-pw-1@db1/nova?password=db-pw-2",
        transport_url="rabbit://u1:mq-pw-1@mq1:5672,u2:mq-pw-2@mq2:5672/",
    )
    host = HostMapping.create(admin_ctx, host="compute-1", cell_mapping=cell)
    mapping = InstanceMapping.create(
        admin_ctx,
        instance_uuid="0f4b2d9e-0000-4000-8000-000000000001",
        project_id="p",
        cell_mapping=cell,
    )
    reread = CellMapping.get_by_uuid(admin_ctx, cell.uuid)
    for text in (repr(cell), str(cell), repr(reread), repr(host), repr(mapping), f"{[cell]}"):
        for secret in ("db-pw-1", "db-pw-2", "mq-pw-1", "mq-pw-2"):
            assert secret not in text, text
    # ... while still saying which cell it is and where.
    assert "secretive" in repr(cell)
    assert "db1" in repr(cell)
    assert "mq2" in repr(cell)


def test_invalid_url_error_is_masked(
    conf: cfg.ConfigOpts, api_db: str, admin_ctx: RequestContext
) -> None:
    with pytest.raises(exception.InvalidURL) as err:
        CellMapping.create(
            admin_ctx,
            database_connection="nosuchdialect://nova:db-pw@db1/nova",
            transport_url="fake://x/",
        )
    assert "db-pw" not in str(err.value)
    assert "db1" in str(err.value)


def test_creating_a_cell_whose_template_cannot_be_formatted_is_invalid(
    conf: cfg.ConfigOpts, api_db: str, admin_ctx: RequestContext
) -> None:
    # No [database]/connection here: nothing to fill the template from.
    with pytest.raises(exception.InvalidURL, match="no configured"):
        CellMapping.create(
            admin_ctx,
            database_connection="mysql+pymysql://{username}:{password}@db7/{path}",
            transport_url="fake://t/",
        )
    assert CellMapping.get_all(admin_ctx) == []


def test_targeting_a_cell_whose_template_cannot_be_formatted_is_invalid(
    conf: cfg.ConfigOpts, api_db: str, admin_ctx: RequestContext
) -> None:
    conf.set_override("connection", "mysql+pymysql://nova:s3cret@db1/nova", group="database")
    created = CellMapping.create(
        admin_ctx,
        database_connection="mysql+pymysql://{username}:{password}@db7/{path}",
        transport_url="fake://t/",
    )
    # Another process, configured without [database]/connection, reads it:
    conf.clear_override("connection", group="database")
    cell = CellMapping.get_by_uuid(admin_ctx, created.uuid)
    assert cell.database_connection == cell.database_connection_template  # listable
    with pytest.raises(exception.InvalidURL) as err:
        with target_cell(admin_ctx, cell) as cctx:
            cctx.engine  # noqa: B018
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize(
    "password", ["Tr0ub'4dor", 'a"b', "a<b>c", "pa ss", "p,q", "a@b", "x{y}z", "p%40w"]
)
def test_mask_url_hides_passwords_with_any_character(password: str) -> None:
    for url in (
        f"mysql+pymysql://nova:{password}@db5/nova?charset=utf8",
        f"rabbit://nova:{password}@mq5:5672/vhost",
    ):
        masked = mask_url(url)
        assert password not in masked, masked
        assert masked.startswith(url.split("://")[0] + "://nova:")
    # and inside free text (log lines, error messages)
    line = f"cannot reach rabbit://nova:{password}@mq5/v: refused"
    assert password.split(" ")[0] not in mask_url(line).replace("nova:", "")
