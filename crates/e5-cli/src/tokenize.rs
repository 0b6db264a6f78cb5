//! `e5 tokenize`.

use crate::io::{open_output, parse_texts, read_all};
use crate::model_args::{KindArgs, ModelArgs};
use anyhow::Result;
use clap::Args;
use e5::Input;
use std::io::Write;

#[derive(Args)]
pub struct TokenizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    kind: KindArgs,
    /// Texts to tokenize; without any, one text per line is read from --input.
    texts: Vec<String>,
    #[arg(long, short, default_value = "-")]
    input: String,
}

/// Prints one JSON object per text: `{"ids": [...], "tokens": [...]}`.
pub fn run(a: TokenizeArgs) -> Result<()> {
    let texts = if a.texts.is_empty() { parse_texts(&read_all(&a.input)?, false)? } else { a.texts.clone() };
    let model = a.model.load(a.model.options())?;
    let mut out = open_output("-")?;
    let kind = a.kind.kind(&model)?;
    for t in &texts {
        let toks = model.tokenize(&Input { kind: kind.clone(), text: t.as_str().into() })?;
        let over = toks.ids.len().saturating_sub(model.config().max_tokens);
        let obj = serde_json::json!({ "ids": toks.ids, "tokens": toks.tokens, "over_limit": over });
        serde_json::to_writer(&mut out, &obj)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
