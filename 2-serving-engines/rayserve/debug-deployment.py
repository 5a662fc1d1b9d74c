#!/usr/bin/env python3
"""RayServe baseline for checking the set-up: Ray Serve LLM serving
meta-llama/Llama-3.1-8B-Instruct as one replica on one GPU (vLLM, prefix cache on, 32000-token
context) behind Ray Serve's OpenAI-compatible ingress on port $LMBENCH_PORT (default 30080).

Needs `ray[serve,llm]` and a vLLM version that this Ray release supports
(pip install "ray[serve,llm]"), one GPU of the given accelerator type, and HF_TOKEN with access
to the gated Llama repository (or the weights already in the Hugging Face cache).

lmbench runs it as `python3 debug-deployment.py <acceleratorType>` (acceleratorType: the spec's
value, e.g. H100 or A100) in its own process group. It serves in the foreground until SIGTERM or
SIGINT, then shuts Ray Serve and the local Ray cluster down. The serving itself is in
_serve_llm.py, shared with the other RayServe scripts.
"""

import sys

# The shared module is imported from this folder; keep Python from writing __pycache__ here.
sys.dont_write_bytecode = True
from _serve_llm import serve  # noqa: E402

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
MAX_MODEL_LEN = 32000


if __name__ == "__main__":
    sys.exit(
        serve(__file__, MODEL, replicas=1, tensor_parallel=1, max_model_len=MAX_MODEL_LEN)
    )
