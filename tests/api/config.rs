//! The configuration as an operator meets it, through the real binary: a misspelt section, key
//! or `VIGIA__` variable stops every command with one line naming it; other `VIGIA_…`
//! variables are not configuration. No database is involved, so these run once, not per
//! backend.

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
    let line = refused(&finish(vigia(
        dir.path(),
        &["--config", file.as_str(), "tenant", "list"],
    )));
    assert!(line.contains("\"server.listn\""), "{line}");
    assert!(line.contains(&format!("(in {file};")), "{line}");
    assert!(line.contains("did you mean \"server.listen\"?"), "{line}");
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
