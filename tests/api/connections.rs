//! What a client can do to the server with the connection itself, below the API: speak
//! HTTP/2 without a length, send a huge body, trickle its headers or its body, or hold a
//! connection open (security review, round 2, items 1 and 2). Raw TCP where the attack needs
//! bytes a well-behaved client would not send.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
};

use crate::helpers::{AppOptions, SECRET, TENANT, eventually, spawn_app_with};

/// Reads what the server sends until it closes the connection or `limit` passes; the bytes
/// and whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (received, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// A raw connection to `app`.
async fn connect(app: &crate::helpers::TestApp) -> TcpStream {
    TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect")
}

async fn app_with(keys: &[(&str, &str)]) -> crate::helpers::TestApp {
    spawn_app_with(AppOptions {
        overrides: keys
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn an_http2_connection_preface_is_not_answered_as_http2() {
    let app = app_with(&[]).await;
    let mut stream = connect(&app).await;
    // The client preface, then an empty SETTINGS frame (RFC 9113 §3.4).
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface sent");
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "the connection is closed, not kept for HTTP/2");
    // An HTTP/2 server answers with its own SETTINGS frame: 3 bytes of length, type 0x04.
    let speaks_h2 = answer.len() >= 9 && answer[3] == 0x04;
    assert!(
        !speaks_h2,
        "the server must not speak cleartext HTTP/2: {answer:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "at most an HTTP/1.1 error: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    let app = app_with(&[("server.header_read_timeout_seconds", "1")]).await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("request line sent");
    // One header line every 200 ms, as a slowloris client does: each keeps the socket busy,
    // none completes the head.
    let mut cut_off = None;
    for i in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let line = format!("X-Slow-{i}: still coming\r\n");
        if stream.write_all(line.as_bytes()).await.is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
        {
            cut_off = Some(started.elapsed());
            break;
        }
    }
    let cut_off = cut_off.expect("the server closed the trickling connection within 10 s");
    assert!(
        cut_off >= Duration::from_millis(900),
        "not before the header deadline: {cut_off:?}"
    );
    assert!(
        cut_off <= Duration::from_secs(4),
        "within the header deadline and the watchdog's tick: {cut_off:?}"
    );
    let health = app.get("/healthz").send().await.expect("sent");
    assert_eq!(health.status(), StatusCode::OK, "other clients are served");
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_closed_at_the_header_deadline() {
    let app = app_with(&[("server.header_read_timeout_seconds", "1")]).await;
    let mut stream = connect(&app).await;
    let opened = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let held = opened.elapsed();
    assert!(
        closed,
        "a silent connection is not held until the keep-alive timeout (75 s)"
    );
    assert!(
        held >= Duration::from_millis(900) && held <= Duration::from_secs(4),
        "{held:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let app = app_with(&[("server.keep_alive_timeout_seconds", "1")]).await;
    let mut stream = connect(&app).await;
    // Requests every 300 ms keep the connection in use past the idle deadline.
    for _ in 0..6 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("the connection is still open while in use");
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.expect("answered");
        assert_eq!(&head, b"HTTP/1.1 200");
        let mut rest = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut rest)).await;
    }
    let idle_since = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let idle = idle_since.elapsed();
    assert!(closed, "an idle connection is closed");
    assert!(
        idle >= Duration::from_millis(500) && idle <= Duration::from_secs(4),
        "after about the keep-alive timeout: {idle:?}"
    );
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408() {
    let app = app_with(&[("server.body_read_timeout_seconds", "1")]).await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    stream
        .write_all(
            format!(
                "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nX-Tenant: {TENANT}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n\
                 username=juan"
            )
            .as_bytes(),
        )
        .await
        .expect("sent");
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("{\"detail\":"), "the error shape: {text}");
    assert!(closed, "and the connection is closed after it");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

/// `vigia serve` as its own process (its memory must be measured alone), in production with
/// no demo: nothing at start-up hashes a password, so its peak is its resting size.
async fn serve_alone(dir: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigia"));
    command
        .arg("serve")
        .current_dir(dir)
        .env("VIGIA__ENVIRONMENT", "production")
        .env("VIGIA__JWT__SECRET", SECRET)
        .env("VIGIA__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("VIGIA__DATA_DIR", dir.join("data"))
        .env("VIGIA__TENANTS__DIR", dir.join("tenants"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (key, _) in std::env::vars() {
        if key.starts_with("VIGIA__") && key != "VIGIA__JWT__SECRET" {
            command.env_remove(key);
        }
    }
    let child = command.spawn().expect("vigia starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    eventually(Duration::from_secs(30), || async {
        let resp = client.get(format!("{base}/readyz")).send().await.ok()?;
        (resp.status() == StatusCode::OK).then_some(())
    })
    .await;
    (child, base)
}

/// `VmRSS` or `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim_start_matches(':')
                .split_whitespace()
                .next()
        })
        .and_then(|v| v.parse().ok())
        .expect("memory field")
}

/// Sends a 50 MB chunked body in 64 KiB chunks, as fast as the server takes it; returns the
/// server's answer (the status line), if it sent one before closing.
async fn upload_chunked(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let head = "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/x-www-form-urlencoded\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.ok()?;
    let chunk = {
        let mut c = b"10000\r\n".to_vec();
        c.extend(std::iter::repeat_n(b'a', 0x10000));
        c.extend_from_slice(b"\r\n");
        c
    };
    for _ in 0..800 {
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().map(str::to_owned)
}

/// Twenty parallel 50 MB bodies, each way a client might send one: chunked, declared, and as
/// cleartext HTTP/2 with prior knowledge (which carries no length at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_50_mb_uploads_leave_memory_flat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, base) = serve_alone(dir.path()).await;
    let pid = child.id().expect("pid");
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let before = memory_kib(pid, "VmRSS");

    let chunked: Vec<_> = (0..20)
        .map(|_| tokio::spawn(upload_chunked(port)))
        .collect();
    for upload in chunked {
        if let Some(status) = upload.await.expect("task") {
            assert!(status.starts_with("HTTP/1.1 413"), "{status}");
        }
    }

    let big = vec![b'a'; 50 * 1024 * 1024];
    let client = Client::new();
    let declared: Vec<_> = (0..20)
        .map(|_| {
            let req = client
                .post(format!("{base}/api/v1/auth/login"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(big.clone());
            tokio::spawn(async move { req.send().await.map(|r| r.status()) })
        })
        .collect();
    for upload in declared {
        if let Ok(status) = upload.await.expect("task") {
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        }
    }

    let h2 = Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client");
    let over_h2: Vec<_> = (0..20)
        .map(|_| {
            let req = h2
                .post(format!("{base}/api/v1/auth/login"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(big.clone());
            tokio::spawn(async move { req.send().await.map(|r| r.status()) })
        })
        .collect();
    for upload in over_h2 {
        let outcome = upload.await.expect("task");
        assert!(outcome.is_err(), "h2c is not served: {outcome:?}");
    }

    let peak = memory_kib(pid, "VmHWM");
    assert!(
        peak < before + 24 * 1024,
        "peak RSS {peak} KiB vs {before} KiB before the uploads: the bodies were buffered"
    );
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), StatusCode::OK, "the server is unharmed");
}
