//! The `main` of `orderflow-sync` and `orderflow-notify`: parse arguments, load and check the
//! config (a bad value is one sentence naming its key, exit 2), run until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use orderflow_runtime::app::{fail, run_async};
use orderflow_runtime::config::Config;
use orderflow_runtime::consumer::shutdown_signal;
use orderflow_runtime::{kafka, telemetry, RuntimeError};

use crate::config::{NotifySettings, SyncSettings};

#[derive(Debug, Parser)]
#[command(version, about = "A door out of the orderflow pipeline")]
struct DoorArgs {
    /// Config file (TOML); environment variables override it.
    #[arg(long, env = "ORDERFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Distinguishes copies of this consumer on one host: each keeps its own local store.
    #[arg(long, env = "ORDERFLOW_INSTANCE", default_value = "0")]
    instance: String,
}

/// Which door a binary runs.
#[derive(Debug, Clone, Copy)]
pub enum Door {
    Sync,
    Notify,
}

pub fn door_main(door: Door) -> ExitCode {
    let args = DoorArgs::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    // Checked before anything starts: a bad endpoint is a usage error, not a runtime one.
    let checked = match door {
        Door::Sync => SyncSettings::from_config(&config).map(|_| ()),
        Door::Notify => NotifySettings::from_config(&config).map(|_| ()),
    };
    if let Err(error) = checked {
        return fail(&error);
    }
    telemetry::init_logs(config.telemetry.log_format);
    run_async(async {
        telemetry::init_metrics(&config.telemetry)?;
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        tokio::select! {
            connected = kafka::check_connection(&config.kafka) => connected?,
            () = &mut shutdown => return Ok::<(), RuntimeError>(()),
        }
        match door {
            Door::Sync => crate::sync::run(&config, &args.instance, shutdown).await,
            Door::Notify => crate::notify::run(&config, &args.instance, shutdown).await,
        }
    })
}
