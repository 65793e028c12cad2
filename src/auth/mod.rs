//! Authentication: who is asking, and may they.
//!
//! - [`password`]: argon2id on a bounded blocking pool, with a dummy hash for unknown users.
//! - [`token`]: HS256 tokens with the contract's claims, per-scope keys, RFC 8725 checks.
//! - [`Auth`]: the flows the API calls — login, authenticate a bearer token, change and reset a
//!   password — each deciding status-relevant outcomes in the contract's order (nothing about
//!   an account is revealed before its password checked out).

pub mod password;
pub mod token;

use std::sync::Arc;

use self::{
    password::Hasher,
    token::{Claims, TokenError, TokenService, peek_tenant},
};
use crate::{
    domain::{Email, LoginIdentifier, Password, Scope, TenantId},
    error::Error,
    store::users::User,
    tenancy::{Registry, TenancyError, Tenant},
};

/// The authenticated caller of a request.
#[derive(Debug)]
pub struct Principal {
    pub tenant: Arc<Tenant>,
    pub claims: Claims,
    /// Read fresh from the tenant's database for this request.
    pub user: User,
}

/// A successful login.
#[derive(Debug)]
pub struct Login {
    pub access_token: String,
    pub user: User,
}

pub struct Auth {
    pub hasher: Hasher,
    pub tokens: TokenService,
}

impl Auth {
    /// Checks a username-or-e-mail and password in `tenant`; issues a token.
    pub async fn login(
        &self,
        tenant: &Tenant,
        login: &LoginIdentifier,
        password: Password,
    ) -> Result<Login, Error> {
        let user = tenant.store.user_by_login(login).await?;
        let stored = user.as_ref().map(|u| u.password_hash.as_str());
        let verified = self.hasher.verify(password.clone(), stored).await?;
        let Some(user) = user.filter(|_| verified.matches) else {
            return Err(Error::BadCredentials);
        };
        // Only now, with the password proven, may the answer say anything about the account.
        if !user.is_active {
            return Err(Error::Forbidden("Inactive user".into()));
        }
        if user.roles.is_empty() {
            return Err(Error::Forbidden("User has no roles assigned".into()));
        }
        if verified.needs_rehash {
            self.rehash_in_background(tenant, user.id, password);
        }
        let access_token = self
            .tokens
            .issue(&tenant.key, &tenant.scope, &user)
            .map_err(Error::Internal)?;
        Ok(Login { access_token, user })
    }

    /// Upgrades a hash made with older parameters; a failure only costs the upgrade.
    fn rehash_in_background(&self, tenant: &Tenant, user_id: i64, password: Password) {
        let hasher = self.hasher.clone();
        let store = tenant.store.clone();
        tokio::spawn(async move {
            let outcome = match hasher.hash(password).await {
                Ok(hash) => store
                    .set_password_hash(user_id, &hash)
                    .await
                    .map_err(Error::from),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = outcome {
                tracing::warn!(user_id, error = %e, "could not upgrade a password hash");
            }
        });
    }

    /// Resolves the scope (the `X-Tenant` header, else the token's unverified `tenant` claim,
    /// used only to pick the key), verifies the token with that scope's key and loads the user.
    pub async fn authenticate(
        &self,
        registry: &Registry,
        header_tenant: Option<TenantId>,
        token: &str,
    ) -> Result<Principal, Error> {
        let from_header = header_tenant.is_some();
        let scope = match header_tenant {
            Some(id) => Scope::Tenant(id),
            None => match peek_tenant(token)? {
                None => Scope::Legacy,
                Some(raw) => Scope::Tenant(TenantId::parse(&raw).map_err(|_| TokenError::Invalid)?),
            },
        };
        let tenant = match registry.resolve(&scope).await {
            Ok(tenant) => tenant,
            // An unverified claim naming no tenant says nothing but "bad token".
            Err(TenancyError::Unknown) if !from_header => return Err(TokenError::Invalid.into()),
            Err(e) => return Err(e.into()),
        };
        let claims = self.tokens.verify(&tenant.key, &scope, token)?;
        let user = tenant
            .store
            .user_by_id(claims.uid)
            .await?
            .ok_or(TokenError::Invalid)?;
        if !user.is_active {
            return Err(Error::Forbidden("Inactive user".into()));
        }
        Ok(Principal {
            tenant,
            claims,
            user,
        })
    }

    /// Changes the caller's password after checking the current one.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: Password,
        new: Password,
    ) -> Result<(), Error> {
        if current.as_bytes() == new.as_bytes() {
            return Err(Error::Validation(
                "new_password must differ from current_password".into(),
            ));
        }
        let verified = self
            .hasher
            .verify(current, Some(&principal.user.password_hash))
            .await?;
        if !verified.matches {
            return Err(Error::WrongPassword);
        }
        let hash = self.hasher.hash(new).await?;
        principal
            .tenant
            .store
            .set_password_hash(principal.user.id, &hash)
            .await?;
        Ok(())
    }

    /// Sets the password of the user with `email` in `tenant`.
    pub async fn reset_password(
        &self,
        tenant: &Tenant,
        email: &Email,
        new: Password,
    ) -> Result<User, Error> {
        let user = tenant
            .store
            .user_by_email(email)
            .await?
            .ok_or_else(|| Error::NotFound("User not found".into()))?;
        let hash = self.hasher.hash(new).await?;
        tenant.store.set_password_hash(user.id, &hash).await?;
        Ok(user)
    }
}
