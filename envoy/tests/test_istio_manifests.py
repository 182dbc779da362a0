"""The Istio manifests in envoy/istio/: their shape against the published CRDs,
and the scopegate config embedded in each passes `scopegate check`.

No cluster is needed: the manifests are parsed with PyYAML, checked against the
field names below (copied from the CRDs), and their plugin configs are given to
the CLI, which runs the filter's own config compiler.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from scopegate_cli import scopegate_check

ROOT = Path(__file__).resolve().parents[2]
ISTIO = ROOT / "envoy" / "istio"

# Field names and enums of the published CRDs, from Istio's generated CRD bundle
# istio/istio manifests/charts/base/files/crd-all.gen.yaml (the copy of
# istio/api kubernetes/customresourcedefinitions.gen.yaml that Istio installs):
#   wasmplugins.extensions.istio.io, version v1alpha1, spec.properties / spec.required
#   envoyfilters.networking.istio.io, version v1alpha3, spec.properties
WASMPLUGIN_API = ("extensions.istio.io/v1alpha1", "WasmPlugin")
WASMPLUGIN_SPEC_FIELDS = {
    "failStrategy", "imagePullPolicy", "imagePullSecret", "match", "phase",
    "pluginConfig", "pluginName", "priority", "selector", "sha256", "targetRef",
    "targetRefs", "type", "url", "verificationKey", "vmConfig",
}
WASMPLUGIN_SPEC_REQUIRED = {"url"}
WASMPLUGIN_SELECTOR_FIELDS = {"matchLabels"}
WASMPLUGIN_PHASES = {"UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"}
WASMPLUGIN_FAIL_STRATEGIES = {"FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"}
WASMPLUGIN_PULL_POLICIES = {"UNSPECIFIED_POLICY", "IfNotPresent", "Always"}
WASMPLUGIN_TYPES = {"UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK"}
WASMPLUGIN_MATCH_FIELDS = {"mode", "ports"}
WASMPLUGIN_MATCH_MODES = {"UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER"}
# x-kubernetes-validations on spec.url: scheme one of ["", http, https, oci, file]
WASMPLUGIN_URL_SCHEMES = {"http", "https", "oci", "file"}

ENVOYFILTER_API = ("networking.istio.io/v1alpha3", "EnvoyFilter")
ENVOYFILTER_SPEC_FIELDS = {"configPatches", "priority", "targetRefs", "workloadSelector"}
ENVOYFILTER_SELECTOR_FIELDS = {"labels"}
ENVOYFILTER_PATCH_FIELDS = {"applyTo", "match", "patch"}
ENVOYFILTER_MATCH_FIELDS = {"cluster", "context", "listener", "proxy", "routeConfiguration", "waypoint"}
ENVOYFILTER_LISTENER_FIELDS = {"filterChain", "listenerFilter", "name", "portName", "portNumber"}
ENVOYFILTER_FILTERCHAIN_FIELDS = {
    "applicationProtocols", "destinationPort", "filter", "name", "sni", "transportProtocol",
}
ENVOYFILTER_FILTER_FIELDS = {"name", "subFilter"}
ENVOYFILTER_PATCH_VALUE_FIELDS = {"filterClass", "operation", "value"}
ENVOYFILTER_APPLY_TO = {
    "INVALID", "LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER", "ROUTE_CONFIGURATION",
    "VIRTUAL_HOST", "HTTP_ROUTE", "CLUSTER", "EXTENSION_CONFIG", "BOOTSTRAP", "LISTENER_FILTER",
}
ENVOYFILTER_CONTEXTS = {"ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY", "WAYPOINT"}
ENVOYFILTER_OPERATIONS = {
    "INVALID", "MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE",
}

WASM_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
STRING_VALUE_TYPE = "type.googleapis.com/google.protobuf.StringValue"


def load(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((ISTIO / name).read_text()) if d is not None]
    assert len(docs) == 1, f"{name}: expected one YAML document, found {len(docs)}"
    assert isinstance(docs[0], dict)
    return docs[0]


def istio_plugin_config_json(plugin_config: dict[str, Any]) -> str:
    """What istiod hands the filter for a WasmPlugin's pluginConfig.

    istio/istio pilot/pkg/model/extensions.go (convertToWasmPluginWrapper):
    `protomarshal.ToJSON(wasmPlugin.PluginConfig)` wrapped in a
    `wrapperspb.StringValue` as the filter's `configuration`. pluginConfig is a
    google.protobuf.Struct, so every number is a double; ToJSON is the legacy
    jsonpb marshaler (pkg/util/protomarshal), which writes a Struct's keys sorted,
    without spaces, and doubles with Go's encoding/json (integral values below
    1e21 without a fraction or exponent)."""

    def norm(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            f = float(v)  # Struct number_value
            assert math.isfinite(f), "a Struct cannot hold NaN/Infinity as a number"
            return int(f) if f.is_integer() and abs(f) < 1e21 else f
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        raise AssertionError(f"{type(v).__name__} is not representable in a google.protobuf.Struct: {v!r}")

    return json.dumps(norm(plugin_config), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def wasmplugin_config(doc: dict[str, Any]) -> str:
    return istio_plugin_config_json(doc["spec"]["pluginConfig"])


def envoyfilter_wasm(doc: dict[str, Any]) -> dict[str, Any]:
    [patch] = doc["spec"]["configPatches"]
    return patch["patch"]["value"]


def envoyfilter_config(doc: dict[str, Any]) -> str:
    configuration = envoyfilter_wasm(doc)["typed_config"]["config"]["configuration"]
    assert configuration["@type"] == STRING_VALUE_TYPE
    assert isinstance(configuration["value"], str), "the StringValue must hold the JSON as a string"
    return configuration["value"]


# ---- WasmPlugin -------------------------------------------------------------


def test_wasmplugin_matches_the_crd():
    doc = load("wasmplugin.yaml")
    assert (doc["apiVersion"], doc["kind"]) == WASMPLUGIN_API
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
    spec = doc["spec"]
    assert set(spec) <= WASMPLUGIN_SPEC_FIELDS, f"fields the CRD does not define: {set(spec) - WASMPLUGIN_SPEC_FIELDS}"
    assert WASMPLUGIN_SPEC_REQUIRED <= set(spec)
    assert set(spec["selector"]) <= WASMPLUGIN_SELECTOR_FIELDS
    assert spec["selector"]["matchLabels"] == {"app": "svc-a"}
    assert spec["phase"] == "AUTHN" and spec["phase"] in WASMPLUGIN_PHASES
    assert spec["failStrategy"] == "FAIL_CLOSE" and spec["failStrategy"] in WASMPLUGIN_FAIL_STRATEGIES
    assert spec["imagePullPolicy"] in WASMPLUGIN_PULL_POLICIES
    assert spec["type"] in WASMPLUGIN_TYPES
    assert urlparse(spec["url"]).scheme in WASMPLUGIN_URL_SCHEMES
    for m in spec["match"]:
        assert set(m) <= WASMPLUGIN_MATCH_FIELDS and m["mode"] in WASMPLUGIN_MATCH_MODES
    assert isinstance(spec["pluginConfig"], dict), "pluginConfig is a Struct: a YAML mapping, not a string"


def test_wasmplugin_config_as_istio_delivers_it_passes_scopegate_check(scopegate_cli: Path, tmp_path: Path):
    scopegate_check(scopegate_cli, wasmplugin_config(load("wasmplugin.yaml")), tmp_path, "wasmplugin")


def test_istio_json_conversion_is_what_the_filter_parses():
    # Struct numbers are doubles: integral ones come out as integers (u64 fields
    # still parse), keys sorted, no whitespace.
    assert istio_plugin_config_json({"b": 60, "a": [1.0, 2.5], "c": {"z": True, "y": None}}) == (
        '{"a":[1,2.5],"b":60,"c":{"y":null,"z":true}}'
    )


# ---- EnvoyFilter ------------------------------------------------------------


def test_envoyfilter_matches_the_crd():
    doc = load("envoyfilter.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ENVOYFILTER_API
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
    spec = doc["spec"]
    assert set(spec) <= ENVOYFILTER_SPEC_FIELDS, f"fields the CRD does not define: {set(spec) - ENVOYFILTER_SPEC_FIELDS}"
    assert set(spec["workloadSelector"]) <= ENVOYFILTER_SELECTOR_FIELDS
    assert spec["workloadSelector"]["labels"] == {"app": "svc-a"}
    [patch] = spec["configPatches"]
    assert set(patch) <= ENVOYFILTER_PATCH_FIELDS
    assert patch["applyTo"] == "HTTP_FILTER" and patch["applyTo"] in ENVOYFILTER_APPLY_TO
    match = patch["match"]
    assert set(match) <= ENVOYFILTER_MATCH_FIELDS
    assert match["context"] == "SIDECAR_INBOUND" and match["context"] in ENVOYFILTER_CONTEXTS
    assert set(match["listener"]) <= ENVOYFILTER_LISTENER_FIELDS
    chain = match["listener"]["filterChain"]
    assert set(chain) <= ENVOYFILTER_FILTERCHAIN_FIELDS
    assert set(chain["filter"]) <= ENVOYFILTER_FILTER_FIELDS
    assert chain["filter"]["name"] == "envoy.filters.network.http_connection_manager"
    assert chain["filter"]["subFilter"] == {"name": "envoy.filters.http.router"}
    assert set(patch["patch"]) <= ENVOYFILTER_PATCH_VALUE_FIELDS
    assert patch["patch"]["operation"] == "INSERT_BEFORE" and patch["patch"]["operation"] in ENVOYFILTER_OPERATIONS


def test_envoyfilter_inserts_the_wasm_filter_as_scopegate_needs_it():
    value = envoyfilter_wasm(load("envoyfilter.yaml"))
    assert value["name"] == "envoy.filters.http.wasm"
    assert value["typed_config"]["@type"] == WASM_FILTER_TYPE
    config = value["typed_config"]["config"]
    assert config["vm_config"]["runtime"] == "envoy.wasm.runtime.v8"
    assert config["vm_config"]["code"]["local"]["filename"].endswith(".wasm")
    assert config["fail_open"] is False
    assert config["configuration"]["@type"] == STRING_VALUE_TYPE


def test_envoyfilter_string_value_passes_scopegate_check(scopegate_cli: Path, tmp_path: Path):
    scopegate_check(scopegate_cli, envoyfilter_config(load("envoyfilter.yaml")), tmp_path, "envoyfilter")


# ---- both -------------------------------------------------------------------


def test_both_manifests_carry_the_same_scopegate_config():
    wasmplugin = json.loads(wasmplugin_config(load("wasmplugin.yaml")))
    envoyfilter = json.loads(envoyfilter_config(load("envoyfilter.yaml")))
    assert wasmplugin == envoyfilter, "envoy/istio/wasmplugin.yaml and envoyfilter.yaml have drifted apart"
