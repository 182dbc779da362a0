"""envoy/sidecar.yaml, the annotated sidecar bootstrap: complete, accepted, and working.

- It shows every option of the plugin configuration (every property of
  filter/config.schema.json is used somewhere in the embedded JSON) and explains
  each in its comments.
- `scopegate check --strict` accepts the embedded config.
- `envoy --mode validate` accepts the bootstrap with the wasm path substituted
  (validation loads the module and runs its on_configure: a bad field fails it).
- Run for real (addresses and ports pointed at 127.0.0.1 test servers, the auth
  cluster without TLS), it serves: public route, missing token, API key, a cookie
  HS256 token through the named Envoy route, a remote-JWKS token with the claims
  forwarded.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest
import yaml

from echo_upstream import EchoServer
from jwks_server import JwksServer
from scopegate_cli import scopegate_check
from scopegate_envoy import DEFAULT_WASM, ScopegateEnvoy, find_envoy, http_request
from scopegate_tokens import generate_private_key, public_jwk

ROOT = Path(__file__).resolve().parents[2]
SIDECAR = ROOT / "envoy" / "sidecar.yaml"
SCHEMA = ROOT / "filter" / "config.schema.json"
WASM_PLACEHOLDER = "/etc/envoy/scopegate.wasm"
# The demo credentials the file marks NOT-REAL (their digests / base64 are in it).
DEMO_API_KEY = "sg-demo-bot-key-NOT-REAL"
DEMO_HMAC_SECRET = b"scopegate-demo-hmac-secret-0123456789-NOT-REAL"


def load() -> dict[str, Any]:
    return yaml.safe_load(SIDECAR.read_text())


def hcm(doc: dict[str, Any]) -> dict[str, Any]:
    (listener,) = doc["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (f,) = chain["filters"]
    assert f["name"] == "envoy.filters.network.http_connection_manager"
    return f["typed_config"]


def wasm_config(doc: dict[str, Any]) -> dict[str, Any]:
    return hcm(doc)["http_filters"][0]["typed_config"]["config"]


def plugin_config_text(doc: dict[str, Any]) -> str:
    return wasm_config(doc)["configuration"]["value"]


def substituted(wasm: Path) -> str:
    text = SIDECAR.read_text()
    assert text.count(WASM_PLACEHOLDER) >= 1
    return text.replace(WASM_PLACEHOLDER, str(wasm))


# --------------------------------------------------------------------------- shape

def test_sidecar_is_a_bootstrap_with_scopegate_before_the_router():
    doc = load()
    filters = [f["name"] for f in hcm(doc)["http_filters"]]
    assert filters == ["envoy.filters.http.wasm", "envoy.filters.http.router"]
    w = wasm_config(doc)
    assert w["vm_config"]["runtime"] == "envoy.wasm.runtime.v8"
    assert w["vm_config"]["code"]["local"]["filename"] == WASM_PLACEHOLDER
    assert w["fail_open"] is False
    assert w["configuration"]["@type"] == "type.googleapis.com/google.protobuf.StringValue"
    assert hcm(doc)["normalize_path"] is True and hcm(doc)["merge_slashes"] is True
    clusters = {c["name"]: c for c in doc["static_resources"]["clusters"]}
    assert set(clusters) == {"local_service", "auth"}
    cfg = json.loads(plugin_config_text(doc))
    remote = [p["remote_jwks"] for p in cfg["providers"] if "remote_jwks" in p]
    assert remote and all(r["cluster"] in clusters for r in remote)
    # Rules keyed on Envoy route names name routes that exist.
    route_names = {r["name"] for vh in hcm(doc)["route_config"]["virtual_hosts"] for r in vh["routes"]}
    for rule in cfg["rules"]:
        assert set(rule["match"].get("route_names", [])) <= route_names, rule


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _used_options(schema: dict[str, Any], value: Any, node: dict[str, Any], where: str,
                  seen: dict[str, set[str]]) -> None:
    """Walk `value` along the schema, recording for each schema object (a $defs name
    or `top`) the property names the value uses."""
    if not isinstance(node, dict):  # `true`: any JSON value
        return
    if "$ref" in node:
        where = node["$ref"].rsplit("/", 1)[-1]
    node = _resolve(schema, node)
    for alt in node.get("anyOf", []) + node.get("oneOf", []):
        alt_r = _resolve(schema, alt)
        if isinstance(value, dict) and "properties" in alt_r and set(value) <= set(alt_r["properties"]):
            _used_options(schema, value, alt, where, seen)
        elif isinstance(value, list) and "items" in alt_r:
            _used_options(schema, value, alt, where, seen)
    if isinstance(value, dict) and "properties" in node:
        seen.setdefault(where, set()).update(value)
        for k, v in value.items():
            if k in node["properties"]:
                _used_options(schema, v, node["properties"][k], f"{where}.{k}", seen)
    if isinstance(value, list) and "items" in node:
        for item in value:
            _used_options(schema, item, node["items"], where, seen)


def schema_options() -> dict[str, set[str]]:
    schema = json.loads(SCHEMA.read_text())
    out = {"top": set(schema["properties"])}
    for name, d in schema["$defs"].items():
        if d.get("properties"):
            out[name] = set(d["properties"])
    return out


def test_every_filter_option_is_shown_in_the_plugin_config():
    schema = json.loads(SCHEMA.read_text())
    seen: dict[str, set[str]] = {}
    _used_options(schema, json.loads(plugin_config_text(load())), schema, "top", seen)
    missing = {k: sorted(v - seen.get(k, set())) for k, v in schema_options().items()}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"options of filter/config.schema.json not shown in envoy/sidecar.yaml: {missing}"
    # The forms of `require` and of claim conditions (not separate schema objects).
    cfg = json.loads(plugin_config_text(load()))
    requires = [r["require"] for r in cfg["rules"]] + [cfg["default_rule"]["require"]]
    assert "public" in requires and "authenticated" in requires
    assert any("all_of" in r for r in requires if isinstance(r, dict))
    assert any("any_of" in r for r in requires if isinstance(r, dict))
    assert any(isinstance(i, dict) for r in requires if isinstance(r, dict) for i in r.get("all_of", []))


def test_every_filter_option_is_explained_in_a_comment():
    comments = "\n".join(ln.split("#", 1)[1] for ln in SIDECAR.read_text().splitlines()
                         if ln.lstrip().startswith("#"))
    names = set().union(*schema_options().values())
    unexplained = sorted(n for n in names if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", comments))
    assert not unexplained, f"options without a comment in envoy/sidecar.yaml: {unexplained}"
    # No section is left as a placeholder.
    todos = re.findall(r"TODO\((\w+)\)", comments)
    assert todos == [], todos


def test_the_embedded_plugin_config_passes_scopegate_check(scopegate_cli: Path, tmp_path: Path):
    scopegate_check(scopegate_cli, plugin_config_text(load()), tmp_path, "sidecar")


def test_demo_credentials_in_the_file_are_the_marked_ones():
    cfg = json.loads(plugin_config_text(load()))
    import base64
    import hashlib

    (key,) = cfg["api_keys"]["keys"]
    assert key["sha256"] == hashlib.sha256(DEMO_API_KEY.encode()).hexdigest()
    (legacy,) = [p for p in cfg["providers"] if p["name"] == "legacy"]
    assert base64.b64decode(legacy["hmac_secrets"][0]["secret"]) == DEMO_HMAC_SECRET
    assert "NOT-REAL" in SIDECAR.read_text()


# --------------------------------------------------------------------------- Envoy --mode validate

def _validate(tmp_path: Path, text: str, name: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return subprocess.run([find_envoy(), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id",
                           "--log-level", "info"], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def wasm() -> Path:
    if not DEFAULT_WASM.is_file():
        pytest.fail(f"{DEFAULT_WASM} missing: build it with filter/scripts/build-wasm.sh")
    return DEFAULT_WASM


def test_envoy_validate_mode_accepts_the_sidecar(tmp_path: Path, wasm: Path):
    out = _validate(tmp_path, substituted(wasm), "sidecar")
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert re.search(r"^configuration '.*' OK$", out.stdout, re.M), log[-1000:]
    # Validation ran the filter's on_configure on the embedded config.
    assert "scopegate: configured 5 provider(s), 8 rule(s)" in log, log[-3000:]


def test_envoy_validate_mode_refuses_the_sidecar_with_a_bad_option(tmp_path: Path, wasm: Path):
    """The control for the test above: validation does run the plugin config."""
    text = substituted(wasm).replace('"token_cache_entries": 4096,', '"token_cache_entrys": 4096,', 1)
    out = _validate(tmp_path, text, "sidecar-bad")
    log = out.stdout + out.stderr
    assert out.returncode != 0, log[-2000:]
    assert "token_cache_entrys" in log, log[-2000:]


# --------------------------------------------------------------------------- running it

CORP_ISSUER = "https://auth.example.internal"
LEGACY_ISSUER = "https://legacy.example.internal"


def local_bootstrap(wasm: Path, upstream_port: int, auth_port: int) -> dict[str, Any]:
    """sidecar.yaml with 127.0.0.1 free ports, the test upstream and auth server
    (plain HTTP: the auth cluster's TLS socket and DNS name replaced)."""
    doc = yaml.safe_load(substituted(wasm))
    doc = copy.deepcopy(doc)
    doc["admin"]["address"]["socket_address"].update(address="127.0.0.1", port_value=0)
    (listener,) = doc["static_resources"]["listeners"]
    listener["address"]["socket_address"].update(address="127.0.0.1", port_value=0)
    for c in doc["static_resources"]["clusters"]:
        sa = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        if c["name"] == "local_service":
            sa["port_value"] = upstream_port
        else:
            sa.update(address="127.0.0.1", port_value=auth_port)
            c["type"] = "STATIC"
            c.pop("dns_lookup_family", None)
            c.pop("transport_socket", None)
    return doc


@pytest.fixture(scope="module")
def corp_key() -> Any:
    return generate_private_key("RS256")


@pytest.fixture(scope="module")
def sidecar(wasm: Path, corp_key: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScopegateEnvoy]:
    echo = EchoServer(0).start()
    auth = JwksServer().start()
    auth.serve_jwks("/.well-known/jwks.json", {"keys": [public_jwk(corp_key, "corp-1", "RS256")]})
    gw = ScopegateEnvoy(bootstrap=local_bootstrap(wasm, echo.port, auth.port), upstream_port=echo.port,
                        listener_name="svc-a-inbound", workdir=str(tmp_path_factory.mktemp("sidecar")))
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()
        auth.stop()
        echo.stop()
        print(f"\n[scopegate] Envoy log: {gw.log_path}")


def _why(gw: ScopegateEnvoy, r: Any) -> str:
    time.sleep(0.5)
    return f"status {r.status} body {r.text!r}\n" + "\n".join(gw.wasm_log_lines()[-10:])


def test_running_sidecar_public_route_and_missing_token(sidecar):
    r = http_request(sidecar.url, "GET", "/healthz")
    assert r.status == 200 and r.headers.get("x-echo") == "1", _why(sidecar, r)
    r = http_request(sidecar.url, "GET", "/orders/7")
    assert r.status == 401, _why(sidecar, r)
    assert r.json()["reason"] == "token_missing"
    assert r.headers["www-authenticate"] == 'Bearer realm="svc-a"'


def test_running_sidecar_api_key_bot(sidecar):
    r = http_request(sidecar.url, "GET", "/orders", headers={"x-api-key": DEMO_API_KEY})
    assert r.status == 200, _why(sidecar, r)
    assert "x-api-key" not in r.json()["headers"]
    r = http_request(sidecar.url, "GET", "/orders", headers={"x-api-key": "another-key"})
    assert r.status == 401 and r.json()["reason"] == "api_key_invalid", _why(sidecar, r)


def _legacy_token(sub: str = "old-app") -> str:
    now = int(time.time())
    return jwt.encode({"iss": LEGACY_ISSUER, "aud": "svc-a", "sub": sub, "iat": now, "exp": now + 300},
                      DEMO_HMAC_SECRET, algorithm="HS256", headers={"kid": "legacy-1"})


def test_running_sidecar_cookie_token_through_the_named_envoy_route(sidecar):
    cookie = {"cookie": f"session={_legacy_token()}"}
    r = http_request(sidecar.url, "GET", "/legacy/report", headers=cookie)
    assert r.status == 200, _why(sidecar, r)
    assert "session=" not in r.json()["headers"].get("cookie", "")
    # The same token elsewhere: valid, but only rule `legacy` (route legacy-api) accepts it.
    r = http_request(sidecar.url, "GET", "/orders", headers=cookie)
    assert r.status == 403 and r.json()["reason"] == "provider_not_allowed", _why(sidecar, r)


def test_running_sidecar_remote_jwks_token_with_forwarded_claims(sidecar, corp_key):
    now = int(time.time())
    claims = {"iss": CORP_ISSUER, "aud": "svc-a", "sub": "alice", "iat": now, "exp": now + 600,
              "scope": "svc-a:orders:read", "org": {"id": "acme"}}
    tok = jwt.encode(claims, corp_key, algorithm="RS256", headers={"kid": "corp-1", "typ": "at+jwt"})
    r = http_request(sidecar.url, "GET", "/orders/7", headers={"authorization": f"Bearer {tok}"}, timeout=15)
    assert r.status == 200, _why(sidecar, r)
    seen = r.json()["headers"]
    assert seen["x-user"] == "alice" and seen["x-org"] == "acme", seen
    assert "x-jwt-payload" in seen and "authorization" not in seen, seen
    # require_typ at+jwt: a plain JWT of the same key is refused.
    plain = jwt.encode(claims, corp_key, algorithm="RS256", headers={"kid": "corp-1", "typ": "JWT"})
    r = http_request(sidecar.url, "GET", "/orders/7", headers={"authorization": f"Bearer {plain}"})
    assert r.status == 401, _why(sidecar, r)
