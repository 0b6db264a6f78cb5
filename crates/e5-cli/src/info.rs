//! `e5 info`.

use crate::model_args::ModelArgs;
use anyhow::Result;
use clap::Args;
use e5::{memory, Input};

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Print JSON instead of aligned text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: InfoArgs) -> Result<()> {
    let model = a.model.load(a.model.options())?;
    let (rss_loaded, huge_pages) = (memory::resident_bytes(), memory::huge_page_bytes());
    // Resident memory while embedding: run one query and one long passage.
    let long = "passage: ".to_string() + &"The quick brown fox jumps over the lazy dog. ".repeat(60);
    model.embed(&[Input::query("how much protein should a female eat"), Input::raw(long)])?;
    let rss_embedding = memory::peak_resident_bytes();
    let i = model.info();
    let p = &model.config().prompts;
    let mib =
        |b: Option<usize>| b.map(|b| format!("{:.1} MiB", b as f64 / (1 << 20) as f64)).unwrap_or_else(|| "n/a".into());
    let rows: Vec<(&str, String)> = vec![
        ("model", i.dir.display().to_string()),
        ("architecture", i.architecture.to_string()),
        ("hidden / layers / heads / ffn", format!("{} / {} / {} / {}", i.hidden, i.layers, i.heads, i.intermediate)),
        ("vocabulary", i.vocab_size.to_string()),
        ("max tokens", i.max_tokens.to_string()),
        ("parameters", format!("{} ({:.1} M)", i.parameters, i.parameters as f64 / 1e6)),
        ("checkpoint dtype", i.dtype.clone()),
        (
            "output",
            format!("{} ({}{}{})", i.dim, i.pooling, dense(i.dense), if i.normalize { " + L2 normalize" } else { "" }),
        ),
        ("query / passage prompts", format!("{:?} / {:?}", p.query, p.passage)),
        ("prompts", prompts(&p.named, p.default.as_deref())),
        ("kernels", format!("{} (int8: {})", i.isa, i.int8_kernel)),
        ("dispatch", i.dispatch.clone()),
        ("precision", i.precision.name().to_string()),
        ("mapped", mib(Some(i.mapped_bytes))),
        ("embedding table (mapped, in place)", mib(Some(i.embedding_table_bytes))),
        ("packed weights (owned)", mib(Some(i.owned_bytes))),
        ("on 2 MiB pages after load", mib(huge_pages)),
        ("resident after load", mib(rss_loaded)),
        ("peak resident while embedding", mib(rss_embedding)),
        ("load time", format!("{:.0} ms", i.load_time.as_secs_f64() * 1e3)),
    ];
    if a.json {
        let map: serde_json::Map<String, serde_json::Value> =
            rows.into_iter().map(|(k, v)| (k.to_string(), v.into())).collect();
        crate::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&map)?))
    } else {
        crate::print_stdout(&rows.into_iter().map(|(k, v)| format!("{k:>36}: {v}\n")).collect::<String>())
    }
}

fn dense(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(" + {n} Dense"),
    }
}

/// `name = "text"` per declared prompt, the default marked.
fn prompts(named: &std::collections::BTreeMap<String, String>, default: Option<&str>) -> String {
    let items: Vec<String> = named
        .iter()
        .map(|(k, v)| format!("{k} = {v:?}{}", if Some(k.as_str()) == default { " (default)" } else { "" }))
        .collect();
    crate::model_args::list_or_none(&items.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}
