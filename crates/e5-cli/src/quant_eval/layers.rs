//! Per-layer error: every compared activation of every precision against fp32, on a
//! subset of the evaluated texts. Chunks of texts are traced side by side, one per lane.

use super::corpus::{chunks, spread, Corpus};
use super::metrics::{row_stats, ErrAcc};
use super::Config;
use anyhow::Result;
use e5::{Lanes, Model, ModelConfig, Site};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

/// The activations compared in each layer, in depth order (q, k and v are the thirds of
/// the query | key | value projection).
pub const LAYER_SITES: [&str; 9] = ["q", "k", "v", "attn_ctx", "attn_out", "attn_norm", "ffn_up", "ffn_down", "output"];

/// Tokens traced at once, shared by the lanes: peak memory holds every site's fp32
/// activations of this many tokens.
const TRACE_TOKENS: usize = 2048;

/// The activations compared, in depth order, and where each is read: a library site and
/// the columns of its rows.
pub struct Observed {
    pub names: Vec<String>,
    parts: HashMap<Site, Vec<(usize, Range<usize>)>>,
}

impl Observed {
    pub fn new(cfg: &ModelConfig) -> Self {
        let mut o = Observed { names: Vec::new(), parts: HashMap::new() };
        o.add("embeddings".into(), Site::Embeddings, None, cfg);
        let h = cfg.hidden;
        for i in 0..cfg.layers {
            let qkv = |k: usize| (Site::Qkv(i), Some(k * h..(k + 1) * h));
            let whole = |s: Site| (s, None);
            let sites = [
                qkv(0),
                qkv(1),
                qkv(2),
                whole(Site::Attention(i)),
                whole(Site::AttnOut(i)),
                whole(Site::AttentionNorm(i)),
                whole(Site::FfnUp(i)),
                whole(Site::FfnDown(i)),
                whole(Site::Output(i)),
            ];
            for (name, (site, cols)) in LAYER_SITES.iter().zip(sites) {
                o.add(format!("layer.{i}.{name}"), site, cols, cfg);
            }
        }
        o
    }

    fn add(&mut self, name: String, site: Site, cols: Option<Range<usize>>, cfg: &ModelConfig) {
        let cols = cols.unwrap_or(0..site.width(cfg));
        self.parts.entry(site).or_default().push((self.names.len(), cols));
        self.names.push(name);
    }

    /// The compared parts of `site`'s rows: (index in `names`, columns).
    fn parts(&self, site: Site) -> &[(usize, Range<usize>)] {
        self.parts.get(&site).map_or(&[], Vec::as_slice)
    }
}

/// SQNR in dB: a number, `"inf"` for identical tensors, or null.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Db {
    Finite(f64),
    Text(&'static str),
}

/// Error statistics of one site; everything is null without tokens.
#[derive(Serialize)]
pub struct SiteError {
    pub cos_mean: Option<f64>,
    pub cos_min: Option<f64>,
    pub rel_l2: Option<f64>,
    pub sqnr_db: Option<Db>,
    pub tokens: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_script: Option<BTreeMap<String, SiteError>>,
}

impl SiteError {
    fn of(a: &ErrAcc) -> SiteError {
        let some = |x: f64| (a.n > 0).then_some(x);
        let db = match a.sqnr_db() {
            f64::INFINITY => Db::Text("inf"),
            db => Db::Finite(db),
        };
        SiteError {
            cos_mean: some(a.cos_mean()),
            cos_min: some(a.cos_min),
            rel_l2: some(a.rel_l2()),
            sqnr_db: (a.n > 0).then_some(db),
            tokens: a.n,
            by_script: None,
        }
    }
}

/// What the per-layer stage measured.
pub struct Traced {
    /// Per configuration, per site name.
    pub errors: BTreeMap<String, BTreeMap<String, SiteError>>,
    pub names: Vec<String>,
    /// The evaluated texts traced, and their tokens.
    pub idx: Vec<usize>,
    pub tokens: usize,
    /// `[config][k]`: pooled vector of text `idx[k]`, from the trace.
    pub pooled: Vec<Vec<Vec<f32>>>,
}

/// Per configuration, per site, per script group (0: all): accumulated errors.
type Accs = Vec<Vec<Vec<ErrAcc>>>;

