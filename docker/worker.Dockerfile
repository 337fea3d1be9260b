# syntax=docker/dockerfile:1
# CPU image for the Dask workers, the Dask scheduler, the Prefect server and `mer-prep serve`.
# Build context: the repository root (see docker/README.md):
#   docker build -f docker/worker.Dockerfile -t mer-prep-worker .
#
# No apt packages: the opencv-contrib-python-headless, dlib-bin, h5py and icechunk wheels are
# manylinux wheels that bundle their libraries; the only system library they load that is not in
# the wheel (libz.so.1 for cv2) is already in python:*-slim. The headless OpenCV wheel needs no
# libGL / libglib.
# Pinned tag; pin the digest as well (python:3.11.13-slim-bookworm@sha256:...) in a registry you
# control to make rebuilds byte-for-byte reproducible.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Only what `pip install .` needs: every version pin comes from pyproject.toml.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mer_prep ./mer_prep
COPY flows ./flows
COPY storage_schemas ./storage_schemas
RUN pip install --no-cache-dir . \
    && rm -rf /src

# Non-root user; /stores and /data exist in the image owned by it, so a fresh named volume mounted
# there inherits that ownership.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
    && mkdir -p /stores /data /home/app/.prefect /home/app/dask \
    && chown -R app:app /stores /data /home/app

# Telemetry off; Prefect state under the user's home.
ENV DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_HOME=/home/app/.prefect
# flows.cluster.WORKER_ENVIRONMENT: must be set before the worker process starts (README,
# "Everyday use"): glibc's default trim threshold makes every decoded frame a fresh mmap, and one
# BLAS/OpenMP thread per single-threaded Dask worker, and no statistical profiler (~10 % of a
# worker's CPU).
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
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8789/health', timeout=4)"]

# One single-threaded worker process per container (like the local cluster of `mer-prep run`:
# threads_per_worker=1, processes=True); scale with more containers. The shell is there only to
# expand $DASK_SCHEDULER_ADDRESS; exec hands PID 1 to dask.
CMD ["sh", "-c", "exec dask worker \"$DASK_SCHEDULER_ADDRESS\" --nthreads 1 --nworkers 1 --dashboard-address :8789 --local-directory /home/app/dask"]
