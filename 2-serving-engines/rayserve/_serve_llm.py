"""Shared by the RayServe launch scripts (imported by them, not run): serves one model with
Ray Serve LLM behind its OpenAI-compatible ingress, in the foreground, as lmbench runs a
RayServe baseline.

A launch script calls `serve(__file__, MODEL, replicas=..., tensor_parallel=...,
max_model_len=...)` and exits with what it returns: 0 after a clean shutdown, 2 for a wrong
call or a spec naming another model, 127 when `ray[serve,llm]` is not installed.
"""

import os
import signal
import sys


def serve(script: str, model: str, replicas: int, tensor_parallel: int, max_model_len: int) -> int:
    """Serve `model` as `replicas` vLLM engines of `tensor_parallel` GPUs each (prefix cache on,
    `max_model_len`-token context) on port $LMBENCH_PORT (default 30080), on GPUs of the
    accelerator type given as the only argument, until SIGTERM or SIGINT; then shut Ray Serve
    and the local Ray cluster down. `script` is the launch script's path, for messages."""
    name = f"rayserve/{os.path.basename(script)}"
    if len(sys.argv) != 2:
        print(f"usage: python3 {os.path.basename(script)} <acceleratorType, e.g. H100>", file=sys.stderr)
        return 2
    accelerator = sys.argv[1]
    port = int(os.environ.get("LMBENCH_PORT", "30080"))
    # The spec's modelURL is the name sent in every request; a different one would get 404s.
    wanted = os.environ.get("LMBENCH_MODEL")
    if wanted and wanted != model:
        print(f"{name}: serves {model}, but the spec's modelURL is {wanted}", file=sys.stderr)
        return 2
    try:
        import ray
        from ray import serve as ray_serve
        from ray.serve.llm import LLMConfig, build_openai_app
    except ImportError as e:
        print(f"{name}: {e} (pip install \"ray[serve,llm]\")", file=sys.stderr)
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
        model_loading_config={"model_id": model, "model_source": model},
        deployment_config={
            "autoscaling_config": {"min_replicas": replicas, "max_replicas": replicas},
        },
        accelerator_type=accelerator,
        engine_kwargs={
            "tensor_parallel_size": tensor_parallel,
            "enable_prefix_caching": True,
            "max_model_len": max_model_len,
        },
        runtime_env={"env_vars": env_vars},
    )
    app = build_openai_app({"llm_configs": [llm_config]})
    try:
        ray_serve.start(http_options={"host": "0.0.0.0", "port": port})
        ray_serve.run(app, blocking=True)
    except KeyboardInterrupt:
        pass
    finally:
        ray_serve.shutdown()
        ray.shutdown()
    return 0
