//! The server under attack, over the wire: metric labels that no client can grow, connections
//! bounded in time and number (the real binary), costly queries bounded, secure defaults (the
//! `/metrics` token, `ALLOWED_HOSTS`, passwords never printed), one error shape with a correct
//! `Allow`, security headers, and the access log.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use aardvark::api::ApiOptions;
use aardvark::auth::ApiTokens;
use aardvark::hosts::AllowedHosts;
use common::{fresh_db, spawn_app_with, Backend, Server};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "hardening-test-token-8d2e";

/// Random letters from a seeded generator (xorshift), so that a failure can be replayed.
struct Letters(u64);

impl Letters {
    fn word(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                char::from(b'A' + (self.0 % 26) as u8)
            })
            .collect()
    }
}

/// The series of the request metrics, as label sets.
async fn request_series(app: &common::TestApp) -> BTreeSet<String> {
    let text = app
        .send(
            app.client
                .get(format!("{}/metrics", app.base_url))
                .bearer_auth(TOKEN),
        )
        .await
        .text;
    text.lines()
        .filter(|line| line.starts_with("aardvark_http_request"))
        .map(|line| {
            line.rsplit_once(' ')
                .map_or(line, |(series, _)| series)
                .to_owned()
        })
        .collect()
}

/// 10,000 requests with random methods and paths, with tokens on (the count runs before the
/// token check), add no series: methods outside the standard ones count as `other`, paths no
/// route matches as `unmatched`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_grow_the_metrics() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let app = spawn_app_with(
        &db.db,
        ApiOptions {
            tokens: ApiTokens::parse([TOKEN]).unwrap(),
            metrics_require_token: true,
            ..ApiOptions::default()
        },
    )
    .await;
    let mut letters = Letters(0x9e37_79b9_7f4a_7c15);
    let send = |method: String, path: String| {
        let request = app.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", app.base_url),
        );
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // One of each kind first: the series they make are all there will be.
    assert_eq!(send("QWERTY".into(), "/nowhere".into()).await, 401);
    assert_eq!(send("QWERTY".into(), "/api/1/runs".into()).await, 401);
    // A scrape counts itself after it is written: the second one shows the first.
    request_series(&app).await;
    let before = request_series(&app).await;
    let requests: Vec<(String, String)> = (0..10_000)
        .map(|at| {
            let method = letters.word(12);
            let path = if at % 2 == 0 {
                format!("/{}/{}", letters.word(8), letters.word(30))
            } else {
                "/api/1/runs".to_owned()
            };
            (method, path)
        })
        .collect();
    let statuses: Vec<u16> = futures::stream::iter(requests)
        .map(|(method, path)| send(method, path))
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|status| *status == 401), "{statuses:?}");
    let after = request_series(&app).await;
    assert_eq!(before, after, "random methods and paths added series");
    let methods: BTreeSet<&str> = after
        .iter()
        .filter_map(|series| series.split("method=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(methods, BTreeSet::from(["GET", "other"]), "{after:?}");
}

/// Every error the server or its layers produce is `{"message"}` JSON; a 405 names the
/// route's methods, `OPTIONS` included, and `OPTIONS` is answered; input echoed in a message
/// is cut to a short prefix; a regex over the size limits is refused in a short answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_with_a_correct_allow() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let app = spawn_app_with(&db.db, ApiOptions::default()).await;
    let url = |path: &str| format!("{}{path}", app.base_url);

    let reply = app.send(app.client.post(url("/api/1/runs"))).await;
    reply.assert_error(405, "The method is not allowed");
    assert_eq!(reply.headers["allow"], "GET, HEAD, OPTIONS");
    let reply = app.send(app.client.delete(url("/healthcheck"))).await;
    reply.assert_error(405, "The method is not allowed");
    assert_eq!(reply.headers["allow"], "GET, HEAD, OPTIONS");
    let reply = app.send(app.client.put(url("/api/1/advisors"))).await;
    reply.assert_error(405, "The method is not allowed");
    assert_eq!(reply.headers["allow"], "GET, POST, HEAD, OPTIONS");
    for (path, allow) in [
        ("/healthcheck", "GET, HEAD, OPTIONS"),
        ("/api/1/runs", "GET, HEAD, OPTIONS"),
        ("/api/1/advisors", "GET, POST, HEAD, OPTIONS"),
    ] {
        let reply = app
            .send(app.client.request(reqwest::Method::OPTIONS, url(path)))
            .await;
        assert_eq!(reply.status, 200, "OPTIONS {path}: {}", reply.text);
        assert_eq!(reply.headers["allow"], allow, "OPTIONS {path}");
    }

    app.get("/no/such/path")
        .await
        .assert_error(404, "not found");
    app.get("/apidocs/no-such-file.js")
        .await
        .assert_error(404, "not found");

    // A body announced larger than the limit is refused before any of it is sent (over a raw
    // connection: an HTTP client would be writing the body when the answer comes).
    let mut stream = tokio::net::TcpStream::connect(app.base_url.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /api/1/advisors HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 3145728\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_answer(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.ends_with(
            "{\"message\":\"the request body is larger than the limit of 2097152 bytes\"}\n"
        ),
        "{answer}"
    );

    // Echoed input is cut: a 60 KB value comes back as a short prefix.
    let huge = "9x".repeat(30_000);
    let reply = app.get(&format!("/api/1/advisors?page={huge}")).await;
    reply.assert_error(400, "is not an integer");
    assert!(reply.text.len() < 300, "{} bytes", reply.text.len());
    assert!(reply.text.contains("(60000 bytes)"), "{}", reply.text);
    let reply = app.get(&format!("/api/1/history?arn={huge}")).await;
    assert!(reply.text.len() < 300, "{} bytes", reply.text.len());

    // Patterns: 1 KB at most, and a compiled-size limit.
    let long = "a".repeat(1025);
    let reply = app.get(&format!("/api/1/advisors?regex={long}")).await;
    reply.assert_error(400, "at most 1024 are accepted");
    assert!(reply.text.len() < 300, "{}", reply.text);
    let reply = app.get("/api/1/advisors?regex=%5Cw%7B200%7D").await;
    reply.assert_error(400, "compiles to more than");
    let reply = app
        .get("/api/1/advisors?regex=arn:aws:iam::%5Cd%7B12%7D:role/.*")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// `nosniff`, `no-referrer` and `no-store` on API answers, a content security policy that
/// refuses framing everywhere (Swagger UI's lets its own files run), and no HSTS over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_on_every_answer() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let app = spawn_app_with(&db.db, ApiOptions::default()).await;
    for path in [
        "/api/1/runs",
        "/api/1/advisors?page=0",
        "/healthcheck",
        "/metrics",
        "/apispec_1.json",
        "/apidocs/",
        "/",
        "/nowhere",
    ] {
        let reply = app.get(path).await;
        let header = |name: &str| {
            reply
                .headers
                .get(name)
                .map(|value| value.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert!(
            header("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}: {:?}",
            header("content-security-policy")
        );
        assert!(header("strict-transport-security").is_empty(), "{path}");
        if path.starts_with("/api/") || path == "/metrics" {
            assert_eq!(header("cache-control"), "no-store", "{path}");
            assert_eq!(
                header("content-security-policy"),
                "default-src 'none'; frame-ancestors 'none'",
                "{path}"
            );
        }
        if path == "/apidocs/" {
            assert!(
                header("content-security-policy").contains("script-src 'self'"),
                "{path}"
            );
        }
    }
}

/// A server bound to loopback answers for its address and `localhost` only (a page of
/// another name that points at 127.0.0.1 reads nothing); `/healthcheck` answers any host;
/// `ALLOWED_HOSTS` replaces the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_outside_allowed_hosts_are_misdirected() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let bound = "127.0.0.1:5000".parse().unwrap();
    for (configured, allowed, refused) in [
        (
            None,
            vec!["127.0.0.1:5000", "localhost:5000"],
            vec!["rebound.example:5000"],
        ),
        (
            Some(vec!["aardvark.example.com".to_owned()]),
            vec!["aardvark.example.com:5000"],
            vec!["localhost:5000", "rebound.example"],
        ),
    ] {
        let app = spawn_app_with(
            &db.db,
            ApiOptions {
                allowed_hosts: AllowedHosts::for_server(configured.as_deref(), bound),
                ..ApiOptions::default()
            },
        )
        .await;
        let with_host = |path: &str, host: &str| {
            app.client
                .get(format!("{}{path}", app.base_url))
                .header("host", host)
        };
        for host in allowed {
            let reply = app.send(with_host("/api/1/runs", host)).await;
            assert_eq!(reply.status, 200, "{host}: {}", reply.text);
        }
        for host in refused {
            let reply = app.send(with_host("/api/1/runs", host)).await;
            reply.assert_error(421, "does not answer for the host");
            assert!(reply.text.contains("ALLOWED_HOSTS"), "{}", reply.text);
            let reply = app.send(with_host("/healthcheck", host)).await;
            assert_eq!(reply.status, 200);
        }
    }
}

/// With tokens on, `/metrics` needs one unless the settings say `METRICS_REQUIRE_TOKEN: false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_token_by_default_when_tokens_are_on() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (extra, open) in [("", false), ("  METRICS_REQUIRE_TOKEN: false\n", true)] {
        let file = dir.path().join("settings.yaml");
        std::fs::write(&file, format!("default:\n  API_TOKENS: [{TOKEN}]\n{extra}")).unwrap();
        let settings = aardvark::config::load(Some(&file), &Default::default())
            .unwrap()
            .settings;
        let options = aardvark::service::Service::api_options(
            &settings,
            None,
            "127.0.0.1:5000".parse().unwrap(),
        );
        let app = spawn_app_with(
            &db.db,
            ApiOptions {
                allowed_hosts: AllowedHosts::default(),
                ..options
            },
        )
        .await;
        let reply = app.get("/metrics").await;
        assert_eq!(reply.status == 200, open, "{extra:?}: {}", reply.status);
        let reply = app
            .send(
                app.client
                    .get(format!("{}/metrics", app.base_url))
                    .bearer_auth(TOKEN),
            )
            .await;
        assert_eq!(reply.status, 200);
    }
}

/// `aardvark serve` on a fresh SQLite file in `dir`, with `settings` lines and tokens on.
fn serve(dir: &Path, settings: &str, log_format: &str) -> Server {
    std::fs::write(
        dir.join("settings.yaml"),
        format!("default:\n  SQLALCHEMY_DATABASE_URI: sqlite:///served.db\n  API_TOKENS: [{TOKEN}]\n{settings}"),
    )
    .unwrap();
    Server::spawn(binary(dir, log_format, &["serve", "--bind", "127.0.0.1:0"]))
}

/// The binary in `dir` with no `AARDVARK_*` variable of the caller's, output piped.
fn binary(dir: &Path, log_format: &str, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aardvark"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AARDVARK_") {
            command.env_remove(key);
        }
    }
    command
        .current_dir(dir)
        .args(["--log-format", log_format])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// One request on `stream`, kept alive; the answer's head and body as text.
