"""Embed a Parquet corpus on a Ray cluster: read_parquet -> map_batches(e5.ray.Embedder) -> write_parquet.

    python ray_embed.py CORPUS_DIR_OR_FILE OUT_DIR --model intfloat/multilingual-e5-small \
        [--text-column text] [--actors 4] [--cpus-per-actor 8] [--address auto]

Locally, Ray starts a one-machine cluster. On many machines: `ray start --head` on one,
`ray start --address HEAD_IP:6379` on the others (each with the e5 wheel and the model at the
same path), then run this with `--address auto` (see docs/corpus.md).
"""

import argparse

import ray

import e5.ray


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus")
    p.add_argument("out")
    p.add_argument("--model", required=True)
    p.add_argument("--text-column", default="text")
    p.add_argument("--kind", default="passage", choices=["passage", "query", "raw"])
    p.add_argument("--actors", type=int, default=2, help="actors, each holding one model")
    p.add_argument("--cpus-per-actor", type=int, default=1, help="threads of each actor")
    p.add_argument("--batch-size", type=int, default=1024, help="rows per Ray batch")
    p.add_argument("--address", default=None, help="'auto' to join a running cluster")
    a = p.parse_args()

    ray.init(address=a.address)
    ds = ray.data.read_parquet(a.corpus)
    ds = ds.map_batches(
        e5.ray.Embedder,
        fn_constructor_kwargs={"model": a.model, "text_column": a.text_column, "kind": a.kind},
        batch_format="pyarrow",
        batch_size=a.batch_size,
        concurrency=a.actors,
        num_cpus=a.cpus_per_actor,
    )
    ds.write_parquet(a.out)


if __name__ == "__main__":
    main()
