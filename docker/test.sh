#!/usr/bin/env bash
# The Docker check: builds the project's image and runs it as a user would, on a machine without an image
# registry (a local base image) or with one (SEQ2CNN_DOCKER_BASE=python:3.11-slim).
#
#   docker/test.sh           # Debian 12 (bookworm, Python 3.11.2); about 15 minutes on 2 cores
#   SEQ2CNN_DOCKER_SUITE=trixie docker/test.sh   # Debian 13 (Python 3.13); torch's CUDA build from the
#                            # package registry: about 10 GB of image, 20 minutes
#   make docker-test         # both, one after the other
#
# Steps, each timed, each exit code checked:
#   1. a Docker daemon: the one that answers, else one started here (dockerd --storage-driver=overlay2
#      --iptables=false --bridge=none, as root), stopped at the end; a daemon that was running is left alone
#   2. the base image: $SEQ2CNN_DOCKER_BASE, or the Debian suite's ($SEQ2CNN_DOCKER_SUITE: bookworm, the
#      default, or trixie) made by docker/base-image.sh (once; kept as seq2cnn-base:<suite>)
#   3. the image seq2cnn-mlperf:test, built with --network host; torch's CPU wheel for the image's Python
#      from the local wheel folder pip uses here (served on 127.0.0.1) when it holds one, else for
#      bookworm from PyTorch's CPU index, for trixie from the package registry (its CUDA build)
#   4. in it, with the dataset mounted read-only, the cache on a fresh volume and the results in
#      results/docker-test/<time>/: a quick run of each scenario (the first fills the cache, the others
#      must read it) and a full Offline --accuracy run, which must report the host's 89.064 %
#   5. the fast test subset (pytest -m "not slow") on the image's Python, in a clone of this checkout
#
# Exit status: 0 every step passed; 1 a step failed (its output is above, its logs in the results folder);
# 2 something needed is missing (the message says what to install or set).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

suite=${SEQ2CNN_DOCKER_SUITE:-bookworm}
case "$suite" in
    bookworm) python_tag=cp311 ;;
    trixie) python_tag=cp313 ;;
    *) echo "docker/test.sh: SEQ2CNN_DOCKER_SUITE is bookworm (Python 3.11) or trixie (Python 3.13), not '$suite'" >&2; exit 2 ;;
esac
image=seq2cnn-mlperf:test-$suite
suite_image=seq2cnn-mlperf:test-suite-$suite
cache_volume=seq2cnn-docker-test-cache-$suite
torch_version=2.13.0+cpu
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results="$repo/results/docker-test/$stamp-$suite"
mkdir -p "$results"

fail() { echo "docker/test.sh: $*" >&2; exit "${2:-1}"; }

# --- the steps' times, printed at the end ------------------------------------------------------------
declare -a step_lines=()
step_started=0
begin() { step_name=$1; step_started=$(date +%s); echo; echo "== $step_name"; }
end() {
    local seconds=$(( $(date +%s) - step_started ))
    step_lines+=("$(printf '%-58s %4d s  %s' "$step_name" "$seconds" "${1:-ok}")")
    echo "-- $step_name: ${1:-ok} (${seconds} s)"
}
report() {
    echo
    echo "Docker check, $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'), results in $results:"
    printf '  %s\n' "${step_lines[@]}"
}

# --- what is started here is stopped here -----------------------------------------------------------
dockerd_pid=""
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
        echo "stopped the Docker daemon this check started (pid $dockerd_pid)"
    fi
}
trap cleanup EXIT

# --- 1. the daemon ----------------------------------------------------------------------------------
begin "1. Docker daemon"
command -v docker >/dev/null || fail "the docker command is not installed (Debian: apt-get install docker.io)" 2
if docker info >/dev/null 2>&1; then
    end "already running (left as it is)"
else
    command -v dockerd >/dev/null || fail "no Docker daemon answers and dockerd is not installed (Debian: apt-get install docker.io)" 2
    [ "$(id -u)" -eq 0 ] || fail "no Docker daemon answers, and starting one needs root (sudo make docker-test)" 2
    dockerd --storage-driver=overlay2 --iptables=false --bridge=none > "$results/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 1 120); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || { tail -n 20 "$results/dockerd.log" >&2; fail "dockerd exited (log above)"; }
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || fail "dockerd did not answer within 60 s (log: $results/dockerd.log)"
    end "started (pid $dockerd_pid, log $results/dockerd.log)"
fi

# --- 2. the base image ------------------------------------------------------------------------------
begin "2. base image"
base=${SEQ2CNN_DOCKER_BASE:-seq2cnn-base:$suite}
if docker image inspect "$base" >/dev/null 2>&1; then
    end "$base (present)"
elif [ "$base" = "seq2cnn-base:$suite" ]; then
    docker/base-image.sh "$base"
    end "$base (made)"
else
    docker pull "$base" || fail "cannot pull $base: set SEQ2CNN_DOCKER_BASE to an image you have, or unset it to make a local one"
    end "$base (pulled)"
fi