async fn get_kept_alive(stream: &mut tokio::net::TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_answer(stream).await
}

/// One answer read from `stream`: its head and its `content-length` bytes of body, as text.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|length| length.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer))
            .await
            .expect("the server answered")
            .unwrap_or(0);
        assert!(read > 0, "closed before answering: {text}");
        answer.extend_from_slice(&buffer[..read]);
    }
}

/// The header-read timeout closes a connection that sends nothing, one whose header drips in
/// a byte at a time, and one left idle after its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), "  HEADER_READ_TIMEOUT_SECONDS: 1\n", "text");
    let address = server.address();
    let bounded = |closed: Duration, what: &str| {
        assert!(
            closed >= Duration::from_millis(800) && closed < Duration::from_secs(10),
            "{what} was closed after {closed:?}"
        );
    };

    let (closed, _) = common::silent_connection_closed(&address).await;
    bounded(closed, "a silent connection");

    let mut dripping = tokio::net::TcpStream::connect(&address).await.unwrap();
    let started = Instant::now();
    dripping
        .write_all(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let drip = async {
        // A header byte every 100 ms, for longer than the timeout, until the server hangs up.
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if dripping.write_all(b"X").await.is_err() {
                return;
            }
            let mut byte = [0u8; 1];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(1), dripping.read(&mut byte)).await
            {
                return;
            }
        }
        panic!("a drip-fed header was read for 10 s");
    };
    drip.await;
    bounded(started.elapsed(), "a drip-fed header");

    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    let answer = get_kept_alive(&mut idle, "/healthcheck").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (closed, _) = common::closed_after(idle, Instant::now()).await;
    bounded(closed, "an idle keep-alive connection");

    // A body that drips in is answered 408 once the timeout has passed.
    let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let started = Instant::now();
    let (reader, mut writer) = stream.into_split();
    writer
        .write_all(
            format!(
                "POST /api/1/advisors HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let drip = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let (closed, received) = common::closed_after(reader, started).await;
    drip.abort();
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("{\"message\":\"the request body did not arrive"),
        "{answer}"
    );
    bounded(closed, "a drip-fed body");
}

