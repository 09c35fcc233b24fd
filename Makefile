# spyolo: the two set-up commands of the README.
#   make demo   create/reuse .venv, install, then the main job on the embedded synthetic data
#   make test   create/reuse .venv, install with dev extras, run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch wheels: the pinned pair this project is tested with (override for your platform).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
DEMO_CONFIG ?= configs/spyv4_synthetic.yaml
DEMO_RUN    ?= runs/synthetic

.PHONY: venv demo test clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml setup.py
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) tools/main_job.py --config $(DEMO_CONFIG) --run-dir $(DEMO_RUN)

test: venv
	$(PY) -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
