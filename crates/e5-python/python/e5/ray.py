"""Ray Data: embed a corpus across a cluster with `Dataset.map_batches`.

    import ray, e5.ray
    ds = ray.data.read_parquet("corpus/")
    ds = ds.map_batches(e5.ray.Embedder, fn_constructor_kwargs={"model": "intfloat/multilingual-e5-small"},
                        batch_format="pyarrow", batch_size=1024, concurrency=4, num_cpus=8)
    ds.write_parquet("vectors/")

Each actor loads the model once and embeds with as many threads as it was given CPUs
(`num_cpus`); the vectors are bit-identical to `e5 embed` and to a single process, whatever the
number of actors, batch size or node they land on.
"""

import e5


def _actor_cpus():
    """The CPUs Ray assigned to this actor (1 when unknown)."""
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    except Exception:  # outside an actor
        cpus = 1
    return max(1, int(cpus))


class Embedder:
    """A callable class for `ray.data.Dataset.map_batches(Embedder, batch_format="pyarrow", ...)`:
    adds an `output_column` of `FixedSizeList<float32>[dim]` vectors of `text_column` to each
    pyarrow batch (the other columns, ids included, pass through; `drop_text=True` drops the text).

    model: a model directory or Hugging Face id (in the local HF cache of every node).
    kind: "passage" (default, documents), "query" or "raw".
    threads: worker threads; None takes the actor's `num_cpus`.
    Other keyword arguments go to `e5.Model` (precision, long_inputs, ...).
    """

    def __init__(self, model, text_column="text", output_column="embedding", kind="passage", batch_size=32,
                 drop_text=False, threads=None, **model_kwargs):
        self.model = e5.Model(model, threads=threads or _actor_cpus(), **model_kwargs)
        self.text_column, self.output_column = text_column, output_column
        self.kind, self.batch_size, self.drop_text = kind, batch_size, drop_text

    def __call__(self, batch):
        vectors = self.model.encode_arrow(batch[self.text_column], kind=self.kind, batch_size=self.batch_size)
        if self.drop_text:
            batch = batch.drop_columns([self.text_column])
        return batch.append_column(self.output_column, vectors)
