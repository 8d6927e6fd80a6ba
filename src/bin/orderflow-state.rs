//! The state consumer: folds the order event log into per-order state and publishes it.

fn main() -> std::process::ExitCode {
    orderflow_runtime::cli::consumer_main(orderflow_runtime::cli::Role::State)
}
