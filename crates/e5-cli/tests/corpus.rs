//! `e5 embed` on corpora: streaming JSONL with pass-through fields, Parquet in and out,
//! `--shard`, `--resume` after a kill, no partial output, and errors that name the line.

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;

mod common;
mod output_vectors;
use common::{command, e5, tiny};

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    err
}

fn failed(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `n` JSONL records `{"id": i, "text": ..., "lang": ...}` with varied lengths.
fn corpus(n: usize) -> String {
    (0..n)
        .map(|i| {
            let text = format!("text {i}: {}", "lorem ipsum dolor ".repeat(i % 7));
            let lang = ["en", "fr"][i % 2];
            format!("{}\n", serde_json::json!({ "id": i, "text": text, "lang": lang }))
        })
        .collect()
}

fn texts_of(corpus: &str) -> Vec<String> {
    corpus
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().into())
        .collect()
}

/// Vectors of plain text lines (no JSON fields): the reference every other path must match.
fn reference(texts: &[String]) -> Vec<Vec<f32>> {
    let o = e5(
        &["embed", "-m", &tiny(), "--input-format", "jsonl"],
        texts.iter().map(|t| format!("{}\n", serde_json::json!(t))).collect::<String>().as_bytes(),
    );
    ok(&o);
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn rows(jsonl: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn vector(row: &serde_json::Value) -> Vec<f32> {
    row["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn jsonl_fields_pass_through_and_vectors_match_plain_text() {
    let input = corpus(70);
    let o = e5(&["embed", "-m", &tiny(), "--input-format", "jsonl"], input.as_bytes());
    let err = ok(&o);
    assert!(err.contains("e5 embed: 70 texts,") && err.contains("0 truncated"), "summary: {err}");
    let out = rows(&o.stdout);
    assert_eq!(out.len(), 70);
    let texts = texts_of(&input);
    // The same texts as plain lines (none holds a newline).
    let plain: String = texts.iter().map(|t| format!("{t}\n")).collect();
    let o = e5(&["embed", "-m", &tiny()], plain.as_bytes());
    ok(&o);
    let bare: Vec<Vec<f32>> =
        std::str::from_utf8(&o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (i, row) in out.iter().enumerate() {
        assert_eq!(row["id"], i);
        assert_eq!(row["lang"], ["en", "fr"][i % 2]);
        assert!(row.get("text").is_none(), "the text does not pass through");
        assert_eq!(vector(row), bare[i], "row {i}");
    }
}

#[test]
fn text_field_and_errors_that_name_the_line() {
    let o = e5(
        &["embed", "-m", &tiny(), "--input-format", "jsonl", "--text-field", "body"],
        b"{\"body\": \"x\", \"k\": 1}\n",
    );
    ok(&o);
    assert_eq!(rows(&o.stdout)[0]["k"], 1);
    let mut input = corpus(40);
    input.push_str("{\"id\": 40, \"body\": \"no text field\"}\n");
    let err = failed(&e5(&["embed", "-m", &tiny(), "--input-format", "jsonl"], input.as_bytes()));
    assert!(err.contains("line 41: no \"text\" field"), "{err}");
    let err = failed(&e5(&["embed", "-m", &tiny(), "--input-format", "jsonl"], b"\xEF\xBB\xBF{\"text\": \"x\"}\n"));
    assert!(err.contains("line 1") && err.contains("byte-order mark"), "{err}");
    // Line numbers count from the start of the input, not within a batch of 32.
    let mut lines: Vec<String> = (0..39).map(|i| format!("short {i}")).collect();
    lines.push("word ".repeat(200));
    let err = ok(&e5(&["embed", "-m", &tiny()], (lines.join("\n") + "\n").as_bytes()));
    assert!(err.contains("input on line 40 truncated"), "{err}");
    assert!(err.contains("1 truncated"), "{err}");
}

#[test]
fn bad_chunk_flags_are_refused_before_reading_input() {
    // The input is invalid too: the flag error must come first.
    for flags in [&["--chunk-overlap", "64", "--chunk-window", "64"][..], &["--chunk-overlap", "5000"]] {
        let t = tiny();
        let mut args = vec!["embed", "-m", &t, "--long", "chunk"];
        args.extend_from_slice(flags);
        let err = failed(&e5(&args, b"\xff\xfe bad input\n"));
        assert!(err.contains("--chunk-overlap") && !err.contains("UTF-8"), "{err}");
    }
}

#[test]
fn a_failed_run_leaves_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.npy");
    let mut input = corpus(2000);
    input.push_str("{oops\n");
    let err = failed(&e5(
        &["embed", "-m", &tiny(), "--input-format", "jsonl", "--format", "npy", "-o", out.to_str().unwrap()],
        input.as_bytes(),
    ));
    assert!(err.contains("line 2001: malformed JSON"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "neither the output nor a temporary file");
    let err = failed(&e5(&["embed", "-m", &tiny(), "--format", "npy"], b"x\n"));
    assert!(err.contains("-o FILE"), "{err}");
}

#[test]
fn npy_streams_with_the_right_row_count() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.npy");
    let input = corpus(1500);
    ok(&e5(
        &["embed", "-m", &tiny(), "--input-format", "jsonl", "--format", "npy", "-o", out.to_str().unwrap()],
        input.as_bytes(),
    ));
    let bytes = std::fs::read(&out).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert!(String::from_utf8_lossy(&bytes[10..10 + header_len]).contains("'shape': (1500, 32)"));
    assert_eq!(bytes.len(), 10 + header_len + 1500 * 32 * 4);
}

#[test]
fn shards_partition_the_input() {
    let input = corpus(50);
    let whole = rows(&e5(&["embed", "-m", &tiny(), "--input-format", "jsonl"], input.as_bytes()).stdout);
    let mut seen = Vec::new();
    for i in 0..3 {
        let o =
            e5(&["embed", "-m", &tiny(), "--input-format", "jsonl", "--shard", &format!("{i}/3")], input.as_bytes());
        ok(&o);
        for row in rows(&o.stdout) {
            assert_eq!(row["id"].as_u64().unwrap() % 3, i);
            seen.push(row);
        }
    }
    seen.sort_by_key(|r| r["id"].as_u64());
    assert_eq!(seen, whole);
    assert!(failed(&e5(&["embed", "-m", &tiny(), "--shard", "3/3"], b"x\n")).contains("0 <= I < N"));
}

/// Feeds `input` to a `--resume` run until `parts` parts are complete, then kills it.
fn killed_run(args: &[&str], input: &[u8], parts_dir: &Path, parts: usize) {
    let mut child = command().args(args).stdin(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    stdin.flush().unwrap();
    // The process now waits for more input, its complete parts renamed into place.
    let complete = || {
        std::fs::read_dir(parts_dir)
            .map(|d| d.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("part-")).count())
            .unwrap_or(0)
    };
    let start = std::time::Instant::now();
    while complete() < parts {
        assert!(start.elapsed().as_secs() < 120, "the run never wrote {parts} parts");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn resume_after_a_kill_gives_the_uninterrupted_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(230);
    for format in ["jsonl", "npy"] {
        let out = dir.path().join(format!("v.{format}"));
        let parts = dir.path().join(format!("v.{format}.parts"));
        let model = tiny();
        let args = resumable_embed(&model, format, &out);
        // 105 records: parts 0..4 complete, part 5 half done when the run is killed.
        let head: String = input.lines().take(105).map(|l| format!("{l}\n")).collect();
        killed_run(&args, head.as_bytes(), &parts, 5);
        assert!(!out.exists(), "no output before the run completes");
        let err = ok(&e5(&args, input.as_bytes()));
        assert!(err.contains("e5 embed: 130 texts"), "only the records after the 5 complete parts: {err}");
        assert!(!parts.exists(), "parts are removed once joined");
        let straight = dir.path().join(format!("straight.{format}"));
        ok(&e5(
            &["embed", "-m", &tiny(), "--input-format", "jsonl", "--format", format, "-o", straight.to_str().unwrap()],
            input.as_bytes(),
        ));
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&straight).unwrap(), "{format}");
    }
    // A rerun with other flags does not mix its rows into the parts.
    let out = dir.path().join("w.jsonl");
    let model = tiny();
    let args = resumable_embed(&model, "jsonl", &out);
    killed_run(&args, corpus(45).as_bytes(), &dir.path().join("w.jsonl.parts"), 2);
    let mut other = args.to_vec();
    other.extend(["--kind", "query"]);
    assert!(failed(&e5(&other, corpus(45).as_bytes())).contains("job.json"));
}

/// `e5 embed` of JSONL records into `out`, resumable, in parts of 20 records.
fn resumable_embed<'a>(model: &'a str, format: &'a str, out: &'a Path) -> Vec<&'a str> {
    let out = out.to_str().unwrap();
    vec![
        "embed",
        "-m",
        model,
        "--input-format",
        "jsonl",
        "--format",
        format,
        "-o",
        out,
        "--resume",
        "--part-records",
        "20",
    ]
}

