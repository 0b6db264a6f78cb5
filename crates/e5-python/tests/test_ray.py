"""e5.ray on a local two-node Ray cluster: two actors embed a few thousand texts, and the
result joined on ids equals single-process `e5 embed` bit for bit."""

import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray.cluster_utils import Cluster

import e5.ray


def test_two_nodes_two_actors_equal_e5_embed(tiny, e5_bin, tmp_path):
    n = 3000
    order = np.random.default_rng(0).permutation(n)
    texts = [f"document {i}: " + "lorem ipsum dolor " * (i % 9) for i in order]
    source = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"id": order, "text": texts}), source, row_group_size=300)

    node = {"num_cpus": 2, "object_store_memory": 80 << 20}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    try:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        assert len([x for x in ray.nodes() if x["Alive"]]) == 2
        ds = ray.data.read_parquet(str(source)).map_batches(
            e5.ray.Embedder, fn_constructor_kwargs={"model": tiny, "kind": "passage"},
            batch_format="pyarrow", batch_size=250, concurrency=2, num_cpus=1)
        ds.write_parquet(str(tmp_path / "ray-out"))
    finally:
        ray.shutdown()
        cluster.shutdown()

    cli = tmp_path / "cli.parquet"
    subprocess.run([e5_bin, "embed", "-m", tiny, "--kind", "passage", "--input-format", "parquet", "-i", str(source),
                    "--format", "parquet", "-o", str(cli)], check=True)
    got = pq.read_table(tmp_path / "ray-out").sort_by("id")
    want = pq.read_table(cli).sort_by("id")
    assert got["id"].to_pylist() == want["id"].to_pylist() == list(range(n))
    for t in (got, want):
        vector_type = t.schema.field("embedding").type
        assert vector_type.list_size == 32 and vector_type.value_type == pa.float32()
    as_array = lambda t: np.asarray(t["embedding"].combine_chunks().flatten())  # noqa: E731
    assert as_array(got).tobytes() == as_array(want).tobytes()
