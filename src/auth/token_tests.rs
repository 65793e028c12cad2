//! Issuing and verifying tokens.

use super::*;
use crate::{
    domain::{Email, Permissions, Roles, TenantId, Username},
    tenancy::ServerSecret,
};

fn user() -> User {
    User {
        id: 123,
        username: Username::parse("juan.perez").expect("username"),
        email: Email::parse("juan.perez@example.com").expect("email"),
        full_name: None,
        password_hash: String::new(),
        is_active: true,
        empleado_id: Some(456),
        permissions: Permissions::default(),
        roles: Roles::from_stored(vec!["qf".into(), "admin".into()]),
        token_version: 3,
        locked_until: None,
        password_changed_at: None,
    }
}

fn acme() -> Scope {
    Scope::Tenant(TenantId::parse("acme-pharma").expect("valid"))
}

fn settings(algorithm: JwtAlgorithm, ttl: Duration) -> TokenSettings {
    TokenSettings {
        algorithm,
        ttl,
        leeway: Duration::from_secs(30),
        audience: "vigia".into(),
        public_url: "https://auth.example.com".into(),
    }
}

fn service(algorithm: JwtAlgorithm, ttl: Duration) -> TokenService {
    TokenService::new(settings(algorithm, ttl))
}

/// The service's own lifetime (sessions idle out after a day here), in no session.
fn issue(tokens: &TokenService) -> Issue {
    Issue {
        lifetime: tokens.lifetime(Duration::from_secs(86_400)),
        sid: None,
    }
}

const BOTH: [JwtAlgorithm; 2] = [JwtAlgorithm::EdDSA, JwtAlgorithm::HS256];

#[test]
fn tokens_round_trip_with_the_contract_claims() {
    for algorithm in BOTH {
        let secret = ServerSecret::new(vec![7; 32]).signing_with(algorithm);
        let key = SigningKey::derive(&secret, &acme(), None);
        let tokens = service(algorithm, Duration::from_secs(480 * 60));
        let (token, _) = tokens
            .issue(&key, &acme(), &user(), vec![], issue(&tokens))
            .expect("signed");
        let header = jsonwebtoken::decode_header(&token).expect("a JWT");
        assert_eq!(
            (header.alg, header.kid),
            (key.algorithm, Some(key.kid.clone()))
        );
        let claims = tokens.verify(&key, &acme(), &token).expect("verifies");
        assert_eq!(claims.sub, "123");
        assert_eq!(claims.role, "admin");
        assert_eq!(claims.roles, ["qf", "admin"]);
        assert_eq!(claims.tenant.as_deref(), Some("acme-pharma"));
        assert_eq!(claims.exp - claims.iat, 480 * 60);
        assert_eq!(claims.ver, 3);
        assert_eq!(claims.iss, "https://auth.example.com/tenants/acme-pharma");
        assert_eq!(claims.aud, "vigia");
        assert_eq!(peek_tenant(&token), Ok(Some("acme-pharma".into())));
    }
}

#[test]
fn another_audience_issuer_or_algorithm_is_refused() {
    let secret = ServerSecret::new(vec![7; 32]);
    let key = SigningKey::derive(&secret, &acme(), None);
    let tokens = service(JwtAlgorithm::EdDSA, Duration::from_secs(60));
    let (token, _) = tokens
        .issue(&key, &acme(), &user(), vec![], issue(&tokens))
        .expect("signed");
    let minute = Duration::from_secs(60);
    for elsewhere in [
        TokenSettings {
            audience: "reports".into(),
            ..settings(JwtAlgorithm::EdDSA, minute)
        },
        TokenSettings {
            public_url: "https://other.example.com".into(),
            ..settings(JwtAlgorithm::EdDSA, minute)
        },
    ] {
        let elsewhere = TokenService::new(elsewhere);
        assert_eq!(
            elsewhere.verify(&key, &acme(), &token),
            Err(TokenError::Invalid)
        );
    }
    // An HS256 server never accepts an EdDSA token, nor the reverse (RFC 8725 3.1).
    let hs_secret = secret.clone().signing_with(JwtAlgorithm::HS256);
    let hs_key = SigningKey::derive(&hs_secret, &acme(), None);
    let hs = service(JwtAlgorithm::HS256, Duration::from_secs(60));
    let (hs_token, _) = hs
        .issue(&hs_key, &acme(), &user(), vec![], issue(&hs))
        .expect("signed");
    assert!(hs.verify(&hs_key, &acme(), &token).is_err());
    assert!(tokens.verify(&key, &acme(), &hs_token).is_err());
}

