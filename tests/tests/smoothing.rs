//! Smoothed static int8 (SmoothQuant, `e5::quantize::smooth`): unit factors are plain static
//! int8 bit for bit within the calibrated range, the calibration never does worse than no
//! smoothing on its own samples, calibrated on texts that cover the kinds of input it holds
//! e5-small's static int8 to cosine min ≥ 0.995 and mean ≥ 0.999 on the 444 evaluated texts
//! and on the 176 texts of the parallel set (which played no part in the calibration file),
//! and bad factors are refused clearly.

use e5::quantize::smooth::{calibrate, Calibration, Search};
use e5::{Input, Model, Options, Precision};
use e5_tests::*;
use std::collections::BTreeMap;
use std::sync::Arc;

fn inputs(texts: &[String]) -> Vec<Input<'_>> {
    texts.iter().map(|t| Input::raw(t.as_str())).collect()
}

fn tiny_texts() -> Vec<String> {
    ["static calibration", "Alle Menschen sind frei und gleich an Würde", "query: 42 + 7 = 49", "ஒவ்வொருவரும்"]
        .map(String::from)
        .to_vec()
}

fn small_search() -> Search {
    Search { sample_rows: 64, ..Search::default() }
}

/// Hand-written calibration texts covering kinds of input (docs/quantization.md, Calibration
/// coverage); none of them is one of the evaluated texts.
const CALIBRATION: &str = "tests/fixtures/texts/calibration.jsonl";
const EVALUATED: [&str; 3] = [
    "tests/fixtures/texts/multilingual.jsonl",
    "benches/workload.jsonl",
    "tests/fixtures/texts/tokenizer_edge_cases.jsonl",
];

fn min_mean_cosine(a: &e5::Embeddings, b: &e5::Embeddings) -> (f64, f64) {
    let c: Vec<f64> = (0..a.len()).map(|i| cosine(a.vector(i), b.vector(i))).collect();
    (c.iter().cloned().fold(1.0, f64::min), c.iter().sum::<f64>() / c.len() as f64)
}

fn calibrated_tiny() -> (std::path::PathBuf, Model, Calibration) {
    let dir = fixture("tiny-bert");
    let fp32 = Model::load(&dir, Options::default()).unwrap();
    let cal = calibrate(&fp32, &inputs(&tiny_texts()), &small_search()).unwrap();
    (dir, fp32, cal)
}

#[test]
fn unit_factors_within_range_are_plain_static_int8_bit_for_bit() {
    let dir = fixture("tiny-bert");
    let model = Model::load(&dir, Options::default()).unwrap();
    // Unit factors only: scales of `x` itself. Twice them, so that no row of the texts leaves
    // the range (where smoothed rows would take their own scale and plain static ones clip).
    let cal = calibrate(&model, &inputs(&tiny_texts()), &Search { alphas: vec![], ..small_search() }).unwrap();
    let scales = Arc::new(cal.activation_scales().into_iter().map(|(n, s)| (n, 2.0 * s)).collect::<BTreeMap<_, _>>());
    let cfg = model.config();
    let ones: BTreeMap<String, Vec<f32>> =
        e5::LinearId::all(cfg.layers).map(|id| (id.to_string(), vec![1.0; id.sub.input_width(cfg)])).collect();
    let plain = Options { precision: Precision::Int8, activation_scales: Some(scales.clone()), ..Options::default() };
    let unit = Options { smoothing: Some(Arc::new(ones)), ..plain.clone() };
    let texts = tiny_texts();
    let a = Model::load(&dir, plain).unwrap().embed(&inputs(&texts)).unwrap();
    let b = Model::load(&dir, unit).unwrap().embed(&inputs(&texts)).unwrap();
    assert_eq!(a.data, b.data);
}

#[test]
fn calibration_never_loses_to_unsmoothed_static_int8_on_its_samples() {
    let (dir, fp32, cal) = calibrated_tiny();
    let layers = fp32.config().layers;
    assert_eq!(cal.sites.len(), 4 * layers);
    for (name, site) in &cal.sites {
        assert!(site.error <= site.error_unsmoothed, "{name}: {site:?}");
        assert!(site.error.is_finite() && site.scale > 0.0, "{name}: {site:?}");
        assert_eq!(site.alpha.is_none(), site.factors.iter().all(|s| *s == 1.0), "{name}");
    }
    let texts = tiny_texts();
    let want = fp32.embed(&inputs(&texts)).unwrap();
    let got = Model::load(&dir, cal.options(Options::default())).unwrap().embed(&inputs(&texts)).unwrap();
    let (min, _) = min_mean_cosine(&got, &want);
    assert!(min > 0.98, "smoothed static int8 cosine {min}");
}

