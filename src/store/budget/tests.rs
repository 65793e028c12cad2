//! Unit tests of the connection budgets (one needs PostgreSQL's server binaries).

use std::{future::Future, pin::Pin, str::FromStr, task::Poll};

use super::{pg_cluster::PgCluster, *};
use crate::store::CapturedLog;

fn server(host_port: &str) -> PgConnectOptions {
    PgConnectOptions::from_str(&format!("postgres://u@{host_port}/db")).expect("options")
}

#[test]
fn permits_are_counted_per_server_and_an_exhausted_one_is_logged_once_per_period() {
    let log = CapturedLog::default();
    let _guard = tracing::subscriber::set_default(log.subscriber());
    // Paused time: the waits below pass as soon as nothing else can run.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let budgets = Budgets::new(2, Duration::from_secs(10), Duration::from_millis(20));
        let a = server("db-a:5432");
        let held = [
            budgets.permit(&a).await.expect("first"),
            budgets.permit(&a).await.expect("second"),
        ];
        // Another server (another port of the same host) has its own budget.
        let b = budgets
            .permit(&server("db-a:5433"))
            .await
            .expect("other server");
        for _ in 0..3 {
            let refused = budgets.permit(&a).await;
            assert!(matches!(refused, Err(StoreError::Busy(_))), "{refused:?}");
        }
        let usage = budgets.usage();
        assert_eq!(usage.len(), 2);
        assert_eq!(
            (
                usage[0].server.as_str(),
                usage[0].limit,
                usage[0].in_use,
                usage[0].refused
            ),
            ("db-a:5432", 2, 2, 3)
        );
        assert_eq!(
            (usage[1].server.as_str(), usage[1].in_use),
            ("db-a:5433", 1)
        );
        drop(held);
        drop(b);
        // Counted out at once, given back once PostgreSQL has counted the backends out.
        assert_eq!(budgets.usage()[0].in_use, 0);
        tokio::time::sleep(EXIT_MARGIN).await;
        let again = budgets.permit(&a).await.expect("a permit back");
        assert_eq!((budgets.usage()[0].in_use, budgets.usage()[0].idle), (1, 0));
        drop(again);
        assert_eq!(budgets.usage()[0].in_use, 0);
    });
    let text = log.text();
    assert_eq!(
        text.matches("database server's budget is busy").count(),
        1,
        "three refusals within ten seconds, one warning: {text}"
    );
    assert!(text.contains("db-a:5432"), "{text}");
}

/// Polls `future` once, without yielding to the runtime's other tasks.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

#[tokio::test]
#[cfg_attr(
    not(vigia_test_postgres),
    ignore = "needs VIGIA_TEST_POSTGRES_URL (the Postgres group): PostgreSQL's server binaries (initdb, pg_ctl) for a cluster of the test's own"
)]
async fn a_waiting_pool_closes_one_idle_connection_of_another_however_often_it_wakes() {
    let cluster = PgCluster::start_for_test(10);
    let options =
        PgConnectOptions::from_str(&format!("{}/postgres", cluster.url())).expect("a URL");
    let budgets = Budgets::new(2, Duration::from_secs(60), Duration::from_secs(5));
    let (first, second) = (budgets.pool(options.clone(), 5), budgets.pool(options, 5));
    // The first pool holds the whole budget: one connection busy, one idle.
    let busy = first.lease().await.expect("a connection");
    drop(first.lease().await.expect("a connection"));

    // The second pool's caller closes the idle one for its permit and waits for the
    // goodbye (a task this test does not let run yet).
    let mut waiting = Box::pin(second.lease());
    assert!(poll_once(&mut waiting).await.is_pending());
    // The busy connection comes back and wakes the caller, the first permit still away.
    drop(busy);
    assert!(poll_once(&mut waiting).await.is_pending());

    assert_eq!(
        budgets.usage()[0].reclaimed,
        1,
        "one permit wanted, one closed"
    );
    assert_eq!(
        first.0.pool.status().available,
        1,
        "the returned one stays open"
    );
    let lease = waiting.await.expect("the reclaimed permit");
    let usage = &budgets.usage()[0];
    assert_eq!((usage.in_use, usage.idle), (1, 1));
    drop(lease);
}