/// With `MAX_CONNECTIONS` open, a new connection is closed at once (never left hanging) and the
/// refusal is logged; once one closes, the server answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused_at_once_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        dir.path(),
        "  MAX_CONNECTIONS: 4\n  HEADER_READ_TIMEOUT_SECONDS: 300\n",
        "json",
    );
    let address = server.address();
    // Each holds its place: it was answered, and stays open.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let answer = get_kept_alive(&mut stream, "/healthcheck").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream);
    }
    let mut refused = tokio::net::TcpStream::connect(&address).await.unwrap();
    let started = Instant::now();
    let _ = refused
        .write_all(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let (closed, received) = common::closed_after(refused, started).await;
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(closed < Duration::from_secs(5), "refused after {closed:?}");
    let log = server.until_logged("connection limit reached").await;
    assert!(log.contains("\"max_connections\":4"), "{log}");

    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let _ = stream
            .write_all(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await;
        let (_, received) = common::closed_after(stream, Instant::now()).await;
        if String::from_utf8_lossy(&received).ends_with("ok") {
            break;
        }
        assert!(Instant::now() < deadline, "no place came free");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `serve` on loopback answers for its address and `localhost`, and a rebound name gets 421.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_on_loopback_refuses_other_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), "", "text");
    let port = server.address().rsplit_once(':').unwrap().1.to_owned();
    let client = reqwest::Client::new();
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("rebound.example:{port}"), 421),
    ] {
        let reply = client
            .get(format!("{}/api/1/runs", server.base_url))
            .header("host", &host)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), status, "{host}");
    }
}

