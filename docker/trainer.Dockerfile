# syntax=docker/dockerfile:1
# GPU Dask worker image: the project with the `train` extra (PyTorch with CUDA), started as a
# plain `dask worker` with one `GPU` resource, so that the `train` flow's fold tasks of a CUDA run
# (which ask for GPU=1) land here, one fold at a time per GPU (flows/train.py).
# Build context: the repository root (see docker/README.md):
#   docker build -f docker/trainer.Dockerfile -t mer-prep-trainer .
#
# Base: python:3.11-slim, not pytorch/pytorch or nvidia/cuda. The project needs Python 3.11
# exactly (requires-python >=3.11,<3.12); nvidia/cuda's Ubuntu images ship 3.10 (22.04) or 3.12
# (24.04), and pytorch/pytorch's tag and Python version for torch 2.13 could not be checked here.
# torch's Linux x86_64 wheels are CUDA builds that bring the CUDA runtime, cuDNN, NCCL and cuBLAS
# as nvidia-* wheels; a CUDA base image would only duplicate those gigabytes. The GPU driver
# comes from the host through the NVIDIA Container Toolkit (compose: deploy.resources.reservations
# .devices, driver: nvidia). No apt packages (see worker.Dockerfile).
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Which CUDA build of torch: PyPI's default, or a CUDA variant from PyTorch's index, e.g.
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
# The version is pyproject's `train` extra (tests/test_docker.py keeps the two in step); torch is
# installed first so that the `.[train]` install below finds it satisfied and does not replace it.
ARG TORCH_INDEX_URL=https://pypi.org/simple
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" --extra-index-url https://pypi.org/simple \
    torch==2.13.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY mer_prep ./mer_prep
COPY flows ./flows
COPY storage_schemas ./storage_schemas
# The whole project, not just the reader: `mer-prep split/audit/export` and the flow's imports
# need the same dependencies, and one dependency set keeps the two images in step.
# DL3013 (pin versions in pip) does not apply: this installs the local project, whose pins
# (torch==2.13.0 included) are pyproject.toml's.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[train]" \
    && rm -rf /src

RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
    && mkdir -p /stores /home/app/.prefect /home/app/dask \
    && chown -R app:app /stores /home/app

ENV DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_HOME=/home/app/.prefect \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# flows.cluster.WORKER_ENVIRONMENT, as in worker.Dockerfile: glibc's malloc thresholds, one
# BLAS/OpenMP thread per single-threaded worker (the GPU does the training), no profiler.
ENV MALLOC_TRIM_THRESHOLD_=268435456 \
    MALLOC_MMAP_THRESHOLD_=33554432 \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False
ENV DASK_SCHEDULER_ADDRESS=tcp://dask-scheduler:8786

USER 10001:10001
WORKDIR /home/app

EXPOSE 8789
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8789/health', timeout=4)"]

# One single-threaded worker process per GPU, holding one GPU resource: the fold tasks of a CUDA
# training run ask for GPU=1, so each GPU trains one fold at a time and CPU workers get none.
# Give a container one GPU (compose: device_ids) or set CUDA_VISIBLE_DEVICES per worker. The
# shell is there only to expand $DASK_SCHEDULER_ADDRESS; exec hands PID 1 to dask.
CMD ["sh", "-c", "exec dask worker \"$DASK_SCHEDULER_ADDRESS\" --nthreads 1 --nworkers 1 --resources GPU=1 --dashboard-address :8789 --local-directory /home/app/dask"]
