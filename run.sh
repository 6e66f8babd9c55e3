#!/usr/bin/env bash
# keraszoo's two entry points on a fresh machine (Python >= 3.10 with venv; curl for quickstart):
#   ./run.sh quickstart [ARGS]  create .venv, train the course's CIFAR-10 CNN briefly (ARGS go to the
#                         recipe), export it as saved_models/cifar10_cnn_quickstart/<version>/ (the
#                         shipped models stay as they are), serve saved_models/ over TF Serving's REST
#                         API on 127.0.0.1:$KERASZOO_PORT (default 8501) and classify the example images
#   ./run.sh test [ARGS]  create .venv, run the test suite (ARGS go to pytest)
# Data: the TFDS data folder keraszoo's commands use: $TFDS_DATA_DIR, else ../shared/tensorflow_datasets,
# else ~/tensorflow_datasets (keraszoo/data/folder.py). Quickstart prepares CIFAR-10 there when it is
# missing and the machine is online. Everything is checked before anything is installed.
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "run.sh: $*" >&2; exit 1; }

mode="${1:-quickstart}"
python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || die "no $python on PATH: install Python >= 3.10 with its venv module."
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
  || die "$("$python" --version 2>&1 | head -1) is too old: keraszoo needs Python >= 3.10 (set PYTHON=/path/to/python3.X)."
"$python" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$python has no venv/ensurepip module: install it (Debian/Ubuntu: apt install python3-venv)."

# The data folder, by the rule every keraszoo command follows (so they find the same one).
{ read -r data_dir; read -r data_source; missing="$(cat)"; } < <("$python" keraszoo/data/folder.py cifar10 mnist)
prepare_cifar10=""
if [ "$mode" = quickstart ]; then
  command -v curl >/dev/null 2>&1 || die "quickstart queries the server with curl: install curl (apt install curl)."
  port="${KERASZOO_PORT:-8501}"
  "$python" -c 'import socket, sys; socket.create_server(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null \
    || die "port $port on 127.0.0.1 is busy or invalid: stop what uses it, or choose another with KERASZOO_PORT=8502."
  if printf '%s\n' "$missing" | grep -qx cifar10; then
    if curl -sfI --max-time 10 https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz >/dev/null 2>&1; then
      prepare_cifar10=1
      echo "run.sh: no prepared CIFAR-10 in $data_dir ($data_source): it will be downloaded (163 MB) and prepared there after the install."
    else
      die "no prepared CIFAR-10 in $data_dir ($data_source), and www.cs.toronto.edu is unreachable to download it: copy a prepared TFDS data folder there, or set TFDS_DATA_DIR to one."
    fi
  fi
fi

venv="${KERASZOO_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
# Reinstall only when the package definition changed since the last install.
stamp="$venv/.keraszoo-installed"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "run.sh: installing keraszoo and its dependencies into $venv (TensorFlow, Keras, JAX, keras-hub, TFDS, ...:" \
       "about 3.7 GB and a few minutes on a first install)"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --progress-bar on -e '.[test]' 2>&1 \
    | { grep --line-buffered -E '^(Collecting|Downloading|Installing collected|Successfully installed|ERROR)' || true; }
  touch "$stamp"
fi
export PATH="$PWD/$venv/bin:$PATH"

case "$mode" in
  quickstart)
    shift || true
    if [ -n "$prepare_cifar10" ]; then
      keraszoo data prepare cifar10
    fi
    # Two epochs on 10,000 images with Adam: about two minutes on 2 CPU cores, 42 % test accuracy (docs/records/quickstart)
    # (the course's plain SGD needs more steps than that; SGD 0.1 with momentum 0.9 diverges here).
    python recipes/cifar10_cnn.py --epochs 2 --train-split 'train[:10000]' --optimizer adam \
      --learning-rate 0.001 --output runs/quickstart --export-name cifar10_cnn_quickstart "$@"
    keraszoo show saved_models/cifar10_cnn_quickstart
    keraszoo serve saved_models --port "$port" --grpc-port "${KERASZOO_GRPC_PORT:-0}" --no-access-log &
    server=$!
    trap 'kill $server 2>/dev/null' EXIT
    for _ in $(seq 120); do  # until the newest version answers (model loading takes seconds)
      curl -sf "http://127.0.0.1:$port/v1/models/cifar10_cnn_quickstart" >/dev/null && break
      kill -0 "$server" 2>/dev/null || die "keraszoo serve stopped (see its message above)."
      sleep 1
    done
    curl -s "http://127.0.0.1:$port/v1/models/cifar10_cnn_quickstart"; echo
    keraszoo predict --model cifar10_cnn_quickstart --url "http://127.0.0.1:$port" docs/examples/*.png
    echo
    echo "run.sh: done. Next, in a new shell: source $venv/bin/activate, then e.g."
    echo "  keraszoo serve                                   # the shipped models and yours, on port 8501"
    echo "  keraszoo predict --model cifar10_cnn docs/examples/cat.png"
    echo "  python recipes/cifar10_cnn.py --help"
    ;;
  test)
    shift
    exec python -m pytest "$@"
    ;;
  *)
    sed -n '2,10p' "$0"
    exit 2
    ;;
esac
