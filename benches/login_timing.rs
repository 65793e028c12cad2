//! Login timing: does a login reveal whether an account exists?
//!
//! `cargo bench --bench login_timing` starts the real server (release build) on loopback over a
//! temporary directory, then alternates logins for an unknown name and for a real user with a
//! wrong password, one at a time, and compares the medians. Lockout and the per-address limit
//! are raised out of the way so that every attempt pays for its password check.

use std::time::{Duration, Instant};

use vigia::{
    auth::password::Hasher,
    config::Settings,
    domain::{Email, Password, Permissions, Role, Roles, TenantId, Username},
    startup::Application,
    store::users::NewUser,
    tenancy::provision::{self, NewTenant},
};

const ROUNDS: usize = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data").display().to_string();
    let tenants = dir.path().join("tenants").display().to_string();
    let settings = Settings::from_overrides(&[
        ("server.listen", "127.0.0.1:0"),
        ("data_dir", &data),
        ("tenants.dir", &tenants),
        (
            "jwt.secret",
            "bench-secret-0123456789abcdef-0123456789abcdef",
        ),
        ("security.lockout_threshold", "1000000"),
        ("security.login_attempts_per_ip_per_minute", "1000000"),
    ])?;
    let hasher = Hasher::new(&settings.argon2)?;
    let user = NewUser {
        username: Username::parse("known.user")?,
        email: Email::parse("known.user@example.com")?,
        full_name: None,
        password_hash: hasher
            .hash(
                &vigia::domain::Scope::Legacy,
                Password::parse("SecurePass123".into(), "password")?,
            )
            .await?,
        is_active: true,
        empleado_id: None,
        permissions: Permissions::default(),
        roles: Roles::new(vec![Role::parse("qf")?])?,
    };
    provision::create_tenant(
        &settings,
        &vigia::store::PoolSettings::from(&settings.database),
        &vigia::tenancy::Source::Files(settings.tenants.dir.clone()),
        NewTenant {
            id: TenantId::parse("bench")?,
            database_url: None,
            name: None,
            first_user: Some(user),
            via: "bench",
        },
    )
    .await?;
    let app = Application::build(settings).await?;
    let url = format!("http://127.0.0.1:{}/api/v1/auth/login", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let client = reqwest::Client::new();
    let login = |username: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let start = Instant::now();
            let status = client
                .post(url)
                .header("X-Tenant", "bench")
                .form(&[("username", username), ("password", "WrongPass123")])
                .send()
                .await
                .expect("sent")
                .status();
            assert_eq!(status, 401);
            start.elapsed()
        }
    };
    // Warm up both paths (pool, caches, dummy hash).
    for _ in 0..10 {
        login("nobody.here").await;
        login("known.user").await;
    }
    let (mut unknown, mut known) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        unknown.push(login("nobody.here").await);
        known.push(login("known.user").await);
    }
    let (u, k) = (median(&mut unknown), median(&mut known));
    let diff = (u.as_secs_f64() - k.as_secs_f64()).abs() / k.as_secs_f64() * 100.0;
    println!(
        "login timing over {ROUNDS} rounds: unknown user median {:.2} ms, known user with wrong password median {:.2} ms, difference {diff:.2}% (goal < 5%)",
        ms(u),
        ms(k)
    );
    Ok(())
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
