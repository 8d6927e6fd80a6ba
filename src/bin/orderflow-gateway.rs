//! The HTTP gateway: platform callbacks, POS and operators in; the order API out.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orderflow_gateway::cli::gateway_main()
}
