use super::*;
use sqlx::sqlite::SqlitePoolOptions;

#[tokio::test]
async fn queries_use_the_case_insensitive_indexes() {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    let store = Store::Sqlite(pool.clone());
    store.migrate().await.expect("migrations apply");
    for (sql, index) in [
        (BY_LOGIN, "users_username_ci"),
        (BY_LOGIN, "users_email_ci"),
        (BY_EMAIL, "users_email_ci"),
    ] {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind("x")
                .fetch_all(&pool)
                .await
                .expect("plan");
        let text = plan
            .iter()
            .map(|r| r.3.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains(index), "{sql}\nplan:\n{text}");
        assert!(!text.contains("SCAN users"), "{sql} scans:\n{text}");
    }
}