#[test]
fn a_token_never_verifies_under_another_scope() {
    for algorithm in BOTH {
        let secret = ServerSecret::new(vec![7; 32]).signing_with(algorithm);
        let tokens = service(algorithm, Duration::from_secs(60));
        let other = Scope::Tenant(TenantId::parse("other").expect("valid"));
        let (token, _) = tokens
            .issue(
                &SigningKey::derive(&secret, &acme(), None),
                &acme(),
                &user(),
                vec![],
                issue(&tokens),
            )
            .expect("signed");
        for scope in [other, Scope::Legacy] {
            let key = SigningKey::derive(&secret, &scope, None);
            assert_eq!(
                tokens.verify(&key, &scope, &token),
                Err(TokenError::Invalid)
            );
        }
        // Secrets rotate: a token of the old secret verifies while it is still listed.
        let rotated =
            ServerSecret::rotating(vec![vec![8; 32], vec![7; 32]]).signing_with(algorithm);
        let key = SigningKey::derive(&rotated, &acme(), None);
        assert!(tokens.verify(&key, &acme(), &token).is_ok());
        let retired = SigningKey::derive(
            &ServerSecret::new(vec![8; 32]).signing_with(algorithm),
            &acme(),
            None,
        );
        assert_eq!(
            tokens.verify(&retired, &acme(), &token),
            Err(TokenError::Invalid)
        );
        // Even the right key refuses a token whose claim names another scope.
        let key = SigningKey::derive(&secret, &acme(), None);
        assert_eq!(
            tokens.verify(&key, &Scope::Legacy, &token),
            Err(TokenError::Invalid)
        );
    }
}

#[test]
fn client_tokens_verify_only_as_client_tokens_and_user_tokens_only_as_user_tokens() {
    let secret = ServerSecret::new(vec![7; 32]);
    let key = SigningKey::derive(&secret, &acme(), None);
    let tokens = service(JwtAlgorithm::EdDSA, Duration::from_secs(600));
    let (client, _) = tokens
        .issue_client(
            &key,
            &acme(),
            "svc-1",
            vec!["icsr.view".into()],
            Duration::from_secs(60),
        )
        .expect("signed");
    let claims = tokens
        .verify_client(&key, &acme(), &client)
        .expect("verifies");
    assert_eq!(
        (claims.sub.as_str(), claims.client_id.as_str()),
        ("svc-1", "svc-1")
    );
    assert_eq!(claims.exp - claims.iat, 60);
    assert_eq!(claims.permissions, ["icsr.view"]);
    // Neither kind passes for the other: a client is no user, and no user a client.
    assert_eq!(
        tokens.verify(&key, &acme(), &client),
        Err(TokenError::NotAUser)
    );
    let (user_token, _) = tokens
        .issue(&key, &acme(), &user(), vec![], issue(&tokens))
        .expect("signed");
    assert!(tokens.verify_client(&key, &acme(), &user_token).is_err());
    // Nor in another scope.
    let legacy = SigningKey::derive(&secret, &Scope::Legacy, None);
    assert!(
        tokens
            .verify_client(&legacy, &Scope::Legacy, &client)
            .is_err()
    );
}

#[test]
fn a_token_lives_no_longer_than_the_session_idle_timeout() {
    let tokens = service(JwtAlgorithm::EdDSA, Duration::from_secs(480 * 60));
    assert_eq!(
        tokens.lifetime(Duration::from_secs(15 * 60)),
        Duration::from_secs(15 * 60)
    );
    assert_eq!(
        tokens.lifetime(Duration::from_secs(24 * 3600)),
        Duration::from_secs(480 * 60)
    );
}
