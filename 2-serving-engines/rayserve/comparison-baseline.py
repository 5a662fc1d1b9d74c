#!/usr/bin/env python3
"""RayServe baseline for the open-source comparison: Ray Serve LLM serving Qwen/Qwen3-32B as
four replicas, each a vLLM engine with tensor parallel 2 (eight GPUs in all), vLLM's prefix cache
on and a 28000-token context, behind Ray Serve's OpenAI-compatible ingress on port
$LMBENCH_PORT (default 30080).

Needs `ray[serve,llm]` and a vLLM version that this Ray release supports
(pip install "ray[serve,llm]"), eight GPUs of the given accelerator type, and HF_TOKEN if the
weights are not in the Hugging Face cache yet.

lmbench runs it as `python3 comparison-baseline.py <acceleratorType>` (acceleratorType: the
spec's value, e.g. H100 or A100) in its own process group. It serves in the foreground until
SIGTERM or SIGINT, then shuts Ray Serve and the local Ray cluster down. The serving itself is in
_serve_llm.py, shared with the other RayServe scripts.
"""

import sys

# The shared module is imported from this folder; keep Python from writing __pycache__ here.
sys.dont_write_bytecode = True
from _serve_llm import serve  # noqa: E402

MODEL = "Qwen/Qwen3-32B"
REPLICAS = 4
TENSOR_PARALLEL = 2
MAX_MODEL_LEN = 28000


if __name__ == "__main__":
    sys.exit(
        serve(
            __file__,
            MODEL,
            replicas=REPLICAS,
            tensor_parallel=TENSOR_PARALLEL,
            max_model_len=MAX_MODEL_LEN,
        )
    )
