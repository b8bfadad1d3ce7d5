#!/usr/bin/env bash
# Run benchmarks/gpu_check.py on the GPU machine, from the repository's root.
#
# That machine has CUDA builds of PyTorch and JAX but no Keras, and no
# network: `make gpu-wheels` (here) puts Keras and the dependencies it lacks
# into .whl/, which the device tool carries along (carry [".whl"]); this
# installs them into /tmp/site and puts the checkout on the path, so that
# keras_stn imports without being installed. Arguments go to gpu_check.py.
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine
#   bash benchmarks/gpu_check.sh --dry-run    # anywhere: CPU, tiny sizes
set -eu -o pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    2>/dev/null || true
exec "$PYTHON" benchmarks/gpu_check.py "$@"
