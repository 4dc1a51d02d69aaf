//! The real binary (DESIGN.md sections 1 and 6): `--help` everywhere, `check` output and exit
//! codes, config errors before binding, logs that never hold a token and have one access line
//! per request, graceful drain on SIGTERM, and the demo's printed curl lines doing what their
//! comments say.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokengate::demo::echo::EchoUpstream;
use tokengate::demo::emulator::{Emulator, EmulatorConfig, TokenSpec};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

/// Bounds every wait for a process to exit after SIGTERM (the drain deadline is 30 s).
const EXIT_BOUND: Duration = Duration::from_secs(45);

/// A file under the temp dir with a name no other test (or test run) uses; removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(hint: &str, contents: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!(
            "tokengate-it-{}-{}-{nanos}-{hint}.yaml",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).expect("write temp config");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn display(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// Collects everything a pipe delivers, in the background, so the child never blocks on a
/// full pipe.
fn collect<R: tokio::io::AsyncRead + Unpin + Send + 'static>(mut pipe: R) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).into_owned()
    })
}

async fn wait_exit(child: &mut Child) -> ExitStatus {
    tokio::time::timeout(EXIT_BOUND, child.wait())
        .await
        .expect("the process did not exit after SIGTERM")
        .expect("wait")
}

async fn run_to_end(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("TOKENGATE_CONFIG")
        .env_remove("TOKENGATE_LOG_FORMAT")
        .output()
        .await
        .expect("run tokengate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

// ---------------------------------------------------------------------------------------------
// --help and check

#[tokio::test(flavor = "multi_thread")]
async fn help_works_on_every_command() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["check", "--help"],
        &["demo", "--help"],
        &["emulator", "--help"],
    ] {
        let (code, stdout, stderr) = run_to_end(args).await;
        assert_eq!(code, Some(0), "tokengate {args:?}: {stderr}");
        assert!(stdout.contains("Usage"), "tokengate {args:?}: {stdout}");
    }
    let (_, top, _) = run_to_end(&["--help"]).await;
    for command in ["run", "check", "demo", "emulator"] {
        assert!(
            top.contains(command),
            "--help does not list {command}: {top}"
        );
    }
}