/// `serve` raises its soft open-file limit to the hard one.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_is_raised() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard: u64 = match limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(4))
        .and_then(|hard| hard.parse().ok())
    {
        Some(hard) if hard > 256 => hard,
        _ => {
            println!("skipped: the hard open-file limit is too low to lower the soft one below it");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.yaml"),
        "default:\n  SQLALCHEMY_DATABASE_URI: sqlite:///served.db\n",
    )
    .unwrap();
    let mut command = std::process::Command::new("sh");
    command
        .current_dir(dir.path())
        .args([
            "-c",
            &format!(
                "ulimit -Sn 256 && exec {} serve --bind 127.0.0.1:0",
                env!("CARGO_BIN_EXE_aardvark")
            ),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = Server::spawn(command);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3].parse::<u64>().unwrap(), hard, "{line}");
}

/// One access-log line per request, as JSON with `LOG_FORMAT: json`: method, route, status,
/// latency and bytes, and never the token or the query; none with `ACCESS_LOG: false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_a_line_per_request_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), "", "json");
    let client = reqwest::Client::new();
    let reply = client
        .get(format!(
            "{}/api/1/advisors?phrase=query-secret-7f&count=5",
            server.base_url
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let bytes = reply.bytes().await.unwrap().len() as u64;
    let log = server.until_logged("/api/1/advisors").await;
    assert!(
        !log.contains(TOKEN) && !log.contains("query-secret-7f"),
        "{log}"
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "aardvark::access")
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let fields = &lines[0]["fields"];
    assert_eq!(fields["method"], "GET", "{fields}");
    assert_eq!(fields["route"], "/api/1/advisors", "{fields}");
    assert_eq!(fields["status"], 200, "{fields}");
    assert_eq!(fields["bytes"], bytes, "{fields}");
    assert!(fields["latency_ms"].as_f64().is_some(), "{fields}");
    assert_eq!(lines[0]["level"], "INFO");
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), "  ACCESS_LOG: false\n", "json");
    let reply = client
        .get(format!("{}/api/1/runs", server.base_url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    // A line for that request would come before the line of the shutdown that follows it.
    server.signal("-TERM");
    let log = server.until_logged("stopping").await;
    assert!(!log.contains("aardvark::access"), "{log}");
}

/// A database password never reaches a log or an error, whether in the user part of the URI
/// or as a `password=` parameter, and whether the URI is unreachable or refused.
#[test]
fn database_passwords_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    for uri in [
        "mysql://aardvark:hunter2-refused@127.0.0.1:9/aardvark",
        "postgresql://aardvark:hunter2-user-part@127.0.0.1:9/aardvark",
        "postgresql://aardvark@127.0.0.1:9/aardvark?password=hunter2-query&sslmode=disable",
        "postgresql://127.0.0.1:9/aardvark?sslmode=disable&PASSWORD=hunter2-upper",
    ] {
        std::fs::write(
            dir.path().join("settings.yaml"),
            format!("default:\n  SQLALCHEMY_DATABASE_URI: '{uri}'\n"),
        )
        .unwrap();
        let output = binary(dir.path(), "text", &["create-db"]).output().unwrap();
        assert_eq!(output.status.code(), Some(1));
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(printed.contains("127.0.0.1:9"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}
