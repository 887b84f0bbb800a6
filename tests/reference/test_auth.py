"""The caller of a request: keystonemiddleware's headers, or the fixed noauth caller."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg
from werkzeug.exceptions import Unauthorized

from cellrouter import exception
from cellrouter.reference.auth import Auth
from cellrouter.reference.demo import Client
from cellrouter.reference.deployment import EmbeddedDeployment

KEYSTONE = Auth()
NOAUTH = Auth("noauth", "demo", "demo-user", ("admin",))


def test_keystone_headers_make_the_context() -> None:
    ctx = KEYSTONE.caller({"X-Project-Id": "p1", "X-User-Id": "u1", "X-Roles": "reader, member"})
    assert (ctx.project_id, ctx.user_id, ctx.is_admin) == ("p1", "u1", False)
    admin = KEYSTONE.caller({"X-Project-Id": "p1", "X-Roles": "member,ADMIN"}, request_id="req-1")
    assert admin.is_admin and admin.user_id is None and admin.request_id == "req-1"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Project-Id": " "},
        {"X-User-Id": "u1", "X-Roles": "admin"},
        {"X-Project-Id": "p1", "X-Identity-Status": "Invalid"},
    ],
)
def test_keystone_without_a_valid_project_is_401(headers: dict[str, str]) -> None:
    with pytest.raises(Unauthorized):
        KEYSTONE.caller(headers)


def test_noauth_fills_in_its_caller_and_honours_headers() -> None:
    ctx = NOAUTH.caller({})
    assert (ctx.project_id, ctx.user_id, ctx.is_admin) == ("demo", "demo-user", True)
    tenant = NOAUTH.caller({"X-Project-Id": "p2", "X-User-Id": "u2"})
    assert (tenant.project_id, tenant.user_id, tenant.is_admin) == ("p2", "u2", False)
    assert "'demo'" in NOAUTH.describe() and "keystonemiddleware" in KEYSTONE.describe()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(exception.InvalidValue, match="auth_strategy"):
        Auth("basic")
    with pytest.raises(exception.InvalidValue, match="noauth_project"):
        Auth("noauth", " ")


def test_settings_come_from_reference_api(tmp_path: Path) -> None:
    path = tmp_path / "api.conf"
    path.write_text("[reference_api]\nauth_strategy = noauth\nnoauth_project = p9\n")
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)], default_config_files=[])
    assert Auth.from_conf(conf) == Auth("noauth", "p9", "demo", ("admin",))
    assert Auth.from_conf(cfg.ConfigOpts()) == KEYSTONE
    path.write_text("[reference_api]\nauth_strategy = basic\n")
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)], default_config_files=[])
    with pytest.raises(cfg.ConfigFileValueError):
        Auth.from_conf(conf)


def test_the_noauth_deployment_over_http(client: Client, embedded: EmbeddedDeployment) -> None:
    assert embedded.auth_strategy == "noauth"
    booted = client.expect(202, "POST", "/servers", {"name": "anon", "flavor": "m1.tiny"})
    assert booted["server"]["project_id"] == "demo" and booted["server"]["user_id"] == "demo"
    tenant = client.as_caller("noauth-tenant", "t1")
    mine = tenant.expect(202, "POST", "/servers", {"name": "mine", "flavor": "m1.tiny"})["server"]
    assert mine["project_id"] == "noauth-tenant"
    listed = tenant.expect(200, "GET", "/servers?limit=1000")["servers"]
    assert [s["id"] for s in listed] in ([], [mine["id"]])  # listed once built
    assert tenant.request("GET", f"/servers/{booted['server']['id']}")[0] == 404
    assert tenant.request("GET", "/cells")[0] == 403