/// A valid config whose routes carry recognisable names. Introspection points nowhere: `check`
/// must not contact anything.
fn valid_config_text() -> String {
    r#"listen: "127.0.0.1:18080"
admin_listen: "127.0.0.1:19901"
introspection:
  authlete:
    base_url: "http://127.0.0.1:9"
    service_id: "1000000001"
    access_token: "check-service-token"
upstreams:
  app:
    url: "http://127.0.0.1:3000"
routes:
  - name: check-health-route
    path: /health
    auth: none
    upstream: app
  - name: check-orders-route
    path: /orders/**
    upstream: app
    scopes: [orders.read]
"#
    .to_owned()
}

/// Config text with an unknown upstream in `routes[1]`; returns the text and the 1-based line
/// and column of the bad value and of its key.
fn unknown_upstream_config(listen: &str) -> (String, u64, u64, u64) {
    let text = format!(
        r#"listen: "{listen}"
introspection:
  authlete:
    base_url: "http://127.0.0.1:9"
    service_id: "1000000001"
    access_token: "check-service-token"
upstreams:
  app:
    url: "http://127.0.0.1:3000"
routes:
  - name: first
    path: /a/**
    upstream: app
  - name: second
    path: /b/**
    upstream: nowhere
"#
    );
    let (index, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("upstream: nowhere"))
        .expect("bad line");
    let value_col = line.find("nowhere").expect("value") as u64 + 1;
    let key_col = line.find("upstream").expect("key") as u64 + 1;
    (text, index as u64 + 1, value_col, key_col)
}

#[tokio::test(flavor = "multi_thread")]
async fn check_on_a_valid_config_exits_0_and_prints_the_route_table() {
    let file = TempFile::new("valid", &valid_config_text());
    let (code, stdout, stderr) = run_to_end(&["check", "--config", &file.display()]).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(stdout.contains("check-health-route"), "{stdout}");
    assert!(stdout.contains("check-orders-route"), "{stdout}");
    assert!(stdout.contains("orders.read"), "{stdout}");
    assert!(
        !stdout.contains("check-service-token"),
        "check printed a secret"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_an_unknown_upstream_as_one_positioned_line_and_exits_2() {
    let (text, line, value_col, key_col) = unknown_upstream_config("127.0.0.1:18080");
    let file = TempFile::new("unknown-upstream", &text);
    let (code, stdout, stderr) = run_to_end(&["check", "--config", &file.display()]).await;
    assert_eq!(code, Some(2), "stdout: {stdout}\nstderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr must be one line: {stderr:?}");
    let message = lines[0];
    let prefix = format!("config error: {}:{line}:", file.display());
    let rest = message
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("expected prefix {prefix:?}: {message}"));
    let (column, rest) = rest.split_once(':').expect("column");
    let column: u64 = column.parse().expect("numeric column");
    assert!(
        column == value_col || column == key_col,
        "column {column}, expected {value_col} (value) or {key_col} (key): {message}"
    );
    assert!(
        rest.starts_with(" routes[1].upstream: unknown upstream"),
        "{message}"
    );
    assert!(rest.contains("nowhere"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_with_an_invalid_config_exits_2_before_binding() {
    // Hold the port the config asks for: a gateway that bound before validating would fail
    // with "cannot listen" and exit 1, not 2.
    let held = StdListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = held.local_addr().expect("addr");
    let (text, ..) = unknown_upstream_config(&addr.to_string());
    let file = TempFile::new("invalid-run", &text);
    for args in [
        vec!["run", "--config", file.path().to_str().expect("utf-8")],
        vec!["--config", file.path().to_str().expect("utf-8")],
    ] {
        let (code, _, stderr) = run_to_end(&args).await;
        assert_eq!(code, Some(2), "tokengate {args:?}: {stderr}");
        assert!(
            stderr.starts_with("config error: "),
            "tokengate {args:?}: {stderr}"
        );
        assert!(stderr.contains("unknown upstream"), "{stderr}");
        assert!(!stderr.contains("cannot listen"), "{stderr}");
    }
    // The port is still ours.
    let _client = std::net::TcpStream::connect(addr).expect("connect to the held port");
    let (_, peer) = held.accept().expect("our listener accepts");
    assert!(peer.ip().is_loopback());

    let missing = std::env::temp_dir().join(format!(
        "tokengate-it-{}-does-not-exist.yaml",
        std::process::id()
    ));
    let (code, _, stderr) =
        run_to_end(&["run", "--config", missing.to_str().expect("utf-8")]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.starts_with("config error: "), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// A running gateway subprocess

/// The emulator and echo upstream in this process, the gateway as a child process.
struct Fixture {
    emulator: Emulator,
    upstream: EchoUpstream,
    config: TempFile,
    addr: SocketAddr,
    admin: SocketAddr,
}

const SERVICE_TOKEN: &str = "emulator-service-token";

impl Fixture {
    async fn new() -> Self {
        let emulator = Emulator::new(EmulatorConfig::default());
        let emulator_addr = emulator.clone().spawn().await.expect("emulator");
        let upstream = EchoUpstream::new();
        let upstream_addr = upstream.clone().spawn().await.expect("upstream");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let text = format!(
            r#"listen: "{addr}"
admin_listen: "{admin}"
introspection:
  authlete:
    base_url: "http://{emulator_addr}"
    api_version: 3
    service_id: "1000000001"
    access_token: "{SERVICE_TOKEN}"
  timeout_ms: 2000
upstreams:
  app:
    url: "http://{upstream_addr}"
    timeout_ms: 10000
routes:
  - name: public
    path: /public/**
    auth: none
    upstream: app
  - name: slow
    path: /slow/*
    auth: none
    upstream: app
  - name: orders-read
    path: /orders/**
    upstream: app
    scopes: [orders.read]
"#
        );
        Self {
            emulator,
            upstream,
            config: TempFile::new("run", &text),
            addr,
            admin,
        }
    }

    fn token(&self, value: &str) -> String {
        self.emulator.add_token(TokenSpec {
            access_token: Some(value.into()),
            subject: Some("alice".into()),
            client_id: Some(1001),
            client_id_alias: None,
            scopes: vec!["orders.read".into()],
            expires_in: Some(3600),
            dpop_jkt: None,
            certificate_thumbprint: None,
            refreshable: None,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Starts `tokengate run` and waits until `/readyz` answers 200.
    async fn start(&self, extra_args: &[&str]) -> Gateway {
        let mut child = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(self.config.path())
            .args(extra_args)
            .env("RUST_LOG", "debug")
            .env_remove("TOKENGATE_CONFIG")
            .env_remove("TOKENGATE_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tokengate run");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        let client = client();
        let readyz = format!("http://{}/readyz", self.admin);
        let mut ready = false;
        for _ in 0..200 {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let err = stderr.await.unwrap_or_default();
                panic!("tokengate exited before becoming ready ({status}): {err}");
            }
            if let Ok(r) = client.get(&readyz).send().await
                && r.status() == 200
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "tokengate never became ready on {readyz}");
        Gateway {
            child,
            stdout,
            stderr,
        }
    }
}

struct Gateway {
    child: Child,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

impl Gateway {
    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGTERM, then the exit status and everything the process wrote.
    async fn terminate(mut self) -> (ExitStatus, String, String) {
        sigterm(self.pid());
        let status = wait_exit(&mut self.child).await;
        let stdout = self.stdout.await.expect("stdout reader");
        let stderr = self.stderr.await.expect("stderr reader");
        (status, stdout, stderr)
    }
}

const VALID: &str = "tg-valid-Q7mZ2pLk9wXcVb3N";
const UNKNOWN: &str = "tg-unknown-H4nB8vRt1yJeKd6S";
const MALFORMED_SECRET: &str = "tg-malformed-S3cr3tV4lueZ";

/// The requests every log test sends: (path, Authorization, expected status).
fn scripted_requests() -> Vec<(&'static str, Option<String>, u16)> {
    vec![
        ("/orders/101", Some(format!("Bearer {VALID}")), 200),
        ("/orders/102", Some(format!("Bearer {UNKNOWN}")), 401),
        (
            "/orders/103",
            Some(format!("Bearer {MALFORMED_SECRET} trailing-junk")),
            400,
        ),
        ("/public/104", None, 200),
        ("/nowhere/105", None, 404),
        ("/orders/106", Some(format!("Bearer {VALID}")), 200),
        ("/orders/107", None, 401),
    ]
}

async fn send_scripted(f: &Fixture) -> usize {
    let client = client();
    let requests = scripted_requests();
    for (path, authorization, expected) in &requests {
        let mut request = client.get(f.url(path));
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        let r = request.send().await.expect("request");
        assert_eq!(r.status().as_u16(), *expected, "{path}");
    }
    requests.len()
}

fn assert_no_secrets(output: &str) {
    let output = &strip_ansi(output);
    for secret in [VALID, UNKNOWN, MALFORMED_SECRET, SERVICE_TOKEN] {
        assert!(
            !output.contains(secret),
            "the output contains {secret:?}:\n{output}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn text_logs_at_debug_hold_no_token_and_one_access_line_per_request() {
    let f = Fixture::new().await;
    f.token(VALID);
    let gateway = f.start(&[]).await;
    let sent = send_scripted(&f).await;
    let (status, stdout, stderr) = gateway.terminate().await;
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert_no_secrets(&format!("{stdout}\n{stderr}"));

    let plain = strip_ansi(&stderr);
    let access: Vec<&str> = plain
        .lines()
        .filter(|l| l.contains(" tokengate::access: "))
        .collect();
    assert_eq!(
        access.len(),
        sent,
        "one access line per request:\n{}",
        access.join("\n")
    );
    for (path, _, expected) in scripted_requests() {
        let lines: Vec<&&str> = access
            .iter()
            .filter(|l| l.contains(&format!("path=\"{path}\"")))
            .collect();
        assert_eq!(lines.len(), 1, "access lines for {path}: {lines:?}");
        assert!(
            lines[0].contains(&format!(" status={expected} ")),
            "{path}: {}",
            lines[0]
        );
        for field in [
            "route=",
            "method=GET",
            "outcome=",
            "subject=",
            "client_id=",
            "latency_ms=",
        ] {
            assert!(
                lines[0].contains(field),
                "{path} without {field}: {}",
                lines[0]
            );
        }
    }
    let first = access
        .iter()
        .find(|l| l.contains("path=\"/orders/101\""))
        .expect("line");
    assert!(
        first.contains("subject=\"alice\""),
        "subject missing: {first}"
    );
    assert!(
        first.contains("route=\"orders-read\""),
        "route missing: {first}"
    );
}

/// Removes terminal colour sequences (`ESC [ … letter`) from log text.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_hold_no_token_and_one_structured_access_line_per_request() {
    let f = Fixture::new().await;
    f.token(VALID);
    let gateway = f.start(&["--log-format", "json"]).await;
    let sent = send_scripted(&f).await;
    let (status, stdout, stderr) = gateway.terminate().await;
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert_no_secrets(&format!("{stdout}\n{stderr}"));

    let mut access = Vec::new();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        if v["target"] == "tokengate::access" {
            access.push(v);
        }
    }
    assert_eq!(
        access.len(),
        sent,
        "one access line per request: {access:#?}"
    );
    for v in &access {
        for field in [
            "route",
            "method",
            "path",
            "status",
            "outcome",
            "subject",
            "client_id",
            "latency_ms",
        ] {
            assert!(
                v.get(field).is_some_and(|x| !x.is_null()),
                "access line without {field}: {v}"
            );
        }
        assert!(v["latency_ms"].is_number(), "{v}");
        assert_eq!(v["method"], "GET", "{v}");
    }
    for (path, _, expected) in scripted_requests() {
        let lines: Vec<&serde_json::Value> = access.iter().filter(|v| v["path"] == path).collect();
        assert_eq!(lines.len(), 1, "access lines for {path}: {lines:?}");
        assert_eq!(lines[0]["status"], expected, "{path}: {}", lines[0]);
    }
    let ok = access
        .iter()
        .find(|v| v["path"] == "/orders/101")
        .expect("line");
    assert_eq!(ok["route"], "orders-read");
    assert_eq!(ok["subject"], "alice");
    assert_eq!(ok["client_id"], "1001");
    let unrouted = access
        .iter()
        .find(|v| v["path"] == "/nowhere/105")
        .expect("line");
    assert_ne!(unrouted["outcome"], ok["outcome"], "{unrouted} vs {ok}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_request_finish_and_exits_0() {
    let f = Fixture::new().await;
    let gateway = f.start(&[]).await;
    let client = client();
    let slow = tokio::spawn(client.get(f.url("/slow/1500")).send());
    // In flight: the upstream has received it (and is now sleeping on it).
    let mut arrived = false;
    for _ in 0..500 {
        if f.upstream.request_count() >= 1 {
            arrived = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(arrived, "the slow request never reached the upstream");
    let (status, _stdout, stderr) = gateway.terminate().await;
    let response = slow
        .await
        .expect("task")
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("complete JSON body");
    assert_eq!(body["path"], "/slow/1500");
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
}

// ---------------------------------------------------------------------------------------------
// tokengate demo

/// A `# <status>…` comment followed by the `curl` line it describes.
struct Example {
    comment: String,
    curl: String,
}

fn examples(printed: &[String]) -> Vec<Example> {
    printed
        .windows(2)
        .filter(|w| w[0].trim_start().starts_with('#') && w[1].trim_start().starts_with("curl "))
        .map(|w| Example {
            comment: w[0].trim().to_owned(),
            curl: w[1].trim().to_owned(),
        })
        .collect()
}

/// The status number a comment promises (`# 401 invalid_token: …` → 401).
fn promised_status(comment: &str) -> Option<u16> {
    let digits: String = comment
        .trim_start_matches('#')
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

async fn bash(line: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(line)
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .output()
        .await
        .expect("run bash");
    assert!(
        out.status.success(),
        "`{line}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_prints_curl_lines_that_give_the_statuses_their_comments_promise() {
    let mut child = Command::new(BIN)
        .arg("demo")
        .env_remove("TOKENGATE_CONFIG")
        .env_remove("TOKENGATE_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tokengate demo");
    let stderr = collect(child.stderr.take().expect("stderr"));
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();

    // Read until the last instruction (the emulator mint line) has been printed.
    let mut printed: Vec<String> = Vec::new();
    let mut complete = false;
    for _ in 0..500 {
        let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
            .await
            .expect("the demo stopped printing")
            .expect("read stdout");
        let Some(line) = line else { break };
        let done = line.trim_start().starts_with("curl ") && line.contains("/emulator/tokens");
        printed.push(line);
        if done {
            complete = true;
            break;
        }
    }
    assert!(
        complete,
        "the demo output ended early:\n{}",
        printed.join("\n")
    );
    // Keep draining stdout so the demo never blocks on a full pipe.
    let rest = tokio::spawn(async move {
        let mut n = 0usize;
        while let Ok(Some(_)) = stdout.next_line().await {
            n += 1;
        }
        n
    });

    let reader = printed
        .iter()
        .find(|l| l.trim_start().starts_with("READER"))
        .and_then(|l| l.split_whitespace().last())
        .expect("a READER token line")
        .to_owned();

    let all = examples(&printed);
    let mut checked = Vec::new();
    for example in &all {
        let Some(expected) = promised_status(&example.comment) else {
            continue;
        };
        let code = bash(&format!(
            "{} -s -o /dev/null -w '%{{http_code}}'",
            example.curl
        ))
        .await;
        assert_eq!(
            code,
            expected.to_string(),
            "{}\n{}",
            example.comment,
            example.curl
        );
        checked.push(expected);
    }
    for status in [200, 401, 403, 400] {
        assert!(
            checked.contains(&status),
            "no curl line shows {status}: {checked:?}\n{}",
            printed.join("\n")
        );
    }

    let metrics = all
        .iter()
        .find(|e| e.curl.contains("/metrics"))
        .expect("a metrics line");
    let text = bash(&metrics.curl).await;
    assert!(text.contains("tokengate_requests_total"), "{text}");
    assert!(text.contains("tokengate_token_cache"), "{text}");

    // The mint line gives a token that the gateway accepts on the same URL as the reader's.
    let mint = all
        .iter()
        .find(|e| e.curl.contains("/emulator/tokens"))
        .expect("a mint line");
    let minted: serde_json::Value =
        serde_json::from_str(&bash(&mint.curl).await).expect("mint answers JSON");
    let minted = minted["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let reader_line = all
        .iter()
        .find(|e| promised_status(&e.comment) == Some(200) && e.curl.contains(&reader))
        .expect("a 200 line with the reader's token");
    let with_minted = reader_line.curl.replace(&reader, &minted);
    let code = bash(&format!(
        "{with_minted} -s -o /dev/null -w '%{{http_code}}'"
    ))
    .await;
    assert_eq!(code, "200", "{with_minted}");

    sigterm(child.id().expect("running"));
    let status = wait_exit(&mut child).await;
    let logs = stderr.await.expect("stderr reader");
    let _ = rest.await;
    assert_eq!(status.code(), Some(0), "demo stderr:\n{logs}");
    assert!(!logs.contains(&reader), "the demo logged a token:\n{logs}");
    assert!(!logs.contains(&minted), "the demo logged a token:\n{logs}");
}

fn sighup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP {pid} failed");
}

/// Polls `url` until it answers `expected` (bounded), returning the last status seen.
async fn eventually(url: &str, expected: u16) -> u16 {
    let client = client();
    let mut last = 0;
    for _ in 0..100 {
        last = client
            .get(url)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if last == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_and_an_invalid_one_keeps_the_old_serving() {
    let f = Fixture::new().await;
    let gateway = f.start(&[]).await;
    let original = std::fs::read_to_string(f.config.path()).expect("read config");
    assert_eq!(
        client()
            .get(f.url("/added/x"))
            .send()
            .await
            .expect("request")
            .status(),
        404
    );

    // A valid new config with one more public route: served after SIGHUP.
    let added = format!(
        "{original}  - name: added\n    path: /added/**\n    auth: none\n    upstream: app\n"
    );
    std::fs::write(f.config.path(), &added).expect("write");
    sighup(gateway.pid());
    assert_eq!(eventually(&f.url("/added/x"), 200).await, 200);

    // An invalid config (unknown upstream): logged, and the previous one keeps serving.
    let broken = added.replace("    upstream: app\n", "    upstream: nowhere\n");
    std::fs::write(f.config.path(), &broken).expect("write");
    sighup(gateway.pid());
    // Give the reload a chance to (wrongly) apply, then check the route is still served.
    let c = client();
    for _ in 0..10 {
        let status = c
            .get(f.url("/added/x"))
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, 200, "the old configuration must keep serving");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (status, _stdout, stderr) = gateway.terminate().await;
    assert!(status.success(), "{status}");
    assert!(stderr.contains("configuration reloaded"), "{stderr}");
    assert!(
        stderr.contains("invalid configuration; keeping the previous one"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown upstream `nowhere`"), "{stderr}");
}
