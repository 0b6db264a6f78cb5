"""Shared helpers for tools/gpu-check.sh (run on the GPU machine)."""
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "texts", "multilingual.jsonl")


def load_texts(limit=256):
    """First `limit` texts of the fixture, or a generated multilingual list."""
    texts = []
    if os.path.exists(FIXTURE):
        with open(FIXTURE, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                obj = json.loads(line)
                text = obj.get("text") if isinstance(obj, dict) else obj
                if isinstance(text, str) and text.strip():
                    texts.append(text.replace("\n", " "))
                if len(texts) >= limit:
                    break
    if not texts:
        words = ["query: how much protein", "passage: Der schnelle braune Fuchs", "いろはにほへと",
                 "Быстрая коричневая лиса", "el perro perezoso", "مرحبا بالعالم", "火山 の 噴火"]
        texts = [f"{words[i % len(words)]} {i} " + " ".join(words[: 1 + i % 5]) for i in range(limit)]
    return texts


def write_lines(path, texts):
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(t.replace("\n", " ") + "\n")
