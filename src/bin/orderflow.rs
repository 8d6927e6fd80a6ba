//! The operator CLI `orderflow` (crates/ops): topics, feed, replay and verify, inspect, status,
//! the exception report, metrics, simulate and bench. `orderflow --help` lists them.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orderflow_ops::cli::operator_main()
}
