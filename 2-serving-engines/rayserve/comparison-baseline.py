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
SIGTERM or SIGINT, then shuts Ray Serve and the local Ray cluster down.
"""

import os
import signal
import sys

MODEL = "Qwen/Qwen3-32B"
REPLICAS = 4
TENSOR_PARALLEL = 2
MAX_MODEL_LEN = 28000


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: python3 {os.path.basename(__file__)} <acceleratorType, e.g. H100>", file=sys.stderr)
        return 2
    accelerator = sys.argv[1]
    port = int(os.environ.get("LMBENCH_PORT", "30080"))
    # The spec's modelURL is the name sent in every request; a different one would get 404s.
    wanted = os.environ.get("LMBENCH_MODEL")
    if wanted and wanted != MODEL:
        print(f"rayserve/comparison-baseline.py: serves {MODEL}, but the spec's modelURL is {wanted}", file=sys.stderr)
        return 2
    try:
        import ray
        from ray import serve
        from ray.serve.llm import LLMConfig, build_openai_app
    except ImportError as e:
        print(f"rayserve/comparison-baseline.py: {e} (pip install \"ray[serve,llm]\")", file=sys.stderr)
        return 127

    # lmbench stops the baseline with SIGTERM; turn it into an exception so that the finally
    # block below shuts the Ray processes down instead of leaving them behind.
    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)

    env_vars = {"VLLM_USE_V1": "1"}
    if os.environ.get("HF_TOKEN"):
        env_vars["HF_TOKEN"] = os.environ["HF_TOKEN"]
    llm_config = LLMConfig(
        model_loading_config={"model_id": MODEL, "model_source": MODEL},
        deployment_config={
            "autoscaling_config": {"min_replicas": REPLICAS, "max_replicas": REPLICAS},
        },
        accelerator_type=accelerator,
        engine_kwargs={
            "tensor_parallel_size": TENSOR_PARALLEL,
            "enable_prefix_caching": True,
            "max_model_len": MAX_MODEL_LEN,
        },
        runtime_env={"env_vars": env_vars},
    )
    app = build_openai_app({"llm_configs": [llm_config]})
    try:
        serve.start(http_options={"host": "0.0.0.0", "port": port})
        serve.run(app, blocking=True)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
