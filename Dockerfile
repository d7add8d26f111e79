# CPU image of the Seq2CNN MLPerf system-under-test; the entry point is run.py.
#
#   docker build -t seq2cnn-mlperf .                        # --build-arg EXTRAS=ray for run.py --ray
#   docker run --rm -v /path/to/aclImdb_v1.tar.gz:/data/aclImdb_v1.tar.gz:ro \
#       -v "$PWD/results:/app/results" seq2cnn-mlperf --scenario SingleStream
#
# The dataset is mounted read-only at /data (the default --dataset-path);
# extractions and token caches live in /cache, a volume worth keeping between runs.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SEQ2CNN_DATASET=/data/aclImdb_v1.tar.gz \
    SEQ2CNN_CACHE_DIR=/cache

RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The CPU build of torch first, so the project's requirement is already met.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY setup.py ./
COPY common ./common
COPY qsl ./qsl
COPY model ./model
COPY readback ./readback
COPY sut ./sut
COPY tools ./tools
COPY configs ./configs
COPY run.py ./
# EXTRAS=ray adds Ray, for run.py --ray (docker build --build-arg EXTRAS=ray .)
ARG EXTRAS=""
RUN pip install ".${EXTRAS:+[$EXTRAS]}"

VOLUME ["/data", "/cache", "/app/results"]
ENTRYPOINT ["python", "run.py"]
CMD ["--scenario", "SingleStream"]
