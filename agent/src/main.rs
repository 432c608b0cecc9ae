//! `forensic-collector`: the thin binary around the `imaging` engine. It parses, sets up logging and
//! signals, runs one command, and turns the result into a documented exit code (see `exit.rs`).

use std::process::ExitCode;

use clap::Parser;

use forensic_collector::cli::{Cli, Command, ConfigCommand, CustodyCommand};
use forensic_collector::exit::Exit;
use forensic_collector::result::AcquisitionResult;
use forensic_collector::{cmd, logging, signals};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = logging::wants_json(cli.json);
    let capture = logging::init(json);
    let cancel = match signals::cancel_on_signals() {
        Ok(flag) => flag,
        Err(err) => {
            tracing::error!(error = %err, "Cannot install signal handlers.");
            return Exit::Internal.into();
        }
    };
    let result = match &cli.command {
        Command::Acquire(args) => cmd::acquire::run(args, json, &capture, &cancel),
        Command::Verify(args) => cmd::verify::run(args, json, &cancel),
        Command::Config(ConfigCommand::Check(args)) => cmd::config::run(args, cli.json),
        Command::Custody(CustodyCommand::ExportKey(args)) => cmd::custody::export_key(args),
        Command::Watch(args) => cmd::watch::run(args, &cancel),
        Command::RunJob => cmd::acquire::read_job(std::io::stdin().lock())
            .and_then(|args| cmd::acquire::run(&args, json, &capture, &cancel)),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(failure) => {
            tracing::error!(exit_code = failure.exit.code(), "{}", failure.error);
            let result_json = match &cli.command {
                Command::Acquire(args) => args.result_json,
                Command::RunJob => true,
                _ => false,
            };
            let result = AcquisitionResult::failed(failure.exit, format!("{:#}", failure.error));
            if let Command::Acquire(args) = &cli.command
                && let Some(token) = &args.task_token
            {
                let instance = args.instance_id.as_deref();
                cmd::acquire::task::send(token, &cmd::acquire::task::answer_of(&result, instance));
            }
            if result_json {
                result.print();
            }
            failure.exit.into()
        }
    }
}
