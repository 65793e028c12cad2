//! The `vigia` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

/// mimalloc rather than glibc malloc: measurably faster on the request path, and it returns
/// memory after bursts (see the README's performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    vigia::cli::main().await
}
