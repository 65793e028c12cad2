//! Unit tests of loading and checking the settings.

use secrecy::ExposeSecret;

use super::{
    Environment, Loaded, Origin, Settings,
    layers::{FileChoice, Layers},
    load::DEFAULTS,
};

#[test]
fn defaults_follow_the_contract() {
    let s = Settings::from_overrides(&[]).expect("defaults parse");
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8000");
    assert_eq!(s.environment, Environment::Development);
    assert_eq!(s.jwt.ttl_minutes, 480);
    assert_eq!(s.security.lockout_threshold, 5);
    assert_eq!(s.argon2.memory_kib, 19456);
    assert_eq!(
        s.legacy_database_url().expose_secret(),
        "sqlite://./data/legacy.db"
    );
    assert_eq!(s.jwt.algorithm, super::JwtAlgorithm::EdDSA);
    assert_eq!(s.jwt.audience, "vigia");
    assert_eq!(s.public_url(s.server.listen), "http://127.0.0.1:8000");
}

#[test]
fn public_urls_are_absolute_http_bases() {
    for good in [
        "https://auth.example.com",
        "https://auth.example.com/",
        "http://10.0.0.5:8000/vigia",
    ] {
        let s = Settings::from_overrides(&[("server.public_url", good)]).expect(good);
        let bound = "127.0.0.1:1".parse().expect("address");
        assert!(!s.public_url(bound).ends_with('/'), "{good}");
    }
    for bad in [
        "auth.example.com",
        "ftp://auth.example.com",
        "https://",
        "https://auth.example.com/?x=1",
        "https://user@auth.example.com",
        "https://auth.example.com/#top",
    ] {
        assert!(
            Settings::from_overrides(&[("server.public_url", bad)]).is_err(),
            "{bad}"
        );
    }
    assert!(Settings::from_overrides(&[("jwt.audience", " ")]).is_err());
    assert!(Settings::from_overrides(&[("jwt.algorithm", "RS256")]).is_err());
}

#[test]
fn production_refuses_a_short_or_missing_secret() {
    assert!(Settings::from_overrides(&[("environment", "production")]).is_err());
    assert!(
        Settings::from_overrides(&[("environment", "production"), ("jwt.secret", "short")])
            .is_err()
    );
    let long = "x".repeat(32);
    assert!(
        Settings::from_overrides(&[("environment", "production"), ("jwt.secret", &long)]).is_ok()
    );
    let rotated_short = format!("{long},short");
    assert!(
        Settings::from_overrides(&[
            ("environment", "production"),
            ("jwt.secret", &rotated_short)
        ])
        .is_err(),
        "every listed secret must be long enough"
    );
}

#[test]
fn serve_refuses_development_on_a_network_address_unless_allowed() {
    let check = |pairs: &[(&str, &str)]| {
        Settings::from_overrides(pairs)
            .expect("other commands accept it")
            .check_serving()
    };
    for listen in ["0.0.0.0:8000", "[::]:8000", "192.0.2.7:8000"] {
        let refused = check(&[("server.listen", listen)]).expect_err(listen);
        let text = refused.to_string();
        assert!(
            text.contains("environment = \"production\"")
                && text.contains("VIGIA__JWT__SECRET")
                && text.contains("server.allow_development_on_network")
                && !text.contains('\n'),
            "{text}"
        );
        check(&[
            ("server.listen", listen),
            ("server.allow_development_on_network", "true"),
        ])
        .expect("allowed explicitly");
    }
    for listen in [
        "127.0.0.1:8000",
        "127.0.0.2:0",
        "[::1]:8000",
        "[::ffff:127.0.0.1]:8000",
    ] {
        check(&[("server.listen", listen)]).expect(listen);
    }
    let long = "x".repeat(32);
    check(&[
        ("environment", "production"),
        ("jwt.secret", &long),
        ("server.listen", "0.0.0.0:8000"),
    ])
    .expect("production may listen anywhere");
}

#[test]
fn the_example_configuration_parses() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/vigia.example.toml"
    ));
    let secret = "x".repeat(32);
    let layers = Layers::read(
        DEFAULTS,
        FileChoice::Given(path),
        &[],
        &[("jwt.secret", &secret)],
    )
    .expect("the example reads");
    let loaded = Loaded::from_layers(layers)
        .expect("the example has no unknown key and passes the production checks");
    assert_eq!(loaded.settings.environment, Environment::Production);
}

fn loaded(env: &[(&str, &str)], overrides: &[(&str, &str)]) -> anyhow::Result<Loaded> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Loaded::from_layers(Layers::read(
        DEFAULTS,
        FileChoice::Nothing,
        &env,
        overrides,
    )?)
}

