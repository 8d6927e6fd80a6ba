//! The state consumer: folds the order event log into per-order state and publishes it.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orderflow_runtime::app::consumer_main(orderflow_runtime::app::Role::State)
}
