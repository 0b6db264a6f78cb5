//! `e5 quant-eval` end to end on the tiny fixture model, and its input errors.
//! (The metrics' known values are unit tests in src/quant_eval/metrics.rs.)

use std::path::Path;
use std::process::{Command, Output};

fn root() -> String {
    format!("{}/../..", env!("CARGO_MANIFEST_DIR"))
}

fn tiny() -> String {
    format!("{}/tests/fixtures/tiny-xlmr", root())
}

/// `e5 quant-eval` of the tiny model over `texts` into `out`, with `extra` flags.
fn run_tiny(texts: &str, out: &std::path::Path, extra: &[&str]) -> Output {
    let model = tiny();
    let out = out.to_str().unwrap();
    let mut args = vec!["--model", &model, "--texts", texts, "--out", out];
    args.extend_from_slice(extra);
    run(&args)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_e5")).arg("quant-eval").args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const TEXTS: &str = r#"{"text": "Whereas recognition of the inherent dignity", "lang": "en_Latn", "kind": "short"}
{"text": "鉴于对人权的无视和侮蔑", "lang": "zh_Hans", "kind": "short"}
{"text": "Alle Menschen sind frei und gleich an Würde und Rechten geboren.", "lang": "de_Latn", "kind": "long"}
{"text": "Все люди рождаются свободными и равными в своем достоинстве и правах.", "lang": "ru_Cyrl", "kind": "long"}
{"text": "人人生而自由,在尊严和权利上一律平等。", "lang": "zh_Hans", "kind": "long"}
{"text": "Everyone has the right to life, liberty and security of person.", "lang": "en_Latn", "kind": "long"}
{"text": "كل الناس يولدون أحرارا", "lang": "ar_Arab", "kind": "short"}
"#;

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn report_covers_every_sub_layer_of_every_layer_for_every_precision() {
    let dir = tempfile::tempdir().unwrap();
    let texts = write(dir.path(), "texts.jsonl", TEXTS);
    let pairs = format!("{}/tests/fixtures/texts/parallel_tiny.jsonl", root());
    let out = dir.path().join("out");
    let o = run(&[
        "--model",
        &tiny(),
        "--texts",
        &texts,
        "--pairs",
        &pairs,
        "--out",
        out.to_str().unwrap(),
        "--calibration-texts",
        "3",
        "--mixed-k",
        "2",
        "--bench-seconds",
        "0.05",
        "--threads",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let precs = [
        "fp32",
        "f16",
        "bf16",
        "int8",
        "int8-static-minmax",
        "int8-static-p99.9",
        "int8-static-p99.99",
        "int8-static-mse",
    ];
    assert_eq!(rep["precisions"], serde_json::json!(precs));
    assert_eq!(rep["texts"]["calibration"], 3);
    assert_eq!(rep["texts"]["evaluated"], 4);
    let layers = rep["layers_count"].as_u64().unwrap();
    assert_eq!(layers, 2);
    for p in precs {
        let l = &rep["layers"][p];
        assert!(l["embeddings"]["cos_mean"].is_number(), "{p}");
        for i in 0..layers {
            for s in ["q", "k", "v", "attn_ctx", "attn_out", "attn_norm", "ffn_up", "ffn_down", "output"] {
                let site = &l[format!("layer.{i}.{s}")];
                for k in ["cos_mean", "cos_min", "rel_l2"] {
                    assert!(site[k].is_number(), "{p} layer.{i}.{s} {k}");
                }
                if p == "fp32" {
                    assert_eq!(site["rel_l2"], 0.0);
                } else {
                    let db = site["sqnr_db"].as_f64().unwrap_or(f64::INFINITY);
                    assert!(db > 20.0, "{p} layer.{i}.{s}: {db} dB");
                }
                assert!(site["by_script"]["Hans"]["cos_mean"].is_number(), "{p} layer.{i}.{s}");
            }
        }
        let f = &rep["final"][p];
        for k in ["min", "p1", "p50", "mean"] {
            assert!(f[k].as_f64().unwrap() > 0.99, "{p} final {k}");
        }
        let r = &rep["retrieval"][p];
        for k in ["acc1", "ndcg10", "tau"] {
            assert!(r[k].is_number(), "{p} retrieval {k}");
        }
        assert!(r["by_lang"]["ru_Cyrl"]["acc1"].is_number());
        assert!(rep["speed"][p]["texts_per_s"].as_f64().unwrap() > 0.0);
        assert!(rep["weights_bytes"][p].as_u64().unwrap() > 0);
        // Compact document vectors: fp32, int8 (two ways), binary, binary rescored ×1, 2, 4, 10
        // against int8 and fp32; float vectors of these weights are their own reference.
        let v = rep["vectors"][p].as_array().unwrap();
        assert_eq!(v.len(), 12, "{p}");
        assert_eq!((v[0]["method"].as_str(), v[0]["index_bytes"].as_u64()), (Some("fp32"), Some(128)));
        assert_eq!(v[0]["tau"], 1.0);
        assert_eq!((v[3]["method"].as_str(), v[3]["index_bytes"].as_u64()), (Some("binary"), Some(4)));
        assert_eq!(v[1]["index_bytes"], 32);
        for m in v {
            assert!(m["ndcg10"].as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)), "{p} {}", m["method"]);
            assert!(m["by_lang"]["ru_Cyrl"]["acc1"].is_number());
        }
    }
    assert_eq!(rep["final"]["fp32"]["min"], 1.0);
    assert_eq!(rep["retrieval"]["fp32"]["tau"], 1.0);
    // static scales for all 4 sub-layers of both layers
    assert_eq!(rep["calibration"]["int8-static-mse"].as_object().unwrap().len(), 8);
    assert_eq!(rep["mixed"]["sensitivity"].as_array().unwrap().len(), 8);
    assert_eq!(rep["mixed"]["configs"].as_array().unwrap().len(), 3);
    assert!(rep["pareto"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(std::fs::read(out.join("report.md")).unwrap().len() > 100);
    let md = String::from_utf8(std::fs::read(out.join("report.md")).unwrap()).unwrap();
    assert!(md.contains("## Compact output vectors") && md.contains("| binary → int8 ×4 | 4 + 32 |"), "{md}");
    for chart in ["sqnr_by_depth", "sqnr_all_sites", "sqnr_by_script", "pareto", "deployments"] {
        let png = std::fs::read(out.join(format!("{chart}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{chart}");
        let svg = std::fs::read_to_string(out.join(format!("{chart}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && (svg.contains("SQNR") || svg.contains("cosine")), "{chart}");
        if chart == "deployments" {
            assert!(svg.contains("nDCG@10") && svg.contains("binary → int8 ×4"), "both panels");
        }
    }
}

#[test]
fn unknown_precision_lists_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let texts = write(dir.path(), "texts.jsonl", TEXTS);
    let o = run(&["--model", &tiny(), "--texts", &texts, "--out", "/nonexistent/never", "--precisions", "fp32,int3"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("unknown precision \"int3\""), "{e}");
    assert!(e.contains("int4-g128"), "{e}");
    assert!(e.contains("int8-static-mse") && e.contains("bf16"), "{e}");
    let o =
        run(&["--model", &tiny(), "--texts", &texts, "--out", "/nonexistent/never", "--precisions", "int8-static-max"]);
    assert!(stderr(&o).contains("unknown precision \"int8-static-max\""), "{}", stderr(&o));
}

#[test]
fn missing_and_malformed_pairs_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let texts = write(dir.path(), "texts.jsonl", TEXTS);
    let out = dir.path().join("out");
    let missing = dir.path().join("nope.jsonl");
    let o = run_tiny(&texts, &out, &["--pairs", missing.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("reading the pairs file") && e.contains("nope.jsonl"), "{e}");

    let bad = write(
        dir.path(),
        "bad.jsonl",
        "{\"query\": \"a\", \"passage\": \"b\", \"lang\": \"de\"}\n{\"query\": \"only a query\", \"lang\": \"fr\"}\n",
    );
    let o = run_tiny(&texts, &out, &["--pairs", &bad]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("line 2") && e.contains("\"passage\""), "{e}");

    let bad = write(dir.path(), "bad2.jsonl", "{\"query\": \"a\", \"passage\": \"b\"}\nnot json\n");
    let o = run_tiny(&texts, &out, &["--pairs", &bad]);
    assert!(stderr(&o).contains("line 2: malformed JSON"), "{}", stderr(&o));
}

#[test]
fn smoothed_static_int8_reports_its_alpha_per_sub_layer() {
    let dir = tempfile::tempdir().unwrap();
    let texts = write(dir.path(), "texts.jsonl", TEXTS);
    let out = dir.path().join("out");
    let o = run_tiny(
        &texts,
        &out,
        &[
            "--precisions",
            "fp32,int8-static-smooth",
            "--calibration-texts",
            "3",
            "--mixed-k",
            "0",
            "--bench-seconds",
            "0",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let sites = rep["calibration"]["smooth"]["sites"].as_object().unwrap();
    assert_eq!(sites.len(), 8, "4 sub-layers of both layers");
    assert_eq!(rep["calibration"]["smooth"]["headroom"], 1.0, "no headroom unless asked");
    for (name, s) in sites {
        assert!(s["alpha"].is_number() || s["alpha"].is_null(), "{name}: {s}");
        assert!(s["error"].as_f64().unwrap() <= s["error_unsmoothed"].as_f64().unwrap(), "{name}: {s}");
    }
    assert_eq!(rep["calibration"]["int8-static-smooth"].as_object().unwrap().len(), 8, "its scales");
    assert!(rep["final"]["int8-static-smooth"]["min"].as_f64().unwrap() > 0.98);
    // The share of evaluated rows that left the calibrated range, in total and by sub-layer.
    let out_of_range = &rep["calibration"]["smooth_out_of_range"];
    let by_site = out_of_range["by_site"].as_object().unwrap();
    assert_eq!(by_site.keys().collect::<Vec<_>>(), sites.keys().collect::<Vec<_>>());
    let fraction = out_of_range["fraction"].as_f64().unwrap();
    let mean = by_site.values().map(|f| f.as_f64().unwrap()).sum::<f64>() / 8.0;
    assert!((0.0..=1.0).contains(&fraction) && (fraction - mean).abs() < 1e-12, "{out_of_range}");
    assert!(out_of_range["rows"].as_u64().unwrap() > 0);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("leave the calibrated range"), "{md}");
}

#[test]
fn int4_files_gptq_and_int4_table_are_written_beside_the_report_and_measured() {
    let dir = tempfile::tempdir().unwrap();
    let texts = write(dir.path(), "texts.jsonl", TEXTS);
    let out = dir.path().join("out");
    let precisions = "fp32,int4-g32,int4-g32-gptq,int4-g32-int4-table";
    let args = ["--precisions", precisions, "--calibration-texts", "3", "--mixed-k", "0"];
    let o = run_tiny(&texts, &out, &[&args[..], &["--bench-seconds", "0"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert!(rep["calibration"]["gptq_tokens"].as_u64().unwrap() > 0, "{}", rep["calibration"]);
    assert!(rep["final"]["int4-g32-gptq"]["mean"].as_f64().unwrap() > 0.99, "{}", rep["final"]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(!md.contains("NaN"), "no speed measured (--bench-seconds 0) reads as a dash: {md}");
    let manifest = std::fs::read_to_string(out.join("models/int4-g32-gptq/e5-quantization.json")).unwrap();
    assert!(manifest.contains("\"int4-g32\""), "{manifest}");
    let manifest = std::fs::read_to_string(out.join("models/int4-g32-int4-table/e5-quantization.json")).unwrap();
    assert!(manifest.contains("int4 per group of 32"), "{manifest}");
    let size = |name: &str| std::fs::metadata(out.join("models").join(name).join("model.safetensors")).unwrap().len();
    assert!(size("int4-g32-int4-table") < size("int4-g32-gptq"), "an int4 table is smaller than an int8 one");
    // GPTQ starts from fp32 weights; a mixed search cannot start from a file.
    let o = run_tiny(&texts, &out, &["--precisions", "fp32", "--mixed-base", "int4-g32-gptq"]);
    assert!(!o.status.success() && stderr(&o).contains("--mixed-base"), "{}", stderr(&o));
}

/// The calibrated parts of a report: static and smoothed scales, GPTQ tokens, α per sub-layer.
fn calibrated(rep: &serde_json::Value) -> serde_json::Value {
    let c = &rep["calibration"];
    serde_json::json!([c["int8-static-mse"], c["int8-static-smooth"], c["smooth"], c["gptq_tokens"], c["max_abs"]])
}

#[test]
fn a_calibration_file_calibrates_every_mode_and_leaves_every_text_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let texts = write(dir.path(), "texts.jsonl", TEXTS);
    // The texts `--calibration-texts 3` picks from the 7 (spread: 0, 2, 4), as a file of their own.
    let lines: Vec<&str> = TEXTS.lines().collect();
    let cal = write(dir.path(), "cal.jsonl", &[lines[0], lines[2], lines[4], ""].join("\n"));
    let pairs = format!("{}/tests/fixtures/texts/parallel_tiny.jsonl", root());
    let precisions = "fp32,int8-static-mse,int8-static-smooth,int4-g32-gptq";
    let common = ["--precisions", precisions, "--pairs", &pairs, "--mixed-k", "0", "--bench-seconds", "0"];
    let report = |out: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
    };
    let (from_file, spread) = (dir.path().join("file"), dir.path().join("spread"));
    let o = run_tiny(&texts, &from_file, &[&common[..], &["--calibration-file", &cal]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_tiny(&texts, &spread, &[&common[..], &["--calibration-texts", "3"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let (f, s) = (report(&from_file), report(&spread));
    assert_eq!((f["texts"]["calibration"].as_u64(), f["texts"]["evaluated"].as_u64()), (Some(3), Some(7)));
    assert_eq!(f["texts"]["calibration_file"], cal.as_str());
    assert_eq!((s["texts"]["evaluated"].as_u64(), s["texts"].get("calibration_file")), (Some(4), None));
    // Same calibration texts, same calibration: static and smoothed scales, GPTQ Hessians
    // (their token count; the int4 file's cosine below) and the int8 vector ranges.
    assert!(f["calibration"]["gptq_tokens"].as_u64().unwrap() > 0);
    assert_eq!(calibrated(&f), calibrated(&s));
    assert_eq!(f["vectors"], s["vectors"], "int8 document-vector ranges from the same texts");
    let gptq = |r: &serde_json::Value| r["final"]["int4-g32-gptq"]["min"].as_f64().unwrap();
    assert!(gptq(&f) > 0.98, "{}", f["final"]);
    // The five texts with the lowest cosine, lowest first: which inputs break a precision.
    let worst = f["final"]["int8-static-mse"]["worst"].as_array().unwrap();
    let cos: Vec<f64> = worst.iter().map(|w| w["cos"].as_f64().unwrap()).collect();
    assert_eq!((cos.len(), cos[0]), (5, f["final"]["int8-static-mse"]["min"].as_f64().unwrap()));
    assert!(cos.windows(2).all(|w| w[0] <= w[1]), "{cos:?}");
    assert!(worst.iter().all(|w| TEXTS.contains(w["text"].as_str().unwrap())), "{worst:?}");
    let md = std::fs::read_to_string(from_file.join("report.md")).unwrap();
    assert!(md.contains(&format!("3 calibration texts from {cal} (none of them evaluated")), "{md}");
    assert!(md.contains("- int8-static-mse: "), "{md}");
}

#[test]
fn a_calibration_file_is_refused_with_calibration_texts_and_when_empty_or_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let texts = write(dir.path(), "texts.jsonl", TEXTS);
    let out = dir.path().join("out");
    let cal = write(dir.path(), "cal.jsonl", TEXTS);
    let failed = |extra: &[&str]| {
        let o = run_tiny(&texts, &out, &[&["--precisions", "fp32,int8-static-smooth"][..], extra].concat());
        assert!(!o.status.success(), "{extra:?} was accepted");
        stderr(&o)
    };
    let e = failed(&["--calibration-file", &cal, "--calibration-texts", "3"]);
    assert!(e.contains("--calibration-file") && e.contains("--calibration-texts"), "{e}");
    let empty = write(dir.path(), "empty.jsonl", "\n\n");
    let e = failed(&["--calibration-file", &empty]);
    assert!(e.contains("empty.jsonl holds no texts"), "{e}");
    let missing = dir.path().join("missing.jsonl");
    let e = failed(&["--calibration-file", missing.to_str().unwrap()]);
    assert!(e.contains("--calibration-file") && e.contains("missing.jsonl"), "{e}");
    let bad = write(dir.path(), "bad.jsonl", "{\"text\": \"fine\"}\n{\"txt\": \"no text\"}\n");
    let e = failed(&["--calibration-file", &bad]);
    assert!(e.contains("bad.jsonl: line 2"), "{e}");
    assert!(!out.exists(), "refused before anything is written");
    // --calibration-texts 0 says the same as the file: accepted.
    let o = run_tiny(
        &texts,
        &out,
        &[
            "--precisions",
            "fp32,int8-static-mse",
            "--calibration-file",
            &cal,
            "--calibration-texts",
            "0",
            "--mixed-k",
            "0",
            "--bench-seconds",
            "0",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}