# --- 3. the image -----------------------------------------------------------------------------------
begin "3. build $image"
# The local wheel folder pip is configured with ($PIP_FIND_LINKS, or pip's find-links setting), if it holds torch.
wheels=${SEQ2CNN_TORCH_WHEELS:-${PIP_FIND_LINKS:-$(python3 -m pip config get global.find-links 2>/dev/null || true)}}
torch_source=(--build-arg "TORCH_VERSION=$torch_version")
if [ -n "$wheels" ] && compgen -G "$wheels/torch-${torch_version}-${python_tag}-*.whl" >/dev/null; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 -m http.server --bind 127.0.0.1 --directory "$wheels" "$port" > "$results/wheel-server.log" 2>&1 &
    server_pid=$!
    torch_source+=(--build-arg "TORCH_FIND_LINKS=http://127.0.0.1:$port/")
    echo "torch $torch_version from $wheels (served on 127.0.0.1:$port for the build)"
elif [ "$suite" = trixie ]; then
    torch_source=(--build-arg "TORCH_VERSION=${torch_version%+cpu}" --build-arg "TORCH_INDEX_URL=")
    echo "torch ${torch_version%+cpu} from the package registry (its CUDA build; no local $python_tag wheel)"
else
    echo "torch $torch_version from PyTorch's CPU index (no local wheel; SEQ2CNN_TORCH_WHEELS=FOLDER names one)"
fi
set +e
docker build --network host --build-arg "BASE_IMAGE=$base" "${torch_source[@]}" \
    --build-arg "SOURCE_COMMIT=$(git rev-parse HEAD 2>/dev/null || true)" -t "$image" . 2>&1 | tee "$results/build.log"
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || fail "docker build failed (log: $results/build.log)"
[ -n "$server_pid" ] && { kill "$server_pid" 2>/dev/null || true; server_pid=""; }
size=$(docker image inspect --format '{{.Size}}' "$image")
end "$(awk -v b="$size" 'BEGIN { printf "%.2f GB", b / 1e9 }')"

# --- 4. runs in the image ---------------------------------------------------------------------------
# The dataset the project's own lookup finds (qsl/locations.py): $SEQ2CNN_DATASET, ../shared/data beside
# the checkout, the archive qsl.download saved.
dataset=${SEQ2CNN_DATASET:-}
for candidate in "$dataset" "$repo/../shared/data/aclImdb_labeled.tar.gz" "$HOME/.cache/seq2cnn/aclImdb_v1.tar.gz"; do
    [ -n "$candidate" ] && [ -f "$candidate" ] && { dataset=$(cd "$(dirname "$candidate")" && pwd)/$(basename "$candidate"); break; }
done
[ -f "$dataset" ] || fail "no IMDB archive found: set SEQ2CNN_DATASET, or run python -m qsl.download" 2
docker volume rm -f "$cache_volume" >/dev/null
docker volume create "$cache_volume" >/dev/null

# run NAME EXPECTED_LOG_PATTERN ARGS...: run.py in the image, its exit code 0 and the pattern in its output
run_in_image() {
    local name=$1 pattern=$2; shift 2
    begin "4. $name: run.py $*"
    set +e
    docker run --rm --network host \
        -v "$dataset:/data/$(basename "$dataset"):ro" -e "SEQ2CNN_DATASET=/data/$(basename "$dataset")" \
        -v "$cache_volume:/cache" -v "$results:/app/results" "$image" "$@" > "$results/$name.log" 2>&1
    local status=$?
    set -e
    tail -n 25 "$results/$name.log"
    [ "$status" -eq 0 ] || { end "FAILED: exit $status"; report; fail "run.py $* exited $status in the image (log: $results/$name.log)"; }
    local patterns=("$pattern")
    [[ " $* " == *" --accuracy "* ]] || patterns+=("Validity   : VALID")
    for expected in "${patterns[@]}"; do
        grep -Eq "$expected" "$results/$name.log" || { end "FAILED: no '$expected'"; report; fail "run.py $*: its output lacks '$expected' (log: $results/$name.log)"; }
    done
    end "exit 0; $(printf "'%s' " "${patterns[@]}")"
}
run_in_image singlestream "tokenizing the test split" --scenario SingleStream --time 10
run_in_image multistream "token ids of test .* read from /cache" --scenario MultiStream --time 10
run_in_image offline "folded tables read from /cache" --scenario Offline --time 10
run_in_image server "Samples    : " --scenario Server --time 30 --qps 100
run_in_image accuracy "Accuracy   : 89\\.064%" --scenario Offline --accuracy

# --- 5. the fast test subset on the image's Python ----------------------------------------------------
begin "5. pytest -m 'not slow' on the image's Python"
docker build --network host -t "$suite_image" - > "$results/suite-build.log" 2>&1 <<EOF || fail "building $suite_image failed (log: $results/suite-build.log)"
FROM $image
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/* \\
    && git config --system --add safe.directory '*' && pip install 'pytest>=8,<10'
ENTRYPOINT []
EOF
python_version=$(docker run --rm "$suite_image" python --version)
set +e
docker run --rm --network host -v "$repo:/src:ro" \
    -v "$dataset:/data/$(basename "$dataset"):ro" -e "SEQ2CNN_DATASET=/data/$(basename "$dataset")" \
    -v "$cache_volume:/cache" "$suite_image" \
    bash -c 'git clone -q /src /work/repo && cd /work/repo && python -m pytest -q -m "not slow" -p no:cacheprovider' \
    2>&1 | tee "$results/pytest.log"
status=${PIPESTATUS[0]}
set -e
summary=$(tail -n 1 "$results/pytest.log")
[ "$status" -eq 0 ] || { end "FAILED ($python_version): $summary"; report; fail "the test suite failed in the image (log: $results/pytest.log)"; }
end "$python_version: $summary"

report