fn write_parquet(path: &Path, n: usize) -> Vec<String> {
    let texts: Vec<String> = (0..n).map(|i| format!("parquet text {i} {}", "x ".repeat(i % 5))).collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from_iter_values(0..n as i64)) as Arc<dyn Array>),
        ("text", Arc::new(StringArray::from(texts.clone()))),
        ("lang", Arc::new(StringArray::from_iter_values((0..n).map(|i| ["en", "de"][i % 2])))),
    ])
    .unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    texts
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(path).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

#[test]
fn parquet_in_and_out_with_columns_passed_through() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let texts = write_parquet(&input, 1500);
    let expected = reference(&texts);
    let out = dir.path().join("out.parquet");
    let base =
        ["embed", "-m", &tiny(), "--input-format", "parquet", "-i", input.to_str().unwrap(), "--format", "parquet"];
    let mut args = base.to_vec();
    args.extend(["-o", out.to_str().unwrap(), "--shard", "1/2"]);
    ok(&e5(&args, b""));
    let batches = read_parquet(&out);
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "lang", "embedding"]);
    assert_eq!(format!("{}", schema.field(2).data_type()), "FixedSizeList(32 x non-null Float32)");
    let mut n = 0;
    for b in &batches {
        let ids = b.column(0).as_primitive::<arrow_array::types::Int64Type>();
        let vectors = b.column(2).as_fixed_size_list();
        for r in 0..b.num_rows() {
            let id = ids.value(r) as usize;
            assert_eq!(id % 2, 1, "shard 1/2");
            let v = vectors.value(r);
            assert_eq!(v.as_primitive::<Float32Type>().values().to_vec(), expected[id], "row {id}");
            n += 1;
        }
    }
    assert_eq!(n, 750);
    let mut args = base.to_vec();
    args.extend(["-o", out.to_str().unwrap(), "--text-column", "body"]);
    assert!(failed(&e5(&args, b"")).contains("no column \"body\""));
}