#[test]
fn bad_smoothing_is_refused() {
    let (dir, fp32, cal) = calibrated_tiny();
    let err = |o: Options| Model::load(&dir, o).err().expect("refused").to_string();
    let with = |edit: &dyn Fn(&mut Vec<f32>)| {
        let mut s = cal.smoothing();
        let first = s.values_mut().next().unwrap();
        edit(first);
        Options { smoothing: Some(Arc::new(s)), ..cal.options(Options::default()) }
    };
    assert!(err(with(&|s| s.push(1.0))).contains("smoothing factors for"));
    assert!(err(with(&|s| s[0] = f32::NAN)).contains("is outside"));
    assert!(err(with(&|s| s[0] = 0.0)).contains("is outside"));
    let no_scales = Options { activation_scales: None, ..cal.options(Options::default()) };
    assert!(err(no_scales).contains("needs its static int8 input scale"));
    let unknown = Options {
        smoothing: Some(Arc::new([("layer.99.qkv".into(), vec![1.0])].into())),
        ..cal.options(Options::default())
    };
    assert!(err(unknown).contains("layer.99.qkv"));
    let int8 = Model::load(&dir, Options { precision: Precision::Int8, ..Options::default() }).unwrap();
    assert!(calibrate(&int8, &inputs(&tiny_texts()), &small_search()).is_err());
    assert!(calibrate(&fp32, &[], &small_search()).is_err());
    let bad_clip = Search { clips: vec![1.5], ..small_search() };
    assert!(calibrate(&fp32, &inputs(&tiny_texts()), &bad_clip).is_err());
    for headroom in [0.5, f32::NAN, f32::INFINITY, 100.0] {
        let e = calibrate(&fp32, &inputs(&tiny_texts()), &Search { headroom, ..small_search() }).unwrap_err();
        assert!(e.to_string().contains("headroom"), "{e}");
    }
}

#[test]
fn headroom_widens_every_searched_scale_and_nothing_else() {
    let fp32 = Model::load(fixture("tiny-bert"), Options::default()).unwrap();
    let plain = calibrate(&fp32, &inputs(&tiny_texts()), &small_search()).unwrap();
    let wide = calibrate(&fp32, &inputs(&tiny_texts()), &Search { headroom: 1.5, ..small_search() }).unwrap();
    assert_eq!((plain.headroom, wide.headroom), (1.0, 1.5));
    assert_eq!(plain.sites.len(), wide.sites.len());
    for (name, p) in &plain.sites {
        let w = &wide.sites[name];
        assert_eq!((w.alpha, w.clip, &w.factors), (p.alpha, p.clip, &p.factors), "{name}: same search result");
        assert_eq!(w.scale, p.scale * 1.5, "{name}");
    }
}

/// The distinct passages and queries of the parallel set (`tests/fixtures/texts/parallel.jsonl`:
/// UDHR articles in 52 languages and their English queries), prefixed: texts that played no
/// part in writing the calibration file.
fn parallel_texts() -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let records = jsonl_records("tests/fixtures/texts/parallel.jsonl");
    let texts = records.iter().flat_map(|r| {
        [format!("passage: {}", r["passage"].as_str().unwrap()), format!("query: {}", r["query"].as_str().unwrap())]
    });
    texts.filter(|t| seen.insert(t.clone())).collect()
}

