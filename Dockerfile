# CPU image of the Seq2CNN MLPerf system-under-test; the entry point is run.py.
#
#   docker build -t seq2cnn-mlperf .                        # --build-arg EXTRAS=ray for run.py --ray
#   docker run --rm -v /path/to/aclImdb_v1.tar.gz:/data/aclImdb_v1.tar.gz:ro \
#       -v seq2cnn-cache:/cache -v "$PWD/results:/app/results" seq2cnn-mlperf --scenario SingleStream
#
# The dataset is mounted read-only at /data (the default --dataset-path); the extraction, the token and
# table caches and numba's compiled kernels live in /cache, a volume worth keeping between runs.
#
# What differs between sites is a build argument; the defaults need Docker Hub and download.pytorch.org:
#   BASE_IMAGE        any image with Python 3.11-3.13 (python3) and its venv module, e.g. Debian bookworm's
#                     (docker/base-image.sh makes one without an image registry)
#   TORCH_INDEX_URL   the index torch==$TORCH_VERSION comes from (default: PyTorch's CPU index; empty: the
#                     base image's package index, whose torch is the CUDA build)
#   TORCH_FIND_LINKS  a folder URL holding that torch wheel instead (then torch's own requirements come
#                     from the base image's package index)
#   SOURCE_COMMIT     the commit the build context holds, written into every run's run.json
#                     (docker/test.sh passes git rev-parse HEAD)
# docker/test.sh builds and runs the image on a machine without a registry (README, "Docker").
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SEQ2CNN_DATASET=/data/aclImdb_v1.tar.gz \
    SEQ2CNN_CACHE_DIR=/cache \
    NUMBA_CACHE_DIR=/cache/numba \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# A virtual environment of its own: a distribution's Python (PEP 668) refuses pip installs outside one.
RUN python3 -m venv /opt/venv

# Layers from the slowest to change to the fastest: torch, then the project's requirements (setup.py
# alone), then the code, so that a code change reinstalls nothing.
ARG TORCH_VERSION=2.13.0+cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_FIND_LINKS=""
RUN if [ -n "$TORCH_FIND_LINKS" ]; then \
        pip install --find-links "$TORCH_FIND_LINKS" "torch==$TORCH_VERSION"; \
    elif [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"; \
    else \
        pip install "torch==$TORCH_VERSION"; \
    fi

WORKDIR /app
COPY setup.py ./
# EXTRAS=ray adds Ray, for run.py --ray (docker build --build-arg EXTRAS=ray .); onnx and openvino the ONNX
# runtimes' backends (EXTRAS=onnx,openvino; extras join with commas). With setup.py alone this
# installs the requirements and the project's metadata; the code itself runs from /app.
ARG EXTRAS=""
RUN pip install ".${EXTRAS:+[$EXTRAS]}" && rm -rf build *.egg-info

COPY common ./common
COPY qsl ./qsl
COPY model ./model
COPY readback ./readback
COPY sut ./sut
COPY tools ./tools
COPY configs ./configs
COPY run.py ./
ARG SOURCE_COMMIT=""
ENV SEQ2CNN_SOURCE_COMMIT=${SOURCE_COMMIT}

VOLUME ["/data", "/cache", "/app/results"]
ENTRYPOINT ["python", "run.py"]
CMD ["--scenario", "SingleStream"]
