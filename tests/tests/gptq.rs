//! GPTQ int4 files (`e5::quantize::gptq`, `e5 quantize --gptq`): they load with no flag, beat
//! round-to-nearest where they were calibrated, meet the int4 accuracy targets on e5-small's
//! held-out real texts, and bad Hessians are refused clearly.

use e5::quantize::gptq::{calibrate, Hessian, Hessians};
use e5::quantize::{quantize_model, QuantizeOptions};
use e5::{Input, Model, Options, Precision};
use e5_tests::*;
use std::path::Path;
use std::sync::Arc;

fn inputs(texts: &[String]) -> Vec<Input<'_>> {
    texts.iter().map(|t| Input::raw(t.as_str())).collect()
}

/// Min and mean cosine of `got`'s vectors to `want`'s.
fn min_mean_cosine(got: &e5::Embeddings, want: &e5::Embeddings) -> (f64, f64) {
    let c: Vec<f64> = (0..got.len()).map(|i| cosine(got.vector(i), want.vector(i))).collect();
    (c.iter().cloned().fold(1.0, f64::min), c.iter().sum::<f64>() / c.len() as f64)
}

fn write_gptq(src: &Path, dst: &Path, hessians: Hessians) -> e5::Result<e5::quantize::Manifest> {
    let options =
        QuantizeOptions { precision: Precision::Int4G32, gptq: Some(Arc::new(hessians)), ..QuantizeOptions::default() };
    quantize_model(src, dst, &options)
}

#[test]
fn gptq_files_load_with_no_flag_and_beat_round_to_nearest_where_calibrated() {
    let dir = fixture("tiny-bert");
    let texts: Vec<String> = workload_texts().into_iter().step_by(10).collect();
    let fp32 = Model::load(&dir, Options::default()).unwrap();
    let hessians = calibrate(&fp32, &inputs(&texts), 8).unwrap();
    assert!(hessians.tokens > 0 && hessians.by_site.len() == 2 * 4, "two layers, four sub-layers each");
    let out = tempfile::tempdir().unwrap();
    let m = write_gptq(&dir, out.path(), hessians).unwrap();
    assert_eq!((m.precision.as_str(), m.group_size), ("int4-g32", Some(32)));
    let gptq = Model::load(out.path(), Options::default()).unwrap();
    assert_eq!(gptq.info().precision, Precision::Int4G32);
    let want = fp32.embed(&inputs(&texts)).unwrap();
    let (gptq_min, gptq_mean) = min_mean_cosine(&gptq.embed(&inputs(&texts)).unwrap(), &want);
    // Round-to-nearest with the same int8 word table as the file.
    let src = with_quantized_table(&dir, out.path());
    let rtn = Model::load(src.path(), Options { precision: Precision::Int4G32, ..Options::default() }).unwrap();
    let (rtn_min, rtn_mean) = min_mean_cosine(&rtn.embed(&inputs(&texts)).unwrap(), &want);
    eprintln!("tiny-bert int4-g32 on its {} calibration texts: GPTQ min {gptq_min:.6} mean {gptq_mean:.6}, RTN min {rtn_min:.6} mean {rtn_mean:.6}", texts.len());
    assert!(gptq_mean > rtn_mean, "GPTQ mean {gptq_mean} vs round-to-nearest {rtn_mean}");
}

#[test]
fn gptq_meets_the_int4_targets_on_e5_small_held_out_texts() {
    let dir = built_model("multilingual-e5-small");
    let texts = workload_texts();
    // Calibrate on every 6th text, evaluate on every 4th of the others.
    let calibration: Vec<String> = texts.iter().step_by(6).cloned().collect();
    let evaluated: Vec<String> =
        texts.iter().enumerate().filter(|(i, _)| i % 6 != 0 && i % 4 == 1).map(|(_, t)| t.clone()).collect();
    let fp32 = Model::load(&dir, Options::default()).unwrap();
    let hessians = calibrate(&fp32, &inputs(&calibration), 16).unwrap();
    let out = tempfile::tempdir().unwrap();
    write_gptq(&dir, out.path(), hessians).unwrap();
    let want = fp32.embed(&inputs(&evaluated)).unwrap();
    let gptq = Model::load(out.path(), Options::default()).unwrap();
    let (min, mean) = min_mean_cosine(&gptq.embed(&inputs(&evaluated)).unwrap(), &want);
    let rtn = Model::load(&dir, Options { precision: Precision::Int4G32, ..Options::default() }).unwrap();
    let (rtn_min, rtn_mean) = min_mean_cosine(&rtn.embed(&inputs(&evaluated)).unwrap(), &want);
    eprintln!(
        "e5-small int4-g32 over {} held-out texts: GPTQ min {min:.6} mean {mean:.6}; round-to-nearest min {rtn_min:.6} mean {rtn_mean:.6}",
        evaluated.len()
    );
    assert!(mean > rtn_mean, "GPTQ did not help");
    assert!(min >= 0.99 && mean >= 0.998, "GPTQ int4-g32: min {min}, mean {mean}");
}

#[test]
fn bad_hessians_and_precisions_are_refused() {
    let dir = fixture("tiny-bert");
    let texts = vec!["query: a calibration text".to_string()];
    let fp32 = Model::load(&dir, Options::default()).unwrap();
    let hessians = calibrate(&fp32, &inputs(&texts), 8).unwrap();
    let out = tempfile::tempdir().unwrap();
    let refused = |options: QuantizeOptions, want: &str| {
        let e = quantize_model(&dir, &out.path().join("q"), &options).expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
    };
    let with =
        |h: Hessians, precision| QuantizeOptions { precision, gptq: Some(Arc::new(h)), ..QuantizeOptions::default() };
    refused(with(hessians.clone(), Precision::Int8), "GPTQ writes int4");
    let mut missing = hessians.clone();
    let first = *missing.by_site.keys().next().unwrap();
    missing.by_site.remove(&first);
    refused(with(missing, Precision::Int4G32), "lack");
    let mut wrong = hessians.clone();
    wrong.by_site.insert(first, Hessian { k: 64, h: vec![1.0; 64 * 64] });
    refused(with(wrong, Precision::Int4G32), "GPTQ Hessian is [64, 64]");
    let mut overflowed = hessians.clone();
    overflowed.by_site.get_mut(&first).unwrap().h[3] = f64::INFINITY;
    refused(with(overflowed, Precision::Int4G32), "not finite");
    // Calibration runs on the fp32 model, with texts.
    assert!(calibrate(&fp32, &[], 8).err().unwrap().to_string().contains("needs texts"));
    let int8 = Model::load(&dir, Options { precision: Precision::Int8, ..Options::default() }).unwrap();
    assert!(calibrate(&int8, &inputs(&texts), 8).err().unwrap().to_string().contains("fp32"));
}