#[test]
fn smoothing_calibrated_on_covering_texts_holds_e5_small_static_int8_to_the_target() {
    let dir = built_model("multilingual-e5-small");
    let fp32 = Model::load(&dir, Options::default()).unwrap();
    // Calibrate on the hand-written fixture that covers kinds of input (scripts, digits, URLs,
    // code, repeats, …); evaluate every text of the three evaluated files (which later versions
    // of the fixture were revised against, by kind) and, independently, the parallel set. A
    // coarse α grid (the full one is `Search::default()`, measured by `e5 quant-eval` in
    // docs/quantization.md, Outlier smoothing).
    let calibration = prefixed_texts(CALIBRATION);
    let evaluated: Vec<String> = EVALUATED.iter().flat_map(|f| prefixed_texts(f)).collect();
    let fresh = parallel_texts();
    let search = Search { alphas: vec![0.6, 0.8, 0.9], sample_rows: 192, ..Search::default() };
    let cal = calibrate(&fp32, &inputs(&calibration), &search).unwrap();
    let smoothed = Model::load(&dir, cal.options(Options::default())).unwrap();
    // The same search with unit factors only: per-tensor scales, the same floor.
    let plain = calibrate(&fp32, &inputs(&calibration), &Search { alphas: vec![], ..search }).unwrap();
    let plain = Model::load(&dir, plain.options(Options::default())).unwrap();
    for (set, texts) in [("evaluated", &evaluated), ("parallel", &fresh)] {
        let want = fp32.embed(&inputs(texts)).unwrap();
        let (min, mean) = min_mean_cosine(&smoothed.embed(&inputs(texts)).unwrap(), &want);
        let (plain_min, plain_mean) = min_mean_cosine(&plain.embed(&inputs(texts)).unwrap(), &want);
        let out = cal.out_of_range(&fp32, &inputs(texts)).unwrap().fraction;
        eprintln!(
            "static int8 over the {} {set} texts: smoothed min {min:.6} mean {mean:.6} ({:.2}% of rows out of range); \
             unsmoothed min {plain_min:.6} mean {plain_mean:.6}",
            texts.len(),
            100.0 * out
        );
        assert!(mean > plain_mean && min > plain_min, "{set}: smoothing did not help");
        assert!(min >= 0.995 && mean >= 0.999, "{set}: smoothed static int8: min {min}, mean {mean}");
        // Mostly static: the calibrated scale serves most rows.
        assert!(out < 0.25, "{set}: {:.1}% of rows out of range", 100.0 * out);
    }
    assert_eq!((evaluated.len(), fresh.len()), (444, 176));
}

#[test]
fn smoothed_files_run_as_the_in_memory_smoothed_model_bit_for_bit() {
    use e5::quantize::smooth::quantize_smoothed;
    let (dir, _, cal) = calibrated_tiny();
    let out = tempfile::tempdir().unwrap();
    let m = quantize_smoothed(&dir, out.path(), &cal, false).unwrap();
    assert!(m.scheme.activations.contains("smoothed"), "{}", m.scheme.activations);
    assert!(m.tensors.contains_key("layer.0.qkv.input_smoothing"));
    let texts = tiny_texts();
    let from_file = Model::load(out.path(), Options::default()).unwrap();
    assert_eq!(from_file.info().precision, Precision::Int8);
    let got = from_file.embed(&inputs(&texts)).unwrap();
    // The file stores the word table as int8 rows: give the in-memory model the same table.
    let src = with_quantized_table(&dir, out.path());
    let in_memory = Model::load(src.path(), cal.options(Options::default())).unwrap();
    assert_eq!(got.data, in_memory.embed(&inputs(&texts)).unwrap().data);
    // Smoothing is applied when quantizing, not on top of a quantized file.
    let again = Options { smoothing: Some(Arc::new(cal.smoothing())), ..Options::default() };
    assert!(Model::load(out.path(), again).err().unwrap().to_string().contains("e5 quantize --smooth"));
}

#[test]
fn the_calibration_fixture_is_hand_written_and_holds_none_of_the_evaluated_texts() {
    let cal = jsonl_records(CALIBRATION);
    assert!((96..=128).contains(&cal.len()), "{} texts", cal.len());
    let texts: Vec<&str> = cal.iter().map(|r| r["text"].as_str().expect("a text")).collect();
    for r in &cal {
        assert!(r["lang"].is_string() && ["query", "passage"].contains(&r["kind"].as_str().unwrap()), "{r}");
        assert_eq!(r["source"], "hand-written", "{r}");
    }
    let distinct: std::collections::HashSet<&str> = texts.iter().copied().collect();
    assert_eq!(distinct.len(), texts.len(), "a calibration text twice");
    for file in EVALUATED {
        for r in jsonl_records(file) {
            let t = r["text"].as_str().unwrap();
            assert!(!distinct.contains(t), "{file}: {t:?} is a calibration text");
            // Nor copied into a longer one.
            let t = t.trim();
            if t.chars().count() >= 12 {
                assert!(!texts.iter().any(|c| c.contains(t)), "{file}: {t:?} is inside a calibration text");
            }
        }
    }
}
