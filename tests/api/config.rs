//! The configuration as an operator meets it, through the real binary: a misspelt section, key
//! or `VIGIA__` variable stops every command with one line naming it; other `VIGIA_…`
//! variables are not configuration; `vigia config show` says where each value came from and
//! never prints a secret. No database is involved, so these run once, not per backend.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

/// `vigia` run in `dir`, with none of this process's `VIGIA__` variables (CI's own settings
/// must not leak into what a test configures) but every other variable, `VIGIA_TEST_…` included.
fn vigia(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigia"));
    cmd.current_dir(dir).args(args).env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.to_lowercase().starts_with("vigia__") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `cmd` to its end, failing the test if it still runs after 30 s (e.g. a server that
/// started when it should have refused).
fn finish(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigia runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("waiting for vigia").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vigia was still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    child.wait_with_output().expect("vigia's output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a refusal: non-zero exit, nothing on stdout, exactly one `vigia: error:` line on
/// stderr; returns that line.
fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "accepted: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("vigia: error: "), "{err:?}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    err.trim_end().to_owned()
}

/// A working directory whose `vigia.toml` is `body` (plus a data directory and a port of its
/// own, so a server that started by mistake would touch nothing else).
fn workdir(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("vigia.toml"),
        format!("data_dir = \"./data\"\n{body}"),
    )
    .expect("vigia.toml written");
    dir
}

#[test]
fn a_misspelt_section_stops_the_server_with_one_line_naming_it() {
    let dir = workdir("[server]\nlisten = \"127.0.0.1:0\"\n\n[securty]\nlockout_threshold = 3\n");
    let out = finish(vigia(dir.path(), &["serve"]));
    let line = refused(&out);
    assert_eq!(
        line,
        "vigia: error: unknown configuration key \"securty.lockout_threshold\" (in vigia.toml; \
         did you mean \"security.lockout_threshold\"?)"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing was created before the refusal"
    );
}

#[test]
fn a_misspelt_key_is_named_with_its_section_and_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("custom.toml");
    std::fs::write(&file, "[server]\nlistn = \"0.0.0.0:8000\"\n").expect("written");
    let file = file.display().to_string();
    for command in [["tenant", "list"], ["config", "show"]] {
        let mut args = vec!["--config", file.as_str()];
        args.extend_from_slice(&command);
        let line = refused(&finish(vigia(dir.path(), &args)));
        assert!(line.contains("\"server.listn\""), "{line}");
        assert!(line.contains(&format!("(in {file};")), "{line}");
        assert!(line.contains("did you mean \"server.listen\"?"), "{line}");
    }
}

#[test]
fn a_misspelt_variable_is_named() {
    let dir = workdir("");
    let mut cmd = vigia(dir.path(), &["tenant", "list"]);
    cmd.env("VIGIA__SECURTY__X", "1");
    let line = refused(&finish(cmd));
    assert_eq!(
        line,
        "vigia: error: unknown configuration key \"securty.x\" (in environment variable \
         VIGIA__SECURTY__X)"
    );
}

#[test]
fn single_underscore_variables_are_not_configuration() {
    let dir = workdir("");
    let mut cmd = vigia(dir.path(), &["config", "show"]);
    for (key, value) in [
        ("VIGIA_TEST_FOO", "1"),
        ("VIGIA_TEST_POSTGRES_URL", "postgres://nobody@127.0.0.1:1"),
        ("VIGIA_TEST_REDIS_URL", "redis://127.0.0.1:1"),
        ("VIGIA_TEST_PYTHON", "1"),
        ("VIGIA_TEST_BROWSER", "1"),
        ("VIGIA_BIN", "/nonexistent/vigia"),
        ("VIGIA_SECURTY", "1"),
        ("VIGIA_", "1"),
    ] {
        cmd.env(key, value);
    }
    let out = finish(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        !shown.contains("# env "),
        "nothing came from the environment:\n{shown}"
    );
    assert!(!shown.to_lowercase().contains("securty"), "{shown}");
}

/// The line of `key` in `config show`'s output.
fn line<'a>(shown: &'a str, key: &str) -> &'a str {
    shown
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no line for {key} in:\n{shown}"))
}

