//! `main` of `orderflow-gateway`: serve (the default), print the OpenAPI document, or load-test a
//! running gateway against producing the same records directly.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use orderflow_runtime::app::{fail, run_async};
use orderflow_runtime::config::Config;
use orderflow_runtime::consumer::shutdown_signal;
use orderflow_runtime::telemetry;

use crate::bench::BenchArgs;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "The orderflow HTTP gateway: signed, idempotent intake and the order API"
)]
struct GatewayArgs {
    /// Config file (TOML); environment variables override it.
    #[arg(long, global = true, env = "ORDERFLOW_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<GatewayCommand>,
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// Serve HTTP on gateway.listen until SIGTERM or Ctrl-C (the default).
    Serve,
    /// Print the OpenAPI document (what /openapi.json serves and docs/openapi.json holds).
    Openapi,
    /// Measure ingestion through a running gateway, or producing the same records directly.
    Bench(BenchArgs),
}

/// `main` of the gateway binary.
pub fn gateway_main() -> ExitCode {
    let args = GatewayArgs::parse();
    if let Some(GatewayCommand::Openapi) = args.command {
        print!("{}", crate::openapi::document());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    telemetry::init_logs(config.telemetry.log_format);
    run_async(async move {
        match args.command {
            Some(GatewayCommand::Bench(bench)) => crate::bench::run(&config, bench).await,
            _ => {
                telemetry::init_metrics(&config.telemetry)?;
                crate::api::run(config, shutdown_signal()).await
            }
        }
    })
}
