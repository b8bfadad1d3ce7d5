# Set-up and checks. Every target creates the virtual environment on first use.
#   make demo   train an ST-CNN on rotated, translated and scaled MNIST
#               (DEMO_BACKEND, default torch: the fastest on a CPU here)
#   make test   lint, then the whole suite once per backend (tensorflow, jax, torch)

VENV ?= .venv
PYTHON := $(VENV)/bin/python
BACKENDS ?= tensorflow jax torch
DEMO_BACKEND ?= torch

.PHONY: install demo lint test clean

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

# Each backend runs in its own pytest process; all run even if one fails.
test: lint
	@failed=""; \
	for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(PYTHON) -m pytest --doctest-modules \
			keras_stn examples tests || failed="$$failed $$backend"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED backends:$$failed"; exit 1; fi; \
	echo "All backends passed: $(BACKENDS)"

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache *.egg-info
