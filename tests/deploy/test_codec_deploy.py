"""The compose stack carries the codec keys (issue 13, point 6): every Temporal client
of the stack gets them and cannot start without them, only the gateway knows the codec
operators, and the Temporal UI asks the gateway's /codec to show payloads."""

from __future__ import annotations

from tests.deploy.compose import COMPOSE_FILE, env_file, required_variables, resolved
from tests.deploy.test_compose import environment

TEMPORAL_CLIENTS = ("worker", "gateway")  # operators' CLI runs as `docker compose run worker …`


def test_every_temporal_client_has_the_keys_and_the_stack_refuses_to_start_without_them() -> None:
    assert "LIENTHONG_CODEC_KEYS" in required_variables(COMPOSE_FILE.read_text())
    services = resolved(env_file())["services"]
    for name in TEMPORAL_CLIENTS:
        env = environment(services[name])
        assert env["LIENTHONG_CODEC_KEYS"] and "LIENTHONG_CODEC_KEY_ID" in env, name
    for name in ("exporter", "migrate"):  # not Temporal clients: no keys where none are needed
        assert "LIENTHONG_CODEC_KEYS" not in environment(services[name]), name
    assert [n for n, s in services.items() if "LIENTHONG_CODEC_OPERATORS" in environment(s)] == ["gateway"]


def test_the_temporal_ui_decodes_through_the_gateway_with_the_operators_credentials() -> None:
    services = resolved(env_file())["services"]
    ui = environment(services["temporal-ui"])
    assert ui["TEMPORAL_CODEC_ENDPOINT"].endswith("/codec")
    assert ui["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    origins = environment(services["gateway"])["LIENTHONG_CODEC_UI_ORIGINS"]
    assert origins == "http://localhost:8233"  # the UI's published port by default
