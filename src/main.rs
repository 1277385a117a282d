//! The `clusterns` command: serve, check a config, and change the journal by hand.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::*;
use cli::{
    acme::*, check::*, ctl::*, dnssec::*, health::*, lookup::*, relay::*, repl::*, serve::*,
};

fn main() -> ExitCode {
    clusterns::logs::init();
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Serve { .. }
            | Command::Health {
                dry_run: false,
                once: false,
                ..
            }
            | Command::Relay { once: false, .. }
    ) {
        // The other commands print and end: a reader that goes away ends them quietly.
        clusterns::os::default_sigpipe();
    }
    let result = match cli.command {
        Command::Serve {
            config,
            listen,
            threads,
        } => serve(config, listen, threads),
        Command::CheckConfig { config, file } => check_config(file.unwrap_or(config)),
        Command::Manpages { dir } => std::fs::create_dir_all(&dir)
            .and_then(|()| clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), &dir))
            .map_err(|e| format!("{}: {e}", dir.display())),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "clusterns",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Lookup {
            config,
            name,
            qtype,
            dnssec,
        } => lookup(config, &name, &qtype, dnssec),
        Command::Repl { config, action } => repl(config, *action),
        Command::Dnssec { action } => dnssec(action),
        Command::Health {
            config,
            once,
            dry_run,
        } => health(config, once, dry_run),
        Command::Acme { config, action } => acme(config, action),
        Command::Relay { config, once } => relay(config, once),
        Command::Ctl {
            config,
            socket,
            timeout,
            action,
        } => ctl(&config, socket, timeout, action),
        Command::Journal {
            config,
            action: JournalAction::Compact { keep_old },
        } => compact(config, keep_old),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clusterns: {e}");
            ExitCode::FAILURE
        }
    }
}
