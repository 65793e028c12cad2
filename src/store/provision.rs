//! Creating and dropping whole databases: a tenant's SQLite file (0600) or Postgres database,
//! migrated before it is handed out, and removed again when a later provisioning step fails.

use std::path::Path;

use sqlx::{ConnectOptions, Executor};

use super::{
    Backend, DatabaseUrl, PoolSettings, Store, StoreError, files, url::postgres_database_name,
};

/// Whether provisioning made the database or found it already there (and so must not remove
/// it when a later step fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    Created,
    Existing,
}

/// Creates the database `url` names and migrates it; returns the open store.
///
/// SQLite: creates the file 0600 (and its missing directories 0700, see [`files`]); an existing
/// file is refused, so provisioning never adopts a stray database by accident. Postgres: `CREATE DATABASE` through the server's
/// `postgres` maintenance database (it cannot run in a transaction); a database that already
/// exists is adopted as is (an operator may pre-create it where the service lacks `CREATEDB`).
pub async fn create_database(
    url: &DatabaseUrl,
    settings: &PoolSettings,
) -> Result<(Store, Provisioned), StoreError> {
    let provisioned = match url.backend() {
        Backend::Sqlite => {
            let options = url.sqlite_options()?;
            let path = options.get_filename();
            let io_error = |e: std::io::Error, what: &Path| {
                StoreError::from(
                    anyhow::Error::new(e).context(format!("creating {}", what.display())),
                )
            };
            if !url.sqlite_in_memory() {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    files::create_private_dir_all(dir).map_err(|e| io_error(e, dir))?;
                }
                // Created here, 0600, before SQLite opens it (SQLite would make it 0644).
                match files::create_private_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(StoreError::Conflict(format!(
                            "database file {} already exists",
                            path.display()
                        )));
                    }
                    Err(e) => return Err(io_error(e, path)),
                }
            }
            Provisioned::Created
        }
        Backend::Postgres => {
            let options = url.postgres_options()?;
            let name = postgres_database_name(&options)?;
            let _permit = settings.budgets.permit(&options).await?;
            let mut admin = options.database("postgres").connect().await?;
            // `name` passed `postgres_database_name`: only [A-Za-z0-9_-], so quoting is safe.
            let sql = format!("CREATE DATABASE \"{name}\"");
            let outcome = admin.execute(sqlx::AssertSqlSafe(sql)).await;
            let _ = sqlx::Connection::close(admin).await;
            match outcome {
                Ok(_) => Provisioned::Created,
                Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {
                    Provisioned::Existing
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let store = match Store::connect_with(url, settings, true).await {
        Ok(store) => store,
        Err(e) => {
            if provisioned == Provisioned::Created {
                drop_database(url, settings).await;
            }
            return Err(e);
        }
    };
    if let Err(e) = store.migrate().await {
        store.close().await;
        if provisioned == Provisioned::Created {
            drop_database(url, settings).await;
        }
        return Err(e);
    }
    Ok((store, provisioned))
}

/// Removes the database `url` names; best effort, for undoing a failed provisioning. Logs
/// what it could not remove.
pub async fn drop_database(url: &DatabaseUrl, settings: &PoolSettings) {
    let result: Result<(), StoreError> = async {
        match url.backend() {
            Backend::Sqlite => {
                let path = url.sqlite_options()?.get_filename().to_path_buf();
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    match std::fs::remove_file(&file) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(anyhow::Error::new(e).into()),
                    }
                }
            }
            Backend::Postgres => {
                let options = url.postgres_options()?;
                let name = postgres_database_name(&options)?;
                let _permit = settings.budgets.permit(&options).await?;
                let mut admin = options.database("postgres").connect().await?;
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                admin.execute(sqlx::AssertSqlSafe(sql)).await?;
                let _ = sqlx::Connection::close(admin).await;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(database = %url, error = %e, "could not remove a database while undoing a failed step");
    }
}
