//! `auth-server`: scopegate's example central auth server.
//!
//! ```text
//! auth-server --clients examples/mesh/clients.json [--listen 127.0.0.1:8443]
//!             [--issuer URL] [--signing-key FILE.pem [--previous-key FILE.pem]]
//!             [--rotate-every SECONDS]
//! ```
//!
//! Prints the bound address (`127.0.0.1:PORT`) as the first line of stdout,
//! then logs to stderr. Keys are RSA 2048, generated at start-up unless given
//! as PEM files.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use scopegate_example_auth_server::config::Registry;
use scopegate_example_auth_server::keys::{KeyRing, SigningKey};
use scopegate_example_auth_server::{AuthServer, system_clock};

const USAGE: &str = "usage: auth-server --clients FILE.json [--listen ADDR:PORT] [--issuer URL] \
[--signing-key FILE.pem [--previous-key FILE.pem]] [--rotate-every SECONDS]";

struct Args {
    clients: String,
    listen: SocketAddr,
    issuer: Option<String>,
    signing_key: Option<String>,
    previous_key: Option<String>,
    rotate_every: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut clients = None;
    let mut listen = "127.0.0.1:8443".to_owned();
    let (mut issuer, mut signing_key, mut previous_key, mut rotate_every) =
        (None, None, None, None);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_owned());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag}: value missing\n{USAGE}"))?;
        match flag.as_str() {
            "--clients" => clients = Some(value),
            "--listen" => listen = value,
            "--issuer" => issuer = Some(value),
            "--signing-key" => signing_key = Some(value),
            "--previous-key" => previous_key = Some(value),
            "--rotate-every" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| format!("--rotate-every: not a number: {value}"))?;
                if secs < 10 {
                    return Err("--rotate-every: at least 10 seconds".into());
                }
                rotate_every = Some(secs);
            }
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    if previous_key.is_some() && signing_key.is_none() {
        return Err("--previous-key needs --signing-key".into());
    }
    Ok(Args {
        clients: clients.ok_or_else(|| format!("--clients is required\n{USAGE}"))?,
        listen: listen
            .parse()
            .map_err(|_| format!("--listen: not ADDR:PORT: {listen}"))?,
        issuer,
        signing_key,
        previous_key,
        rotate_every,
    })
}

fn load_key(path: &str) -> Result<SigningKey, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    SigningKey::from_pem(&pem).map_err(|e| format!("{path}: {e}"))
}

fn setup(args: &Args) -> Result<AuthServer, String> {
    let text =
        std::fs::read_to_string(&args.clients).map_err(|e| format!("{}: {e}", args.clients))?;
    let mut reg = Registry::from_json(&text).map_err(|e| format!("{}: {e}", args.clients))?;
    if let Some(iss) = &args.issuer {
        reg.issuer = iss.clone();
    }
    let keys = match &args.signing_key {
        Some(path) => KeyRing::new(
            load_key(path)?,
            args.previous_key.as_deref().map(load_key).transpose()?,
        ),
        None => KeyRing::new(SigningKey::generate()?, None),
    };
    Ok(AuthServer::new(reg, keys, system_clock()))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("auth-server: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match setup(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("auth-server: {e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auth-server: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(serve(server, &args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth-server: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(server: AuthServer, args: &Args) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // First line of stdout: the bound address, for scripts.
    println!("{addr}");
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    eprintln!(
        "auth-server: issuer {} on http://{addr}/ (jwks /.well-known/jwks.json, token /oauth/token, \
               revocations /revocations); signing kid {}",
        server.issuer(),
        server
            .jwks()
            .pointer("/keys/0/kid")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
    );
    if let Some(secs) = args.rotate_every {
        if secs < server.max_ttl_seconds() {
            eprintln!(
                "auth-server: warning: --rotate-every {secs} is shorter than the longest token lifetime \
                       ({} s): a key is unpublished after two rotations, and tokens it signed stop verifying \
                       before they expire",
                server.max_ttl_seconds()
            );
        }
        let s = server.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(secs));
            tick.tick().await; // the first tick is immediate
            loop {
                tick.tick().await;
                match tokio::task::spawn_blocking(SigningKey::generate).await {
                    Ok(Ok(k)) => {
                        s.rotate(k);
                    }
                    Ok(Err(e)) => eprintln!("auth-server: rotation failed: {e}"),
                    Err(e) => eprintln!("auth-server: rotation failed: {e}"),
                }
            }
        });
    }
    axum::serve(listener, server.router())
        .await
        .map_err(|e| format!("serve: {e}"))
}
