//! The `auth-server` binary itself: flags, the address on the first line of
//! stdout, PEM keys, refusal of bad input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use scopegate_example_auth_server::keys::SigningKey;

const BIN: &str = env!("CARGO_BIN_EXE_auth-server");

fn clients_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mesh/clients.json")
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().to_owned();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "first line: {line:?}"
    );
    Server { child, addr }
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: auth\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn prints_its_address_first_and_serves_the_mesh_clients_file() {
    let clients = clients_file();
    let s = start(&[
        "--clients",
        clients.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(get(&s.addr, "/healthz"), (200, "ok\n".to_owned()));
    let (status, body) = get(&s.addr, "/.well-known/openid-configuration");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["issuer"], "https://auth.mesh.example");
}

#[test]
fn loads_pem_keys_and_publishes_both() {
    let dir =
        std::env::temp_dir().join(format!("scopegate-auth-server-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut kids = vec![];
    for name in ["current.pem", "previous.pem"] {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        std::fs::write(dir.join(name), pem.as_bytes()).unwrap();
        kids.push(SigningKey::from_pem(&pem).unwrap().kid);
    }
    let clients = clients_file();
    let (cur, prev) = (dir.join("current.pem"), dir.join("previous.pem"));
    let s = start(&[
        "--clients",
        clients.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--issuer",
        "https://other.example",
        "--signing-key",
        cur.to_str().unwrap(),
        "--previous-key",
        prev.to_str().unwrap(),
    ]);
    let (_, body) = get(&s.addr, "/.well-known/jwks.json");
    let jwks: serde_json::Value = serde_json::from_str(&body).unwrap();
    let got: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(got, kids);
    let (_, body) = get(&s.addr, "/.well-known/openid-configuration");
    assert!(
        body.contains("\"issuer\":\"https://other.example\""),
        "{body}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_and_files_exit_non_zero_with_a_message() {
    let clients = clients_file();
    let cases: [(&[&str], i32, &str); 4] = [
        (&[], 2, "--clients is required"),
        (
            &["--clients", clients.to_str().unwrap(), "--bogus", "x"],
            2,
            "unknown flag --bogus",
        ),
        (
            &["--clients", "/nonexistent/clients.json"],
            1,
            "/nonexistent/clients.json",
        ),
        (
            &[
                "--clients",
                clients.to_str().unwrap(),
                "--signing-key",
                clients.to_str().unwrap(),
            ],
            1,
            "not an RSA private key",
        ),
    ];
    for (args, code, want) in cases {
        let out = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: nothing on stdout before listening"
        );
    }
}

#[test]
fn rotates_on_a_timer() {
    let clients = clients_file();
    let s = start(&[
        "--clients",
        clients.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--rotate-every",
        "10",
    ]);
    let kids = || -> Vec<String> {
        let (_, body) = get(&s.addr, "/.well-known/jwks.json");
        let jwks: serde_json::Value = serde_json::from_str(&body).unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = kids();
    assert_eq!(first.len(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut now = kids();
    while now.len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        now = kids();
    }
    assert_eq!(now.len(), 2, "no rotation within 30 s");
    assert_eq!(
        now[1], first[0],
        "the old key stays published as the previous one"
    );
    assert_ne!(now[0], first[0]);
}
