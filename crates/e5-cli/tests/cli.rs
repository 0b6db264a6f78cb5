//! The `e5` binary end to end on the tiny fixture model.

use std::process::Output;

mod common;
use common::{command, e5, tiny};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn embed_text_lines_to_jsonl_including_empty_lines() {
    let o = e5(&["embed", "-m", &tiny(), "--kind", "query"], b"first text\n\nthird\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<Vec<f32>> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.len() == 32 && (r.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5));
}

#[test]
fn embed_jsonl_to_npy() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.npy");
    let o = e5(
        &["embed", "-m", &tiny(), "--input-format", "jsonl", "--format", "npy", "-o", out.to_str().unwrap()],
        b"\"a\"\n{\"text\": \"b\"}\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert!(String::from_utf8_lossy(&bytes[10..10 + header_len]).contains("'shape': (2, 32)"));
    assert_eq!(bytes.len(), 10 + header_len + 2 * 32 * 4);
}

#[test]
fn invalid_utf8_and_bad_jsonl_name_the_line() {
    let o = e5(&["embed", "-m", &tiny()], b"fine\nalso fine\nbroken \xc3\x28\n");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 3: invalid UTF-8"), "{}", stderr(&o));
    let o = e5(&["embed", "-m", &tiny(), "--input-format", "jsonl"], b"\"ok\"\n[1, 2]\n");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
}

#[test]
fn truncation_is_reported_and_chunks_carry_spans() {
    let long = "word ".repeat(400);
    let o = e5(&["embed", "-m", &tiny()], format!("short\n{long}\n").as_bytes());
    assert!(o.status.success());
    assert!(stderr(&o).contains("line 2 truncated from"), "{}", stderr(&o));
    let o = e5(
        &["embed", "-m", &tiny(), "--long", "chunk", "--chunk-output", "chunk", "--chunk-overlap", "4"],
        format!("{long}\n").as_bytes(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(rows.len() > 5);
    assert!(rows
        .iter()
        .all(|r| r["input"] == 0 && r["embedding"].as_array().unwrap().len() == 32 && r["chars"].is_array()));
}

#[test]
fn quantize_int4_with_a_group_size_embeds_with_no_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("int4");
    let model = tiny();
    let run = |extra: &[&str]| {
        let mut args = vec!["quantize", "-m", model.as_str(), "--out", out.to_str().unwrap(), "--force"];
        args.extend_from_slice(extra);
        e5(&args, b"")
    };
    let o = run(&["--precision", "int4", "--group-size", "32"]);
    assert!(o.status.success() && stderr(&o).contains("precision int4-g32"), "{}", stderr(&o));
    let o = e5(&["embed", "-m", out.to_str().unwrap()], b"hello\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = e5(&["info", "-m", out.to_str().unwrap(), "--json"], b"");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["precision"], "int4-g32", "{v}");
    for (extra, why) in [
        (["--precision", "int4-g64", "--group-size", "32"], "contradicts"),
        (["--precision", "int8", "--group-size", "32"], "applies to int4"),
        (["--precision", "int4", "--group-size", "16"], "32, 64 or 128"),
        (["--precision", "int4", "--group-size", "64"], "does not divide its input width 32"),
    ] {
        let o = run(&extra);
        assert!(!o.status.success() && stderr(&o).contains(why), "{extra:?}: {}", stderr(&o));
    }
}

#[test]
fn quantize_smooth_takes_a_headroom_and_embeds_with_no_flag() {
    let dir = tempfile::tempdir().unwrap();
    let texts = dir.path().join("calibration.jsonl");
    std::fs::write(&texts, "{\"text\": \"how are you\", \"kind\": \"query\"}\n{\"text\": \"fine, thanks\"}\n").unwrap();
    let (model, out) = (tiny(), dir.path().join("smooth"));
    let run = |extra: &[&str]| {
        let mut args = vec!["quantize", "-m", model.as_str(), "--out", out.to_str().unwrap(), "--force", "--precision"];
        args.extend_from_slice(&["int8", "--smooth", "--calibration-texts", texts.to_str().unwrap()]);
        args.extend_from_slice(extra);
        e5(&args, b"")
    };
    let o = run(&["--headroom", "1.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = e5(&["embed", "-m", out.to_str().unwrap()], b"hello\n");
    assert!(o.status.success(), "{}", stderr(&o));
    for bad in ["0.5", "9", "NaN"] {
        let o = run(&["--headroom", bad]);
        assert!(!o.status.success() && stderr(&o).contains("headroom"), "{bad}: {}", stderr(&o));
    }
    let o = e5(&["quantize", "-m", model.as_str(), "--out", out.to_str().unwrap(), "--headroom", "2"], b"");
    assert!(!o.status.success() && stderr(&o).contains("--smooth"), "{}", stderr(&o));
}

#[test]
fn quantize_gptq_writes_int4_that_embeds_with_no_flag() {
    let dir = tempfile::tempdir().unwrap();
    let texts = dir.path().join("calibration.jsonl");
    std::fs::write(&texts, "{\"text\": \"how are you\", \"kind\": \"query\"}\n{\"text\": \"fine, thanks\"}\n").unwrap();
    let (model, out) = (tiny(), dir.path().join("gptq"));
    let run = |precision: &str, extra: &[&str]| {
        let mut args = vec!["quantize", "-m", model.as_str(), "--out", out.to_str().unwrap(), "--force"];
        args.extend_from_slice(&["--precision", precision, "--calibration-texts", texts.to_str().unwrap()]);
        args.extend_from_slice(extra);
        e5(&args, b"")
    };
    let o = run("int4", &["--gptq", "--group-size", "32", "--word-table", "int4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest = std::fs::read_to_string(out.join("e5-quantization.json")).unwrap();
    assert!(manifest.contains("\"int4-g32\"") && manifest.contains("int4 per group of 32"), "{manifest}");
    let o = e5(&["embed", "-m", out.to_str().unwrap()], b"hello\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run("int8", &["--gptq"]);
    assert!(!o.status.success() && stderr(&o).contains("--gptq writes int4"), "{}", stderr(&o));
    let o = run("int4", &[]);
    assert!(!o.status.success() && stderr(&o).contains("--smooth or --gptq"), "{}", stderr(&o));
    let o = run("int8", &["--gptq", "--word-table", "int4"]);
    assert!(!o.status.success() && stderr(&o).contains("--word-table int4 needs an int4 precision"), "{}", stderr(&o));
}

#[test]
fn tokenize_and_info() {
    let o = e5(&["tokenize", "-m", &tiny(), "Hello world"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ids"][0], 0, "starts with <s>");
    assert_eq!(v["ids"].as_array().unwrap().len(), v["tokens"].as_array().unwrap().len());
    let o = e5(&["info", "-m", &tiny(), "--json"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["architecture"], "XLMRobertaModel");
    assert!(v["peak resident while embedding"].as_str().unwrap().ends_with("MiB"));
}

#[test]
fn bench_reports_every_phase() {
    let workload = format!("{}/../../benches/workload.jsonl", env!("CARGO_MANIFEST_DIR"));
    let o = e5(&["bench", "-m", &tiny(), "--workload", &workload, "--seconds", "0.05", "--threads", "2"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in ["queries_per_s_batch32", "passages_per_s_batch32", "fma_peak_gflops"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    assert!(v["query_latency_ms"]["median"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    assert_eq!(v["cold_query_latency_ms"]["n"], 5, "{v}");
    assert!(v["dispatch"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
}

#[test]
fn missing_model_is_a_clear_error() {
    let o = e5(&["embed", "-m", "/nonexistent/model"], b"x\n");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/model"), "{}", stderr(&o));
}

#[test]
fn unknown_or_unavailable_devices_are_clear_errors() {
    let o = e5(&["embed", "-m", &tiny(), "--device", "tpu"], b"x\n");
    assert!(!o.status.success() && stderr(&o).contains("unknown device"), "{}", stderr(&o));
    // Without the `cuda` feature, or without a driver, asking for CUDA is an error, not a crash.
    let o = e5(&["embed", "-m", &tiny(), "--device", "cuda"], b"x\n");
    assert!(!o.status.success(), "no GPU here");
    let err = stderr(&o);
    assert!(err.contains("CUDA"), "{err}");
}

/// `E5_BF16` forces how `--precision bf16` runs (the bf16-dot kernel or widening to f32),
/// the default is the dot kernel on AMD CPUs that have it and widening elsewhere,
/// `e5 info` says which and why, and a bad value or a kernel this table lacks is an error.
#[test]
fn bf16_path_is_reported_and_forced() {
    let info = |bf16: &str, isa: &str| {
        let args = ["info", "-m", &tiny(), "--precision", "bf16", "--json"];
        command().args(args).env("E5_BF16", bf16).env("E5_ISA", isa).output().unwrap()
    };
    let dispatch = |o: &Output| {
        assert!(o.status.success(), "{}", stderr(o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["dispatch"].as_str().unwrap().to_string()
    };
    assert!(dispatch(&info("widen", "")).contains("bf16 widened to f32 (forced by E5_BF16)"));
    let dot = ["avx512f", "avx512bw", "avx512vl", "avx512_bf16"].iter().all(|f| cpu_has(f));
    let amd = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| s.contains("AuthenticAMD"));
    let default = dispatch(&info("", ""));
    let want = match (dot, amd) {
        (true, true) => "bf16 avx512-bf16-dot 12x32 tile",
        (true, false) => "bf16 widened to f32 (faster than the AVX512-BF16 dot kernel",
        (false, _) => "bf16 widened to f32 (no AVX512-BF16",
    };
    assert!(default.contains(want), "{default}");
    if dot {
        let forced = dispatch(&info("dot", ""));
        assert!(
            forced.contains("bf16 avx512-bf16-dot 12x32 tile") && forced.contains("(forced by E5_BF16)"),
            "{forced}"
        );
    }
    let o = info("bogus", "");
    assert!(!o.status.success() && stderr(&o).contains("E5_BF16=\"bogus\" is not a bf16 path"), "{}", stderr(&o));
    let o = info("dot", "scalar");
    assert!(!o.status.success() && stderr(&o).contains("no bf16-dot GEMM"), "{}", stderr(&o));
}

/// Whether /proc/cpuinfo lists the flag (Linux spelling, `avx512_bf16`; false where there is
/// no such file).
fn cpu_has(flag: &str) -> bool {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    flags.split_whitespace().any(|f| f == flag)
}
