# Set-up and checks. Every target creates the virtual environment on first use.
#   make demo   train an ST-CNN on rotated, translated and scaled MNIST
#               (DEMO_BACKEND, default torch: the fastest on a CPU here)
#   make test   lint, the documentation build, then the whole suite once per
#               backend (tensorflow, jax, torch)
#   make docs   build the documentation site into site/ (mkdocs build --strict)
#   make docs-serve
#               serve it at http://127.0.0.1:8000, rebuilding on changes
#   make gpu-wheels
#               Keras and the dependencies that the GPU machine lacks, as wheels
#               in .whl/ (ignored by git), for benchmarks/gpu_check.sh there

VENV ?= .venv
PYTHON := $(VENV)/bin/python
BACKENDS ?= tensorflow jax torch
# pytest-xdist workers per backend's run: one per core, at most
# MAX_TEST_WORKERS (each holds TensorFlow, JAX and PyTorch: 2-4 GB); each
# test file runs in one worker, so that its module-scoped fixtures are built
# once.
TEST_WORKERS ?= auto
MAX_TEST_WORKERS ?= 4
DEMO_BACKEND ?= torch

.PHONY: install demo lint docs docs-serve test gpu-wheels clean

$(VENV)/.installed: requirements-dev.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	$(PYTHON) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

demo: install
	KERAS_BACKEND=$(DEMO_BACKEND) $(PYTHON) examples/distorted_mnist.py

lint: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

# A broken link, a missing page or an unreadable docstring fails the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

# Each backend runs in its own pytest process; all run even if one fails.
test: lint docs
	@failed=""; \
	for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(PYTHON) -m pytest --doctest-modules \
			-n $(TEST_WORKERS) --maxprocesses $(MAX_TEST_WORKERS) --dist loadfile keras_stn examples tests || failed="$$failed $$backend"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED backends:$$failed"; exit 1; fi; \
	echo "All backends passed: $(BACKENDS)"

# The GPU machine runs Python 3.12 with PyTorch and JAX but no Keras, and has
# no network: Keras and those of its dependencies that its image lacks
# (KINDS.md's package list: namex, optree) travel as wheels, about 3 MiB.
GPU_PYTHON_VERSION ?= 3.12
GPU_WHEELS ?= keras==3.15.1 namex==0.1.0 optree==0.20.0
GPU_PLATFORMS := manylinux_2_28_x86_64 manylinux_2_27_x86_64 \
	manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64
gpu-wheels:
	exclude="$$(git rev-parse --git-path info/exclude)"; \
	mkdir -p "$$(dirname "$$exclude")"; \
	grep -qxF /.whl/ "$$exclude" 2>/dev/null || echo /.whl/ >> "$$exclude"
	rm -rf .whl
	python3 -m pip download --no-deps --only-binary=:all: \
		--python-version $(GPU_PYTHON_VERSION) --implementation cp \
		$(addprefix --platform ,$(GPU_PLATFORMS)) -d .whl $(GPU_WHEELS)
	@size=$$(du -sk .whl | cut -f1); echo ".whl: $$size KiB"; \
	if [ $$size -gt 40960 ]; then echo "over 40 MiB"; exit 1; fi

clean:
	rm -rf $(VENV) outputs site .pytest_cache .ruff_cache *.egg-info
