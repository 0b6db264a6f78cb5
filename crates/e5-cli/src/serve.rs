//! `e5 serve`: the HTTP embedding server of `e5-server`.

use anyhow::{anyhow, Result};
use clap::Args;
use e5_server::{ModelSpec, ServerConfig};

use crate::model_args::{KindArg, ResidencyArg};

#[derive(Args)]
pub struct ServeArgs {
    /// `[NAME=]DIR[:PRECISION]`; repeat to serve several models (or one at two precisions),
    /// chosen by the request's `model`. NAME defaults to the directory's name.
    #[arg(long, short, required = true, value_parser = ModelSpec::parse)]
    model: Vec<ModelSpec>,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Encoder threads per model (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Tokens merged into one encoder call; bounds how long a short query waits.
    #[arg(long, default_value_t = ServerConfig::default().max_batch_tokens)]
    max_batch_tokens: usize,
    /// Inputs waiting per model before requests get 429.
    #[arg(long, default_value_t = ServerConfig::default().max_queue)]
    max_queue: usize,
    /// Inputs one request may carry (more: 422).
    #[arg(long, default_value_t = ServerConfig::default().max_client_batch)]
    max_client_batch: usize,
    /// Largest request body in bytes (more: 413).
    #[arg(long, default_value_t = ServerConfig::default().payload_limit)]
    payload_limit: usize,
    /// Prefix when a request has no `input_type` / `prompt_name`.
    /// (Default: the model's `default_prompt_name` when it declares one, else raw.)
    #[arg(long, value_enum)]
    default_kind: Option<KindArg>,
    /// Truncate inputs over the model's limit and report them (the default).
    #[arg(long, overrides_with = "no_truncate")]
    truncate: bool,
    /// Refuse inputs over the model's limit with 422 naming the input.
    #[arg(long, overrides_with = "truncate")]
    no_truncate: bool,
    /// Require `Authorization: Bearer KEY` on the model routes.
    #[arg(long, env = "E5_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Seconds a client may take to send its request body (more: 408); the encoder's time is not counted.
    #[arg(long, default_value_t = 60)]
    request_timeout: u64,
    /// Connections served at once.
    #[arg(long, default_value_t = ServerConfig::default().max_connections)]
    max_connections: usize,
    /// How the embedding tables are held: `copy` (the default) reads them into private memory,
    /// so the server survives its model files being truncated or rewritten in place; `lazy`,
    /// `prefetch` and `lock` map the file (less memory; a changed file fails requests cleanly).
    #[arg(long, value_enum, default_value_t = ResidencyArg::Copy)]
    residency: ResidencyArg,
}

pub fn run(a: ServeArgs) -> Result<()> {
    let config = ServerConfig {
        threads: a.threads,
        max_batch_tokens: a.max_batch_tokens,
        max_queue: a.max_queue,
        max_client_batch: a.max_client_batch,
        payload_limit: a.payload_limit,
        default_kind: a.default_kind.map(|k| k.value()),
        truncate: a.truncate || !a.no_truncate,
        api_key: a.api_key,
        request_timeout: std::time::Duration::from_secs(a.request_timeout),
        max_connections: a.max_connections,
        residency: a.residency.value(),
        ..ServerConfig::default()
    };
    e5_server::run(a.model, config, &a.host, a.port).map_err(|e| anyhow!(e))
}
