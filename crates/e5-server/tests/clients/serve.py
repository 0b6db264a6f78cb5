"""Starts `e5 serve` on 127.0.0.1 (port 0) and waits until /ready answers 200."""

import json
import os
import subprocess
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../.."))
E5 = os.path.join(ROOT, "target/release/e5")
E5_SMALL = os.path.join(ROOT, "models/multilingual-e5-small")


class Server:
    def __init__(self, *args):
        if not os.path.exists(os.path.join(E5_SMALL, "model.safetensors")):
            raise SystemExit(f"{E5_SMALL} is missing: run bash tools/setup-models.sh")
        self.proc = subprocess.Popen(
            [E5, "serve", *args, "--host", "127.0.0.1", "--port", "0"], stderr=subprocess.PIPE, text=True
        )
        for line in self.proc.stderr:
            if "listening on " in line:
                self.url = line.split("listening on ")[1].strip()
                break
        else:
            raise SystemExit("e5 serve exited before listening")
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("e5 serve never became ready")

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.loads(r.read())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.stderr.read()
        assert self.proc.wait(timeout=120) == 0, "e5 serve did not exit 0 on SIGTERM"
