"""One Model shared by Python threads: the GIL is released during tokenization and the forward
pass, so calls are in flight at once, and every thread gets the same vectors."""

import threading
import time

import numpy as np

import e5


def test_shared_model_threads_give_identical_vectors(tiny, texts):
    m = e5.Model(tiny)
    ref = m.encode(texts, kind="passage")
    results = [None] * 4

    def work(i):
        # Each thread sees the texts in a different order and batch size.
        order = np.random.default_rng(i).permutation(len(texts))
        v = m.encode([texts[j] for j in order], kind="passage", batch_size=5 + i)
        out = np.empty_like(v)
        out[order] = v
        results[i] = out

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None and r.tobytes() == ref.tobytes() for r in results)


def test_two_calls_run_natively_at_the_same_time(e5_small, texts):
    """Each thread records, in wall-clock time, the spans it spends inside native code between
    progress callbacks (callbacks run with the GIL held). If encode kept the GIL (or a lock)
    for its whole forward pass, no span of one thread could overlap a span of the other. Both
    threads wait at a barrier on their first callback so their work coincides; no timing
    threshold is involved, only whether two native spans intersect."""
    m = e5.Model(e5_small)
    batch = texts[:8] * 10  # 10 batches of 8 per thread
    barrier = threading.Barrier(2, timeout=120)
    spans = {0: [], 1: []}

    def work(i):
        state = {"left": None}

        def progress(done, total):
            entered = time.perf_counter()
            if state["left"] is not None:
                spans[i].append((state["left"], entered))
            if done == 8:
                barrier.wait()
            state["left"] = time.perf_counter()

        m._m.embed(batch, "raw", 8, progress)  # the native call, with its per-batch callback

    cpu0, wall0 = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert len(spans[0]) == len(spans[1]) == 9
    overlaps = sum(a0 < b1 and b0 < a1 for a0, a1 in spans[0] for b0, b1 in spans[1])
    print(f"overlapping native spans: {overlaps}; process CPU {cpu:.2f} s over {wall:.2f} s wall")
    assert overlaps > 0
