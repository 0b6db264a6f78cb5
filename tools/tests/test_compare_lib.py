"""tools/compare's reductions of its rounds: best-of per engine, and e5 ÷ ONNX Runtime paired
round by round. Pure functions over bench results; no engine runs here.

    (cd tools && python3 -m pytest -q -p no:cacheprovider tests)
"""
from compare_lib.main import best, compare_report, cpu_model, paired_ratios


def run(ms, qps, pps):
    """One round's result, as `e5 bench` and the Python workers report it."""
    return {"query_latency_ms": {"median": ms, "p90": 1.5 * ms}, "queries_per_s_batch32": qps,
            "passages_per_s_batch32": pps}


# Two noisy rounds: best-of reads e5-fp32's queries/s at 200 ÷ 160 = 1.25×, where the rounds
# read 1.25× and 1.00× (median 1.12×).
RESULTS = {
    "e5-fp32": {"runs": [run(6.0, 200.0, 12.0), run(8.0, 120.0, 10.0)]},
    "ort-fp32": {"runs": [run(10.0, 160.0, 4.0), run(10.0, 120.0, 5.0)]},
    "e5-int8": {"runs": [run(4.0, 250.0, 18.0)]},
    "ort-int8": {"runs": [run(6.0, 200.0, 8.0), run(5.0, 210.0, 9.0)]},
}


def test_best_takes_each_metric_from_its_best_round():
    b = best(RESULTS["e5-fp32"]["runs"])
    assert (b["ms_median"], b["qps"], b["pps"]) == (6.0, 200.0, 12.0)
    assert best([]) is None


def test_paired_ratios_are_medians_of_same_round_ratios_with_their_range():
    rows = paired_ratios(RESULTS)
    # int8 lost a round on one side: unpaired, left out rather than paired off by one.
    assert [r[:2] for r in rows] == [["e5-fp32 ÷ ort-fp32", "2"]]
    latency, queries, passages = rows[0][2:]
    assert latency == "0.70 (0.60–0.80)"
    assert queries == "1.12 (1.00–1.25)"
    assert passages == "2.50 (2.00–3.00)"


def test_report_shows_the_paired_table_beside_best_of():
    results = {name: {**r, "best": best(r["runs"])} for name, r in RESULTS.items()}
    _, ratios = compare_report(None, results, "tools/compare")
    assert "Paired by round" in ratios
    assert "| e5-fp32 ÷ ort-fp32 | 2 | 0.70 (0.60–0.80) | 1.12 (1.00–1.25) | 2.50 (2.00–3.00) |" in ratios
    assert "e5-int8 ÷ ort-int8" not in ratios.split("Paired by round")[1]


def test_cpu_model_tells_cpus_that_share_a_name_apart():
    zen3 = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n"
    zen4 = ("processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
            "flags\t\t: avx2 avx512f avx512bw avx512_vnni avx512_bf16\n\nprocessor\t: 1\ncpu family\t: 99\n")
    assert cpu_model(zen3) == "AMD EPYC (family 25, model 1; AVX2)"
    assert cpu_model(zen4) == "AMD EPYC (family 25, model 17; AVX-512 + VNNI + BF16)"
    arm = "processor\t: 0\nFeatures\t: fp asimd asimddp\nCPU part\t: 0xd0c\n"
    assert cpu_model(arm) == "0xd0c (NEON + dot product)"
