//! The one place a request's prompt choice (TEI's `prompt_name`, the OpenAI route's
//! `input_type`) becomes an [`InputKind`], through the prompts the library read from the
//! model's `config_sentence_transformers.json`.

use crate::error::ApiError;
use e5::{InputKind, Model};

/// Names every model takes besides its declared prompts: `query`, `passage` / `document`
/// (the model's query and document prompts; E5's `"query: "` / `"passage: "` for models
/// that declare none) and `raw` (no prompt).
const KINDS: [(&str, InputKind); 4] = [
    ("query", InputKind::Query),
    ("passage", InputKind::Passage),
    ("document", InputKind::Passage),
    ("raw", InputKind::Raw),
];

/// The kind `name` asks of `model`: a prompt the model declares by that name, else one of
/// [`KINDS`]. Anything else is a 400 on `field` that lists what the model takes. When the
/// request names none: `default` (`--default-kind`), else the model's own default, as
/// `e5 embed` without `--kind` does.
pub fn resolve(
    model: &Model,
    field: &'static str,
    name: Option<&str>,
    default: Option<&InputKind>,
) -> Result<InputKind, ApiError> {
    let Some(name) = name else { return Ok(default.cloned().unwrap_or_else(|| model.default_kind())) };
    if model.config().prompts.named.contains_key(name) {
        return Ok(InputKind::Prompt(name.to_string()));
    }
    KINDS.iter().find(|(n, _)| *n == name).map(|(_, k)| k.clone()).ok_or_else(|| {
        ApiError::bad_request(field, format!("{field} {name:?} is not one of {}", accepted(model).join(", ")))
    })
}

/// Every name [`resolve`] takes for `model`: its declared prompts, then the kinds.
pub fn accepted(model: &Model) -> Vec<String> {
    let declared = model.config().prompts.named.keys().cloned();
    let kinds = KINDS.iter().map(|(n, _)| n.to_string());
    let mut names: Vec<String> = declared.chain(kinds).collect();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}
