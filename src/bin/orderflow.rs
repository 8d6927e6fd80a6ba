//! The operator CLI: `orderflow topics create | replay [--verify] | inspect <order_id>`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orderflow_ops::cli::operator_main()
}
