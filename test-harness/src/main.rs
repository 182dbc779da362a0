//! `proxy-wasm-harness`: run a proxy-wasm filter on one request and print the outcome as JSON.
//!
//! ```text
//! proxy-wasm-harness run --wasm F [--config F | --config-str S] [--vm-config F]
//!                        [--request F|JSON] [--log-level trace|debug|info|warn|error|critical]
//!                        [--plugin-name N] [--root-id R] [--vm-id V]
//! proxy-wasm-harness imports --wasm F
//! ```
//!
//! Request JSON (every field optional):
//! ```json
//! {
//!   "headers": {":method": "GET", ":path": "/", ":authority": "svc"}   // or [["k","v"], ...]
//!   "body": "text",
//!   "trailers": [["k", "v"]],
//!   "properties": {"xds.route_name": "r1"},
//!   "time": 1700000000,
//!   "clusters": {"auth": {"status": 200, "headers": {"x": "y"}, "body": "ok", "delay_ms": 0},
//!                "down": {"reply": "connect_failure"},   // or "reset", "hang"
//!                "silent": null},
//!   "advance_ms": 0,
//!   "response": {"headers": {":status": "200"}, "body": "upstream body"}
//! }
//! ```

use anyhow::{Context as _, Result, anyhow, bail};
use proxy_wasm_harness::{Host, LogLevel, Module, Outcome, UpstreamReply};
use serde_json::{Value, json};
use std::time::{Duration, UNIX_EPOCH};