#[test]
fn every_declared_key_is_known_set_or_not() {
    let loaded = loaded(&[], &[]).expect("defaults load");
    let keys = loaded.keys();
    // Optional keys nobody set are declared all the same.
    for key in [
        "legacy.database_url",
        "jwt.secret",
        "admin.token",
        "redis.url",
        "metrics.token",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    // Every key of the defaults is a declared key (a typo there would fail every load).
    let defaults: toml::Table = DEFAULTS.parse().expect("defaults are TOML");
    for (name, value) in &defaults {
        let leaves: Vec<String> = match value.as_table() {
            Some(section) => section.keys().map(|k| format!("{name}.{k}")).collect(),
            None => vec![name.clone()],
        };
        for leaf in leaves {
            assert!(keys.contains(&leaf), "{leaf} is not declared");
        }
    }
}

#[test]
fn unknown_keys_are_refused_wherever_they_are_written() {
    let err = loaded(&[], &[("securty.lockout_threshold", "3")])
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "unknown configuration key \"securty.lockout_threshold\" (in an override; did you \
         mean \"security.lockout_threshold\"?)"
    );
    let err = loaded(&[("VIGIA__SERVER__LISTN", "127.0.0.1:1")], &[])
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "unknown configuration key \"server.listn\" (in environment variable \
         VIGIA__SERVER__LISTN; did you mean \"server.listen\"?)"
    );
}

#[test]
fn a_malformed_value_is_named_with_where_it_was_written() {
    let err = loaded(&[("VIGIA__SERVER__LISTEN", "nowhere")], &[])
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "invalid configuration key \"server.listen\" (in environment variable \
         VIGIA__SERVER__LISTEN): invalid socket address syntax"
    );
    let err = loaded(&[], &[("security.lockout_threshold", "many")])
        .err()
        .expect("refused");
    assert!(
        err.to_string().starts_with(
            "invalid configuration key \"security.lockout_threshold\" (in an override): "
        ),
        "{err}"
    );
}

#[test]
fn only_double_underscore_variables_are_configuration() {
    // Handed to the config crate as they are: its prefix is `vigia` + the `__` separator.
    let loaded = loaded(
        &[
            ("VIGIA_TEST_POSTGRES_URL", "postgres://nobody@127.0.0.1:1"),
            ("VIGIA_BIN", "/nonexistent"),
            ("VIGIA_SECURTY", "1"),
            ("vigia__security__lockout_threshold", "9"),
        ],
        &[],
    )
    .expect("single-underscore variables are ignored");
    assert_eq!(loaded.settings.security.lockout_threshold, 9);
    assert_eq!(
        loaded.origin("security.lockout_threshold"),
        Origin::Env("vigia__security__lockout_threshold".into())
    );
}

#[test]
fn no_value_held_in_a_secret_type_is_ever_shown() {
    // Every declared key set to a distinctive value, one at a time; wherever the settings
    // keep it out of their Debug output (a secret type), `config show` must not print its
    // secret part either, whatever the key is called. The value is a URL with a password,
    // so the URLs shown with their password masked are held to it too. Keys whose type
    // refuses such a string are skipped.
    let keys = loaded(&[], &[]).expect("defaults load").keys().to_vec();
    let mut secret_typed = Vec::new();
    for key in &keys {
        let marker = format!("Marker-{}-0123456789abcdef", key.replace('.', "-"));
        let value = format!("postgres://user:{marker}@host/db");
        let Ok(loaded) = loaded(&[], &[(key, &value)]) else {
            continue;
        };
        if !format!("{:?}", loaded.settings).contains(&marker) {
            assert!(!loaded.show().contains(&marker), "{key} printed in clear");
            secret_typed.push(key.clone());
        }
    }
    for key in [
        "jwt.secret",
        "admin.token",
        "metrics.token",
        "legacy.database_url",
        "redis.url",
    ] {
        assert!(
            secret_typed.contains(&key.to_owned()),
            "{key} is not a secret type"
        );
    }
}

#[test]
fn a_short_metrics_token_is_refused() {
    let err = Settings::from_overrides(&[("metrics.token", "too-short")])
        .expect_err("a 9-character token is refused");
    assert!(err.to_string().contains("metrics.token"), "{err:#}");
    assert!(Settings::from_overrides(&[("metrics.token", &"t".repeat(32))]).is_ok());
}

#[test]
fn secrets_never_show_in_debug_output() {
    let s = Settings::from_overrides(&[("jwt.secret", "super-secret-value-0123456789abcdef")])
        .expect("parses");
    assert!(!format!("{s:?}").contains("super-secret-value"));
}
