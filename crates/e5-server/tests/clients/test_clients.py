"""The server through real clients: the official `openai` package with default settings
(base64) gets vectors bit-identical to `e5 embed`; schemathesis finds no 5xx from
/openapi.json; the playground ranks passages in headless Chromium."""

import os
import subprocess
import tempfile

import numpy as np
import openai
import pytest

from serve import E5, E5_SMALL, ROOT, Server

TEXTS = [
    "how much protein should a female eat",
    "南瓜的家常做法",
    "As a general guideline, the CDC's average protein requirement for women ages 19 to 70 is 46 grams per day.",
    "Le camembert est un fromage à pâte molle et à croûte fleurie.",
    "",
]


@pytest.fixture(scope="module")
def server():
    with Server("--model", f"e5={E5_SMALL}") as s:
        yield s


def e5_embed(kind, *flags):
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "in.txt"), os.path.join(d, "out.npy")
        with open(src, "w") as f:
            f.write("\n".join(TEXTS) + "\n")
        subprocess.run(
            [E5, "embed", "--model", E5_SMALL, "--kind", kind, "-i", src, "-o", out, "--format", "npy", *flags],
            check=True,
        )
        return np.load(out)


@pytest.mark.parametrize("kind", ["query", "passage", "raw"])
def test_openai_client_defaults_are_bit_identical_to_e5_embed(server, kind):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    extra = {} if kind == "raw" else {"input_type": kind}
    got = client.embeddings.create(model="e5", input=TEXTS, extra_body=extra)
    vectors = np.array([d.embedding for d in got.data], dtype=np.float32)
    want = e5_embed(kind)
    assert vectors.shape == want.shape == (len(TEXTS), 384)
    assert vectors.tobytes() == want.tobytes()
    assert got.usage.prompt_tokens > 0 and got.usage.total_tokens == got.usage.prompt_tokens
    # One text alone, float encoding: the same bits.
    one = client.embeddings.create(model="e5", input=TEXTS[2], extra_body=extra, encoding_format="float")
    assert np.array(one.data[0].embedding, dtype=np.float32).tobytes() == want[2].tobytes()


def test_openai_client_sees_openai_errors(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="e5", input="x", dimensions=385)
    assert e.value.param == "dimensions"


def test_openai_client_dimensions_are_e5_embed_dimensions_with_a_warning(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    raw = client.embeddings.with_raw_response.create(
        model="e5", input=TEXTS, dimensions=256, extra_body={"input_type": "query"}
    )
    assert "no Matryoshka training" in raw.headers["x-e5-warning"]
    vectors = np.array([d.embedding for d in raw.parse().data], dtype=np.float32)
    want = e5_embed("query", "--dimensions", "256")
    assert vectors.shape == want.shape == (len(TEXTS), 256)
    assert vectors.tobytes() == want.tobytes()


def test_schemathesis_finds_no_server_error(server):
    # schemathesis keeps a crash cache in its working directory: keep it out of the tree.
    subprocess.run(
        [
            "schemathesis", "run", server.url + "/openapi.json",
            "--checks", "not_a_server_error",
            "--max-examples", "25",
            "--phases", "examples,coverage,fuzzing",
            "--suppress-health-check", "all",
            "--no-color",
        ],
        check=True,
        timeout=600,
        cwd=tempfile.mkdtemp(),
    )


def test_playground_ranks_passages_in_headless_chromium(server):
    profile = tempfile.mkdtemp()
    shot = os.path.join(ROOT, "docs/playground.png")
    flags = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
        "--virtual-time-budget=20000", "--window-size=900,760",
    ]
    page = server.url + "/?autorun"
    dom = subprocess.run([*flags, "--dump-dom", page], check=True, capture_output=True, text=True, timeout=300).stdout
    assert "ranked 3 passages" in dom, dom
    # The protein passage ranks first for the protein query.
    first_row = dom.split("<tbody>")[1].split("</tr>")[0]
    assert "CDC" in first_row, first_row
    if os.environ.get("E5_PLAYGROUND_SCREENSHOT"):
        subprocess.run([*flags, f"--screenshot={shot}", page], check=True, capture_output=True, timeout=300)
        assert os.path.getsize(shot) > 0
