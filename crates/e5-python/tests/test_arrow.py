"""pyarrow in and out: string arrays, chunked arrays and table columns -> FixedSizeList<float32>."""

import numpy as np
import pyarrow as pa
import pytest

import e5


def test_arrow_in_and_out(tiny, texts):
    m = e5.Model(tiny)
    ref = m.encode(texts, kind="passage")
    table = pa.table({"id": list(range(len(texts))), "text": texts})
    for column in (table["text"], pa.array(texts), pa.array(texts, type=pa.large_string())):
        out = m.encode_arrow(column, kind="passage")
        assert out.type == pa.list_(pa.float32(), m.dim)
        assert len(out) == len(texts)
        assert np.asarray(out.values).reshape(len(texts), m.dim).tobytes() == ref.tobytes()
    assert m.encode(pa.chunked_array([texts[:10], texts[10:]]), kind="passage").tobytes() == ref.tobytes()


def test_arrow_errors(tiny):
    m = e5.Model(tiny)
    with pytest.raises(e5.InputError, match="null"):
        m.encode(pa.array(["a", None]))
    with pytest.raises(e5.InputError, match="string"):
        m.encode(pa.array([1, 2]))
    with pytest.raises(e5.OptionsError, match="column"):
        m.encode(pa.table({"text": ["a"]}))