/// Traces `texts` evaluated texts (evenly spread) with the reference and every
/// configuration and compares each site with the reference's.
pub fn stage(reference: &Model, configs: &[Config], corpus: &Corpus, texts: usize, lanes: &Lanes) -> Result<Traced> {
    let idx = spread(corpus.inputs.len(), texts);
    let (inputs, tokens) = corpus.subset(&idx);
    let groups: Vec<usize> = idx.iter().map(|&i| corpus.group(i)).collect();
    let observed = Observed::new(reference.config());
    let n_groups = corpus.scripts.len() + 1;
    let ranges = chunks(&tokens, TRACE_TOKENS / lanes.count());
    let parts =
        lanes.map(ranges, |r| trace_chunk(reference, configs, &observed, &inputs[r.clone()], &groups[r], n_groups));
    let mut accs: Accs = vec![vec![vec![ErrAcc::default(); n_groups]; observed.names.len()]; configs.len()];
    let mut pooled = vec![Vec::with_capacity(idx.len()); configs.len()];
    for part in parts {
        let (acc, rows) = part?;
        for ci in 0..configs.len() {
            for (total, p) in accs[ci].iter_mut().flatten().zip(acc[ci].iter().flatten()) {
                total.merge(p);
            }
            pooled[ci].extend(rows[ci].chunks_exact(reference.dim()).map(<[f32]>::to_vec));
        }
    }
    let errors = configs.iter().zip(&accs).map(|(c, acc)| (c.name.clone(), render(acc, &observed, corpus))).collect();
    Ok(Traced { errors, names: observed.names, idx, tokens: tokens.iter().sum(), pooled })
}

/// Site errors by name, each with its per-script breakdown.
fn render(acc: &[Vec<ErrAcc>], observed: &Observed, corpus: &Corpus) -> BTreeMap<String, SiteError> {
    let mut out = BTreeMap::new();
    for (name, by_group) in observed.names.iter().zip(acc) {
        let mut all = ErrAcc::default();
        by_group[1..].iter().for_each(|g| all.merge(g));
        let by: BTreeMap<String, SiteError> =
            corpus.scripts.iter().zip(&by_group[1..]).map(|(s, a)| (s.clone(), SiteError::of(a))).collect();
        out.insert(name.clone(), SiteError { by_script: Some(by), ..SiteError::of(&all) });
    }
    out
}

/// One chunk: the reference's activations of `batch`, then each configuration's compared
/// with them token by token. Returns the errors and every configuration's pooled rows.
fn trace_chunk(
    reference: &Model,
    configs: &[Config],
    observed: &Observed,
    batch: &[e5::Input<'_>],
    groups: &[usize],
    n_groups: usize,
) -> Result<(Accs, Vec<Vec<f32>>)> {
    let cfg = reference.config();
    let mut refs: BTreeMap<usize, (usize, Vec<f32>)> = BTreeMap::new(); // site index → (width, rows)
    let mut pooled = vec![Vec::new(); configs.len()];
    let (_, seqs) = reference.trace(batch, &mut |site, x| {
        if site == Site::Pooled {
            pooled[0] = x.to_vec();
        }
        let w = site.width(cfg);
        for (k, cols) in observed.parts(site) {
            let v: Vec<f32> = x.chunks_exact(w).flat_map(|row| &row[cols.clone()]).copied().collect();
            refs.insert(*k, (cols.len(), v));
        }
    })?;
    let token_group: Vec<usize> =
        seqs.windows(2).zip(groups).flat_map(|(s, &g)| std::iter::repeat_n(g, s[1] - s[0])).collect();
    let mut acc: Accs = vec![vec![vec![ErrAcc::default(); n_groups]; observed.names.len()]; configs.len()];
    for (ci, c) in configs.iter().enumerate().skip(1) {
        let (acc, rows) = (&mut acc[ci], &mut pooled[ci]);
        c.model.trace(batch, &mut |site, x| {
            if site == Site::Pooled {
                *rows = x.to_vec();
            }
            let w = site.width(cfg);
            for (k, cols) in observed.parts(site) {
                let (rw, rv) = &refs[k];
                for ((row, r), &g) in x.chunks_exact(w).zip(rv.chunks_exact(*rw)).zip(&token_group) {
                    acc[*k][g].add_row(row_stats(&row[cols.clone()], r));
                }
            }
        })?;
    }
    // fp32 against itself (exactly 0 error) keeps the report uniform.
    for (k, (rw, rv)) in &refs {
        for (r, &g) in rv.chunks_exact(*rw).zip(&token_group) {
            acc[0][*k][g].add(r, r);
        }
    }
    Ok((acc, pooled))
}
