//! The command line (DESIGN.md section 1): `run` (the default), `check`, `demo`, `emulator`.

use crate::telemetry::LogFormat;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "tokengate",
    version,
    about = "OAuth 2.0 protected-resource gateway: validates access tokens through Authlete (or RFC 7662) and forwards allowed requests"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default when no command is given).
    Run(RunArgs),
    /// Parse and validate the configuration, print the compiled route table, exit 0 (2 on error).
    Check(ConfigArg),
    /// Start the Authlete emulator, an echo upstream and the gateway on loopback; print tokens and curl lines.
    Demo(DemoArgs),
    /// Run the Authlete introspection API emulator alone.
    Emulator(EmulatorArgs),
    /// Print a DPoP proof (RFC 9449, ES256) for a request, for trying DPoP with curl.
    DpopProof(DpopProofArgs),
}

#[derive(Debug, Args)]
pub struct DpopProofArgs {
    /// Private key file (PKCS#8, base64); created if missing. Reuse it: the token is bound to it.
    #[arg(long)]
    pub key: PathBuf,
    /// HTTP method of the request (htm).
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// URL of the request (htu); query and fragment are ignored by the gateway.
    #[arg(long)]
    pub url: Option<String>,
    /// The access token the proof accompanies (adds ath).
    #[arg(long)]
    pub token: Option<String>,
    /// Print the key's RFC 7638 thumbprint (the token's jkt) instead of a proof.
    #[arg(long)]
    pub print_jkt: bool,
}

#[derive(Debug, Args, Default)]
pub struct ConfigArg {
    /// Configuration file [default: $TOKENGATE_CONFIG, else config/tokengate.yaml]
    #[arg(
        long,
        short = 'c',
        env = "TOKENGATE_CONFIG",
        default_value = "config/tokengate.yaml"
    )]
    pub config: PathBuf,
}

#[derive(Debug, Args, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub log: LogArg,
}

#[derive(Debug, Args, Default)]
pub struct LogArg {
    /// Log format [env: TOKENGATE_LOG_FORMAT]
    #[arg(long, env = "TOKENGATE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

impl LogArg {
    pub fn format(&self) -> LogFormat {
        self.log_format.unwrap_or(LogFormat::Text)
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub log: LogArg,
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9080")]
    pub listen: SocketAddr,
    /// YAML or JSON list of tokens to preload ({access_token, subject, client_id, scopes, expires_in, dpop_jkt}).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    #[command(flatten)]
    pub log: LogArg,
}
