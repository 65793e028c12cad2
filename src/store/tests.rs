//! Unit tests of the database URL and the migrations, and [`CapturedLog`] for tests that
//! check what is logged.

use std::sync::Arc;

use sqlx::migrate::Migrator;

use super::{Backend, DatabaseUrl, migrators};

/// What a test's tracing subscriber wrote, to check what is logged.
#[derive(Clone, Default)]
pub(crate) struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    /// A subscriber writing here (install it with `tracing::subscriber::set_default`).
    pub(crate) fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        let log = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || log.clone())
            .finish()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("UTF-8")
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn urls_mask_their_password() {
    let url = DatabaseUrl::parse("postgres://vigia:hunter2@db:5432/acme").expect("valid");
    assert_eq!(url.to_string(), "postgres://vigia:***@db:5432/acme");
    assert!(!format!("{url:?}").contains("hunter2"));
    assert_eq!(url.backend(), Backend::Postgres);
}

#[test]
fn urls_mask_every_secret_in_their_query_and_userinfo() {
    let cases = [
        (
            "postgres://u:pw@h/db?password=s3cret",
            "postgres://u:***@h/db?password=***",
        ),
        (
            "postgres://u@h:5432/db?sslmode=require&PassWord=s3cret&application_name=vigia",
            "postgres://u@h:5432/db?sslmode=require&PassWord=***&application_name=vigia",
        ),
        // Percent-encoded names ("password", "token"), and '+' read as a space.
        (
            "postgres://h/db?pass%77ord=s3cret&%74oken=s3cret&ssl+password=s3cret",
            "postgres://h/db?pass%77ord=***&%74oken=***&ssl+password=***",
        ),
        (
            "postgresql://h/db?sslpassword=s3cret&passwd=s3cret&pass=s3cret&pwd=s3cret",
            "postgresql://h/db?sslpassword=***&passwd=***&pass=***&pwd=***",
        ),
        (
            "postgres://h/db?secret=s3cret&api_key=s3cret&sslkey=s3cret&auth=s3cret",
            "postgres://h/db?secret=***&api_key=***&sslkey=***&auth=***",
        ),
        // A password with an unencoded '@' (the userinfo ends at the last one).
        ("postgres://u:p@s3cret@h/db", "postgres://u:***@h/db"),
        ("postgres://u:%40s3cret@h/db", "postgres://u:***@h/db"),
        ("postgres://:s3cret@h/db", "postgres://:***@h/db"),
        ("postgres://h/db#password=s3cret", "postgres://h/db#***"),
        // Nothing secret: unchanged.
        (
            "postgres://u@h/db?sslmode=require&sslrootcert=/etc/ca.pem",
            "postgres://u@h/db?sslmode=require&sslrootcert=/etc/ca.pem",
        ),
        (
            "sqlite://./data/tenants/acme.db",
            "sqlite://./data/tenants/acme.db",
        ),
        ("sqlite:x.db?mode=rwc", "sqlite:x.db?mode=rwc"),
    ];
    for (raw, shown) in cases {
        let url = DatabaseUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(url.to_string(), shown, "{raw}");
        assert!(!format!("{url:?}").contains("s3cret"), "{raw}");
    }
}

#[test]
fn the_postgres_driver_never_sees_a_secret_it_would_ignore_and_log() {
    let log = CapturedLog::default();
    let subscriber = log.subscriber();
    let options = tracing::subscriber::with_default(subscriber, || {
        let url = DatabaseUrl::parse(
            "postgres://u@h/db?sslpassword=s3cret&PASSWORD=s3cret&token=s3cret\
             &password=pw&sslmode=require&connect_timeout=5",
        )
        .expect("valid");
        url.postgres_options().expect("options")
    });
    let log = log.text();
    assert!(!log.contains("s3cret"), "{log}");
    // Parameters it knows are kept; one it ignores without a secret name is still reported.
    assert!(log.contains("connect_timeout"), "{log}");
    assert!(matches!(
        options.get_ssl_mode(),
        sqlx::postgres::PgSslMode::Require
    ));
    assert_eq!(options.get_database(), Some("db"));
}

#[test]
fn urls_need_a_known_scheme_and_a_safe_database_name() {
    assert!(DatabaseUrl::parse("mysql://x/y").is_err());
    assert!(DatabaseUrl::parse("postgres://h/").is_err());
    assert!(DatabaseUrl::parse("postgres://h/a\"b").is_err());
    assert!(DatabaseUrl::parse("sqlite://./data/x.db").is_ok());
}

#[test]
fn migrations_have_the_same_versions_on_both_backends() {
    let versions = |m: &Migrator| m.iter().map(|m| m.version).collect::<Vec<_>>();
    let [(_, sqlite), (_, postgres)] = migrators();
    assert!(!versions(sqlite).is_empty());
    assert_eq!(versions(sqlite), versions(postgres));
}
