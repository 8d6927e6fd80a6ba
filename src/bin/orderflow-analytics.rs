//! The analytics projection and its dashboard: KPIs, customer segments, the lifecycle board
//! and a sales forecast, folded from the log into an embedded store.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orderflow_analytics::app::main()
}