fn main() {
    match run(std::env::args().skip(1).collect()) {
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

struct Args {
    cmd: String,
    opts: Vec<(String, String)>,
}

impl Args {
    fn get(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_args(args: Vec<String>) -> Result<Args> {
    let mut it = args.into_iter();
    let cmd = it
        .next()
        .ok_or_else(|| anyhow!("usage: proxy-wasm-harness run|imports --wasm F ..."))?;
    let mut opts = Vec::new();
    while let Some(a) = it.next() {
        let Some(name) = a.strip_prefix("--") else {
            bail!("unexpected argument {a:?}");
        };
        let v = it.next().ok_or_else(|| anyhow!("--{name} needs a value"))?;
        opts.push((name.to_string(), v));
    }
    Ok(Args { cmd, opts })
}

fn pairs(v: Option<&Value>) -> Result<Vec<(String, String)>> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let text = |x: &Value| match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match v {
        Value::Object(m) => Ok(m.iter().map(|(k, x)| (k.clone(), text(x))).collect()),
        Value::Array(items) => items
            .iter()
            .map(|p| match p.as_array().map(|a| a.as_slice()) {
                Some([k, x]) => Ok((text(k), text(x))),
                _ => Err(anyhow!("header pairs must be [name, value]")),
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => bail!("headers must be an object or a list of pairs"),
    }
}

fn refs(p: &[(String, String)]) -> Vec<(&str, &str)> {
    p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn level(s: &str) -> Result<LogLevel> {
    Ok(match s {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" | "warning" => LogLevel::Warn,
        "error" => LogLevel::Error,
        "critical" => LogLevel::Critical,
        other => bail!("unknown log level {other:?}"),
    })
}

fn run(args: Vec<String>) -> Result<String> {
    let args = parse_args(args)?;
    let wasm = args
        .get("wasm")
        .ok_or_else(|| anyhow!("--wasm is required"))?;
    let module = Module::from_file(wasm)?;
    match args.cmd.as_str() {
        "imports" => Ok(serde_json::to_string_pretty(&json!({
            "imports": module.imports(),
            "non_proxy_imports": module.non_proxy_imports(),
        }))?),
        "run" => run_request(&args, &module),
        other => bail!("unknown command {other:?} (run, imports)"),
    }
}

fn run_request(args: &Args, module: &Module) -> Result<String> {
    let request: Value = match args.get("request") {
        None => json!({}),
        Some(r) if r.trim_start().starts_with('{') => serde_json::from_str(r)?,
        Some(path) => serde_json::from_str(
            &std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        )?,
    };
    let host = Host::new();
    if let Some(t) = request.get("time").and_then(Value::as_u64) {
        host.set_time(UNIX_EPOCH + Duration::from_secs(t));
    }
    if let Some(Value::Object(clusters)) = request.get("clusters") {
        for (name, spec) in clusters {
            let c = host.cluster(name);
            if spec.is_null() {
                continue;
            }
            // A failure mode instead of a response: Envoy's synthesized 503 for a
            // connection failure, a stream reset, or no answer at all.
            if let Some(mode) = spec.get("reply").and_then(Value::as_str) {
                let reply = match mode {
                    "connect_failure" => UpstreamReply::ConnectFailure,
                    "reset" => UpstreamReply::Reset,
                    "hang" => UpstreamReply::Hang,
                    other => bail!(
                        "cluster {name}: unknown reply {other:?} (connect_failure, reset, hang)"
                    ),
                };
                c.respond_with(move |_| reply.clone());
                continue;
            }
            let status = spec.get("status").and_then(Value::as_u64).unwrap_or(200) as u16;
            let headers = pairs(spec.get("headers"))?;
            let body = spec
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or("")
                .as_bytes()
                .to_vec();
            let delay =
                Duration::from_millis(spec.get("delay_ms").and_then(Value::as_u64).unwrap_or(0));
            c.respond_with(move |_| {
                UpstreamReply::status(status, &refs(&headers), &body).after(delay)
            });
        }
    }
    let mut b = host.vm(module);
    if let Some(c) = args.get("config") {
        b = b.plugin_config(std::fs::read(c).with_context(|| format!("reading {c}"))?);
    }
    if let Some(c) = args.get("config-str") {
        b = b.plugin_config(c.as_bytes());
    }
    if let Some(c) = args.get("vm-config") {
        b = b.vm_config(std::fs::read(c).with_context(|| format!("reading {c}"))?);
    }
    if let Some(l) = args.get("log-level") {
        b = b.log_level(level(l)?);
    }
    if let Some(n) = args.get("plugin-name") {
        b = b.plugin_name(n);
    }
    if let Some(n) = args.get("root-id") {
        b = b.root_id(n);
    }
    if let Some(n) = args.get("vm-id") {
        b = b.vm_id(n);
    }
    let vm = b.start()?;
    let mut result = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        result.insert(k.to_string(), v);
    };
    put("configured", json!(vm.configured()));
    if vm.configured() {
        let mut s = vm.http_stream();
        if let Some(Value::Object(props)) = request.get("properties") {
            for (k, v) in props {
                let path: Vec<&str> = k.split('.').collect();
                let bytes = match v {
                    Value::String(s) => s.as_bytes().to_vec(),
                    Value::Bool(x) => proxy_wasm_harness::property::bool(*x),
                    Value::Number(n) => proxy_wasm_harness::property::int(n.as_i64().unwrap_or(0)),
                    other => other.to_string().into_bytes(),
                };
                s.set_property(&path, bytes);
            }
        }
        let headers = pairs(request.get("headers"))?;
        let body = request.get("body").and_then(Value::as_str);
        let trailers = pairs(request.get("trailers"))?;
        let only_headers = body.is_none() && trailers.is_empty();
        let mut out = s.request_headers(&refs(&headers), only_headers);
        if let Some(b) = body
            && !matches!(
                out,
                Outcome::LocalReply { .. } | Outcome::Failed { .. } | Outcome::Reset { .. }
            )
        {
            out = if trailers.is_empty() {
                s.send_request_body(&[b.as_bytes()])
            } else {
                s.request_body(b.as_bytes(), false)
            };
        }
        if !trailers.is_empty() {
            out = s.request_trailers(&refs(&trailers));
        }
        if let Some(ms) = request.get("advance_ms").and_then(Value::as_u64) {
            host.advance(Duration::from_millis(ms));
            out = s.request_outcome();
        }
        let mut response_out = Value::Null;
        if let (Outcome::Continue, Some(resp)) = (&out, request.get("response")) {
            let rh = pairs(resp.get("headers"))?;
            let rb = resp.get("body").and_then(Value::as_str);
            let mut r = s.response_headers(&refs(&rh), rb.is_none());
            if let Some(b) = rb {
                r = s.send_response_body(&[b.as_bytes()]);
            }
            response_out = serde_json::to_value(&r)?;
        }
        let pending: Vec<Value> = vm
            .pending_callouts()
            .iter()
            .map(|c| json!({"token": c.token, "request": c.request}))
            .collect();
        s.finish();
        put("outcome", serde_json::to_value(&out)?);
        put("response_outcome", response_out);
        put(
            "request_headers",
            serde_json::to_value(s.request_headers_now())?,
        );
        put(
            "upstream_request",
            serde_json::to_value(s.upstream_request())?,
        );
        put(
            "downstream_response",
            serde_json::to_value(s.downstream_response())?,
        );
        put("pending_callouts", Value::Array(pending));
        put("fuel", json!(s.fuel_used()));
    }
    put("failure", json!(vm.failure()));
    put("logs", serde_json::to_value(vm.all_logs())?);
    put("violations", serde_json::to_value(vm.violations())?);
    put("metrics", serde_json::to_value(host.metrics())?);
    put("memory_bytes", json!(vm.memory_bytes()));
    Ok(serde_json::to_string_pretty(&Value::Object(result))?)
}
