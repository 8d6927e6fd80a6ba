//! The operator CLI: `orderflow topics create | replay [--verify] | inspect <order_id>`.

fn main() -> std::process::ExitCode {
    orderflow_runtime::cli::operator_main()
}
