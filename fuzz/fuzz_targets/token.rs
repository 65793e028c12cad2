//! Token parsing must never panic on attacker input, and no fuzz input may ever verify: a
//! forged token would need the scope's derived key.
#![no_main]

use std::{sync::OnceLock, time::Duration};

use libfuzzer_sys::fuzz_target;
use vigia::{
    auth::token::{TokenService, peek_tenant},
    domain::{Scope, TenantId},
    tenancy::{ServerSecret, SigningKey},
};

struct Fixture {
    scope: Scope,
    key: SigningKey,
    tokens: TokenService,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let secret = ServerSecret::new(vec![7u8; 32]);
        let scope = Scope::Tenant(TenantId::parse("acme").expect("valid tenant id"));
        let key = SigningKey::derive(&secret, &scope);
        let tokens = TokenService::new(Duration::from_secs(3600), Duration::from_secs(30));
        Fixture { scope, key, tokens }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    // The unverified peek may accept or refuse anything; it only must not panic.
    let _ = peek_tenant(input);
    let verified = f.tokens.verify(&f.key, &f.scope, input);
    assert!(
        verified.is_err(),
        "a fuzz input verified as a token: {input:?} -> {verified:?}"
    );
});
