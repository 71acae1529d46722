"""``flowmill quotas`` as a user runs it."""

from __future__ import annotations

from tests.acceptance.conftest import Flowmill


def test_cli_quotas_set_show_and_clear(flowmill: Flowmill) -> None:
    created = flowmill("tenants", "create", "Acme", "--id", "acme")
    assert created.code == 0, created.stderr
    shown = flowmill("quotas", "show", "acme", "--json")
    assert shown.code == 0, shown.stderr
    assert shown.json()["overrides"] == {}
    assert shown.json()["effective"]["api_requests_per_minute"] == 0

    changed = flowmill("quotas", "set", "acme", "api_requests_per_minute=600", "concurrent_steps=4")
    assert changed.code == 0, changed.stderr
    assert "this tenant" in changed.stdout
    shown = flowmill("quotas", "show", "acme", "--json").json()
    assert shown["overrides"] == {"api_requests_per_minute": 600, "concurrent_steps": 4}

    cleared = flowmill("quotas", "set", "acme", "concurrent_steps=default")
    assert cleared.code == 0
    shown = flowmill(
        "quotas", "show", "acme", "--json", extra_env={"FLOWMILL_TENANT_CONCURRENT_STEPS": "8"}
    ).json()
    assert shown["overrides"] == {"api_requests_per_minute": 600}
    assert shown["effective"]["concurrent_steps"] == 8  # the default now applies

    capped = flowmill("quotas", "set", "acme", "concurrent_executions=5")
    assert capped.code == 0, capped.stderr
    shown = flowmill("quotas", "show", "acme", "--json").json()
    assert shown["effective"]["concurrent_executions"] == 5


def test_cli_quotas_errors_say_what_to_do(flowmill: Flowmill) -> None:
    flowmill("tenants", "create", "Acme", "--id", "acme")
    bad_name = flowmill("quotas", "set", "acme", "api_request_per_minute=5")
    assert bad_name.code == 2
    assert "names: api_requests_per_minute" in bad_name.stderr
    bad_value = flowmill("quotas", "set", "acme", "concurrent_steps=-1")
    assert bad_value.code == 2 and "whole number" in bad_value.stderr
    missing = flowmill("quotas", "show", "nobody")
    assert missing.code == 2 and "flowmill tenants list" in missing.stderr
