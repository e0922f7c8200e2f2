# syntax=docker/dockerfile:1
# seq2seq-serve serving image: ONNX Runtime + FastAPI, no torch. Model packages are not
# in the image: mount them at /models (or derive an image that copies them there, see
# docs/deployment.md). Export runs outside the image (`python -m export ...`).
#
# GPU (default):  docker build -t seq2seq-serve:gpu .
# CPU:            docker build --build-arg BASE_IMAGE=ubuntu:24.04 \
#                   --build-arg ONNXRUNTIME=onnxruntime -t seq2seq-serve:cpu .
#
# onnxruntime-gpu 1.31 is built against CUDA 13 and cuDNN 9, so the default base is a
# CUDA 13 runtime image with cuDNN 9. Any Debian or Ubuntu base works for the CPU image.
ARG BASE_IMAGE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04

# Python and the service user, shared by the build and runtime stages.
FROM ${BASE_IMAGE} AS python
ARG DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 s2s \
    && useradd --uid 10001 --gid s2s --home-dir /home/s2s --create-home \
         --shell /usr/sbin/nologin s2s

FROM python AS builder
ARG DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
# Only the serving package: export, models and bench are not needed to serve.
COPY service/ service/
# The ONNX Runtime wheel to serve with: onnxruntime-gpu (CUDA) or onnxruntime (CPU).
ARG ONNXRUNTIME=onnxruntime-gpu==1.31.1
# Base dependencies only (never the export extra, which brings torch). Both ORT wheels
# provide the same `onnxruntime` module, so the GPU wheel replaces the CPU one; the
# CUDA backend also builds a small ONNX graph (row selection on the device) with `onnx`.
RUN /opt/venv/bin/pip install . \
    && case "${ONNXRUNTIME}" in \
         onnxruntime|onnxruntime[=\<\>]*) ;; \
         *) /opt/venv/bin/pip uninstall -y onnxruntime \
            && /opt/venv/bin/pip install --no-deps "${ONNXRUNTIME}" \
            && /opt/venv/bin/pip install "onnx==1.23.2" ;; \
       esac \
    && if /opt/venv/bin/python -c "import torch" 2>/dev/null; then \
         echo "torch must not be in the serving image" >&2; exit 1; \
       fi

FROM python AS runtime
COPY --from=builder /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py /usr/local/lib/s2s/healthcheck.py
RUN mkdir -p /models && chown 10001:10001 /models
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    S2S_HOST=0.0.0.0 \
    S2S_PORT=8000 \
    S2S_MODELS_DIR=/models
USER 10001:10001
WORKDIR /home/s2s
VOLUME ["/models"]
EXPOSE 8000
# Probes /health on 127.0.0.1:$S2S_PORT with the standard library (no curl needed).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/lib/s2s/healthcheck.py"]
# Exec form: the server is PID 1 and receives SIGTERM itself (graceful drain).
ENTRYPOINT ["python", "-m", "service"]