#[test]
fn config_show_says_where_every_value_came_from() {
    let dir = workdir("[server]\nlisten = \"127.0.0.1:9999\"\n");
    let mut cmd = vigia(dir.path(), &["config", "show"]);
    cmd.env("VIGIA__SECURITY__LOCKOUT_THRESHOLD", "7");
    let out = finish(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);

    assert_eq!(
        line(&shown, "server.listen"),
        "server.listen = \"127.0.0.1:9999\"  # file vigia.toml"
    );
    assert_eq!(
        line(&shown, "security.lockout_threshold"),
        "security.lockout_threshold = 7  # env VIGIA__SECURITY__LOCKOUT_THRESHOLD"
    );
    assert_eq!(
        line(&shown, "jwt.ttl_minutes"),
        "jwt.ttl_minutes = 480  # default"
    );
    assert_eq!(
        line(&shown, "data_dir"),
        "data_dir = \"./data\"  # file vigia.toml"
    );
    // Keys nobody set, and what the derived ones resolve to.
    assert_eq!(
        line(&shown, "admin.token"),
        "admin.token = \"<unset>\"  # default"
    );
    assert_eq!(
        line(&shown, "metrics.token"),
        "metrics.token = \"<unset>\"  # default"
    );
    assert!(
        line(&shown, "legacy.database_url")
            .starts_with("legacy.database_url = \"sqlite://./data/legacy.db\"  # default"),
        "{shown}"
    );
    assert!(
        line(&shown, "jwt.secret").starts_with("jwt.secret = \"<generated: ./data/jwt-secret>\""),
        "{shown}"
    );

    // Every line after the header is one key, and the whole is TOML.
    let mut keys = Vec::new();
    for l in shown.lines().skip(1) {
        let (key, rest) = l.split_once(" = ").unwrap_or_else(|| panic!("{l:?}"));
        assert!(rest.contains("  # "), "{l:?}");
        keys.push(key.to_owned());
    }
    let unique: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "each key once: {keys:?}");
    for key in [
        "environment",
        "data_dir",
        "server.listen",
        "tenants.dir",
        "legacy.database_url",
        "jwt.secret",
        "jwt.ttl_minutes",
        "security.lockout_threshold",
        "security.lockout_window_minutes",
        "security.lockout_minutes",
        "security.login_attempts_per_ip_per_minute",
        "admin.token",
        "redis.url",
        "metrics.per_tenant",
        "metrics.token",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    let parsed: toml::Table = shown.parse().expect("config show prints TOML");
    assert_eq!(
        parsed["security"]["lockout_threshold"].as_integer(),
        Some(7)
    );
    // Stable: the same configuration prints the same bytes.
    let mut again = vigia(dir.path(), &["config", "show"]);
    again.env("VIGIA__SECURITY__LOCKOUT_THRESHOLD", "7");
    assert_eq!(text(&finish(again).stdout), shown);
}

#[test]
fn config_show_never_prints_a_secret() {
    let file_secrets = [
        "file-admin-token-0123456789abcdef-0123456789",
        "file-db-password-0123456789",
        "file-jwt-one-0123456789abcdef-0123456789abcdef",
        "file-jwt-two-0123456789abcdef-0123456789abcdef",
    ];
    let dir = workdir(&format!(
        "[admin]\ntoken = \"{}\"\n[legacy]\ndatabase_url = \"postgres://vigia:{}@db:5432/vigia\"\n\
         [jwt]\nsecret = [\"{}\", \"{}\"]\n",
        file_secrets[0], file_secrets[1], file_secrets[2], file_secrets[3]
    ));
    let env_secrets = [
        "env-metrics-token-0123456789abcdef-0123456789",
        "env-redis-password-0123456789",
    ];
    let mut cmd = vigia(dir.path(), &["config", "show"]);
    cmd.env("VIGIA__METRICS__TOKEN", env_secrets[0]).env(
        "VIGIA__REDIS__URL",
        format!("redis://:{}@redis:6379/0", env_secrets[1]),
    );
    let out = finish(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    for secret in file_secrets.iter().chain(&env_secrets) {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
        assert!(!stderr.contains(secret), "{secret} printed:\n{stderr}");
    }
    for expected in [
        "admin.token = \"<redacted>\"  # file vigia.toml",
        "legacy.database_url = \"postgres://vigia:<redacted>@db:5432/vigia\"  # file vigia.toml",
        "jwt.secret = \"<redacted: 2 secrets>\"  # file vigia.toml",
        "metrics.token = \"<redacted>\"  # env VIGIA__METRICS__TOKEN",
        "redis.url = \"redis://:<redacted>@redis:6379/0\"  # env VIGIA__REDIS__URL",
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }

    // A secret given in the environment over one in the file: still redacted, and counted.
    for (env_jwt, shown) in [
        (
            "env-jwt-one-0123456789abcdef-0123456789abcdef,env-jwt-two-0123456789abcdef-012345",
            "jwt.secret = \"<redacted: 2 secrets>\"  # env VIGIA__JWT__SECRET",
        ),
        (
            "env-jwt-one-0123456789abcdef-0123456789abcdef",
            "jwt.secret = \"<redacted: 1 secret>\"  # env VIGIA__JWT__SECRET",
        ),
    ] {
        let mut cmd = vigia(dir.path(), &["config", "show"]);
        cmd.env("VIGIA__JWT__SECRET", env_jwt);
        let out = finish(cmd);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(!stdout.contains("env-jwt-"), "{stdout}");
        assert_eq!(line(&stdout, "jwt.secret"), shown);
    }
}

#[test]
fn config_show_is_documented() {
    let out = finish(vigia(Path::new("."), &["--help"]));
    assert!(
        text(&out.stdout).contains("config"),
        "{}",
        text(&out.stdout)
    );
    let out = finish(vigia(Path::new("."), &["config", "show", "--help"]));
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "default",
        "file <FILE>",
        "env <VARIABLE>",
        "redacted",
        "--config",
    ] {
        assert!(help.contains(word), "{word} missing from\n{help}");
    }
}
