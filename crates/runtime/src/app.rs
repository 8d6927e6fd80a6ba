//! The `main` of a consumer binary, and what every orderflow binary's `main` shares: parse
//! arguments, load config, run on a tokio runtime until the shutdown signal, and turn any error
//! into one plain sentence on stderr and a non-zero exit code.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use orderflow_schema::InputTopic;

use crate::config::Config;
use crate::consumer::shutdown_signal;
use crate::{intake, kafka, state, telemetry, RuntimeError};

/// Exit code for a bad argument or configuration.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(version, about = "A consumer of the orderflow pipeline")]
struct ConsumerArgs {
    /// Config file (TOML); environment variables override it.
    #[arg(long, env = "ORDERFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Distinguishes copies of this consumer on one host: each keeps its own local store.
    #[arg(long, env = "ORDERFLOW_INSTANCE", default_value = "0")]
    instance: String,
}

/// Which consumer a binary runs.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    Intake(InputTopic),
    State,
}

/// `main` of the consumer binaries.
pub fn consumer_main(role: Role) -> ExitCode {
    let args = ConsumerArgs::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    telemetry::init_logs(config.telemetry.log_format);
    // Ready only once in the group: said before /readyz is first served.
    telemetry::health().member_of_group(&match role {
        Role::Intake(input) => intake::consumer_name(input),
        Role::State => state::CONSUMER_NAME.to_string(),
    });
    run_async(async {
        telemetry::init_metrics(&config.telemetry)?;
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        // A refused login or an untrusted certificate ends here, in one sentence.
        tokio::select! {
            connected = kafka::check_connection(&config.kafka) => connected?,
            () = &mut shutdown => return Ok(()),
        }
        match role {
            Role::Intake(input) => intake::run(&config, input, &args.instance, shutdown).await,
            Role::State => state::run(&config, &args.instance, shutdown).await,
        }
    })
}

/// Runs `work` on a multi-threaded tokio runtime; its error becomes the exit code.
pub fn run_async<E>(work: impl Future<Output = Result<(), E>>) -> ExitCode
where
    E: std::fmt::Display + From<RuntimeError> + ExitStatus,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return fail(&E::from(RuntimeError::Fatal(format!(
                "starting the async runtime: {error}"
            ))))
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// What an error means for the process's exit status.
pub trait ExitStatus {
    /// Whether the error is the user's input (an argument, a config value): exit 2, not 1.
    fn is_usage(&self) -> bool;
}

impl ExitStatus for RuntimeError {
    fn is_usage(&self) -> bool {
        matches!(self, RuntimeError::Config(_))
    }
}

/// Prints `error` as one line on stderr and returns the exit code it calls for.
pub fn fail(error: &(impl std::fmt::Display + ExitStatus)) -> ExitCode {
    eprintln!("error: {error}");
    if error.is_usage() {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::FAILURE
    }
}
